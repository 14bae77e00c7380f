"""The signing journal: what happened to each pending transaction id, in the store file, as one state machine.

Not secret (a signed transaction is public once broadcast), so it is stored in clear. A signed payload is written once
and never replaced: after a crash the daemon re-broadcasts exactly what it signed instead of signing again.

States (column ``state``) and the only legal changes::

    (absent) --put--------> signed --mark_broadcast--> broadcast --reconcile--> completed | failed
       |                      |  \\------------------reconcile----------------> completed | failed
       |                      |--resign--> signed (a new payload, recorded as such; see below)
       |--refuse--> refused   |
       |--quarantine--------> poisoned  <--quarantine-- signed | broadcast | failed
       |--hold--------------> held      <--hold-------- any other state
    any state --release--> (absent), leaving a release record (pending id, payload SHA-256)

- signed: the payload is journaled (fsynced) and not yet known to be accepted; a restart re-sends the same payload.
- resign: the one way a journaled payload is replaced, for chains whose signature expires unsent (SOL: its
  blockhash), once the node proved the old one expired and never landed. Only from signed, only while the entry still
  holds that old payload; the new meta names the replaced payload's SHA-256 and the reason says why.
- broadcast: the broadcast call accepted it. completed / failed: the Tatum API said so when reconciled.
- refused: the four-eye server said no; never asked again, never signed.
- poisoned: processing it took a worker down; quarantined, reported once (``reported``), never retried automatically.
- held: signed elsewhere (the audit log shows a signing this journal lost, say after a restored older store file);
  never signed here again until an operator releases it.
Entries in refused, poisoned and held leave only through ``kms journal release``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kms.errors import JournalConflictError, JournalStateError, StoreError

if TYPE_CHECKING:
    from kms.store.backend import StoreConnection
    from kms.store.database import Database

DEFAULT_RETENTION_DAYS = 90
RETENTION_SETTING = "TATUM_KMS_JOURNAL_RETENTION_DAYS"
MAX_META_BYTES = 4096
MAX_REASON_CHARS = 300
_DAY_S = 86_400
_PENDING_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_SHA256_RE = re.compile(r"(?:[0-9a-f]{64})?")
_LEGACY_REFUSED_MARKER = "kms:four-eye-refused"  # how schema 1 journaled a refusal, in the tx_data column


class JournalState(enum.Enum):
    SIGNED = "signed"
    BROADCAST = "broadcast"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUSED = "refused"
    POISONED = "poisoned"
    HELD = "held"

    @property
    def blocks_signing(self) -> bool:
        """Never signed nor sent by the daemon in this state (only an operator's release changes it)."""
        return self in (JournalState.REFUSED, JournalState.POISONED, JournalState.HELD)


S = JournalState
_CREATE = frozenset({S.SIGNED, S.REFUSED, S.POISONED, S.HELD})  # from absent
_TRANSITIONS: dict[JournalState, frozenset[JournalState]] = {
    S.SIGNED: frozenset({S.BROADCAST, S.COMPLETED, S.FAILED, S.POISONED, S.HELD}),
    S.BROADCAST: frozenset({S.BROADCAST, S.COMPLETED, S.FAILED, S.POISONED, S.HELD}),
    S.COMPLETED: frozenset({S.COMPLETED, S.HELD}),
    S.FAILED: frozenset({S.BROADCAST, S.COMPLETED, S.FAILED, S.POISONED, S.HELD}),
    S.REFUSED: frozenset({S.REFUSED, S.HELD}),
    S.POISONED: frozenset({S.POISONED, S.HELD}),
    S.HELD: frozenset({S.HELD}),
}
PAYLOAD_STATES = (S.SIGNED, S.BROADCAST, S.COMPLETED, S.FAILED)
"""States whose entry always carries the signed payload (a constraint of every backend's journal table)."""
_PRUNABLE = (S.BROADCAST, S.COMPLETED)

SCHEMA = f"""
CREATE TABLE journal (
    pending_id TEXT PRIMARY KEY NOT NULL,
    chain TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s.value}'" for s in JournalState)})),
    payload TEXT CHECK (payload IS NULL OR length(payload) > 0),
    payload_sha256 TEXT NOT NULL DEFAULT '',
    request_sha256 TEXT NOT NULL DEFAULT '',
    meta TEXT,
    reason TEXT NOT NULL DEFAULT '',
    reported INTEGER NOT NULL DEFAULT 0 CHECK (reported IN (0, 1)),
    reconciled_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (state NOT IN ({", ".join(f"'{s.value}'" for s in PAYLOAD_STATES)}) OR payload IS NOT NULL)
);
CREATE INDEX journal_by_state ON journal (state, updated_at);
CREATE TABLE journal_releases (
    pending_id TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    released_at INTEGER NOT NULL,
    PRIMARY KEY (pending_id, payload_sha256)
);
"""


@dataclass(frozen=True)
class JournalEntry:
    pending_id: str
    chain: str
    state: JournalState
    payload: str | None  # the signed txData, exactly as broadcast (None when refused, or held/poisoned unsigned)
    payload_sha256: str  # of payload; for a held entry, the hash the audit log recorded ('' when unknown)
    request_sha256: str  # SHA-256 of the pending transaction that was signed ('' when not given)
    meta: Mapping[str, object] | None  # chain facts journaled with the payload (say, a Solana blockhash)
    reason: str  # why refused, poisoned, held or failed
    reported: bool  # poisoned: reported to the Tatum API already
    reconciled_at: int | None  # unix seconds of the last reconciliation with the Tatum API
    created_at: int  # unix seconds
    updated_at: int

    @property
    def status(self) -> str:
        return self.state.value

    @property
    def tx_data(self) -> str | None:
        return self.payload


_COLUMNS = (
    "pending_id, chain, state, payload, payload_sha256, request_sha256, meta, reason, reported, reconciled_at,"
    " created_at, updated_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM journal"  # noqa: S608 - constant column list


def _entry(row: tuple[object, ...]) -> JournalEntry:
    pid, chain, state, payload, payload_sha, request_sha, meta, reason, reported, reconciled, created, updated = row
    return JournalEntry(
        str(pid),
        str(chain),
        JournalState(state),
        None if payload is None else str(payload),
        str(payload_sha),
        str(request_sha),
        None if meta is None else json.loads(str(meta)),
        str(reason),
        bool(reported),
        None if reconciled is None else int(reconciled),  # type: ignore[call-overload]
        int(created),  # type: ignore[call-overload]
        int(updated),  # type: ignore[call-overload]
    )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_pending_id(pending_id: object) -> str:
    if not isinstance(pending_id, str) or not _PENDING_ID_RE.fullmatch(pending_id):
        raise StoreError(f"invalid pending transaction id {str(pending_id)[:140]!r}")
    return pending_id


def parse_state(state: object) -> JournalState:
    if isinstance(state, JournalState):
        return state
    try:
        return JournalState(state)
    except ValueError:
        known = ", ".join(s.value for s in JournalState)
        raise StoreError(f"invalid journal status {str(state)[:40]!r} (one of: {known})") from None


def retention_days(settings: Mapping[str, str]) -> int:
    """The journal retention from the settings (RETENTION_SETTING), DEFAULT_RETENTION_DAYS when unset."""
    text = settings.get(RETENTION_SETTING, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or not 1 <= int(text) <= 36_500:
        raise StoreError(f"{RETENTION_SETTING} must be a whole number of days from 1 to 36500")
    return int(text)


def _encode_meta(meta: Mapping[str, object] | None) -> str | None:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise StoreError("journal meta must be a JSON object")
    try:
        text = json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"journal meta is not JSON: {exc}") from None
    if len(text.encode()) > MAX_META_BYTES:
        raise StoreError(f"journal meta is larger than {MAX_META_BYTES} bytes")
    return text


def _clean_reason(reason: str) -> str:
    text = " ".join(str(reason).split())  # one line
    return text[:MAX_REASON_CHARS]


class SigningJournal:
    """The journal table of one open store. Every write is one transaction, durable when the call returns."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reading ----------------------------------------------------------------------------------------------------

    def lookup(self, pending_id: str) -> JournalEntry | None:
        check_pending_id(pending_id)
        with self._db.reading() as conn:
            return _lookup(conn, pending_id)

    def payload(self, pending_id: str) -> str | None:
        """The signed payload of a pending id, or None (never signed here, or refused / held unsigned)."""
        entry = self.lookup(pending_id)
        return None if entry is None else entry.payload

    def entries(self, state: JournalState | str | None = None) -> list[JournalEntry]:
        query, params = _SELECT, ()
        if state is not None:
            query, params = _SELECT + " WHERE state = ?", (parse_state(state).value,)
        with self._db.reading() as conn:
            return [_entry(row) for row in conn.execute(query + " ORDER BY rowid", params)]

    def stuck(self, older_than_s: float = 0.0, now: float | None = None) -> list[JournalEntry]:
        """Entries still at `signed` whose last change is at least `older_than_s` old: killed between broadcast and
        the status update, or never accepted. The daemon asks the Tatum API about each, then calls reconcile()."""
        cutoff = int((time.time() if now is None else now) - older_than_s)
        with self._db.reading() as conn:
            rows = conn.execute(
                _SELECT + " WHERE state = ? AND updated_at <= ? ORDER BY rowid", (S.SIGNED.value, cutoff)
            ).fetchall()
        return [_entry(row) for row in rows]

    def unreported_poisoned(self) -> list[JournalEntry]:
        with self._db.reading() as conn:
            rows = conn.execute(_SELECT + " WHERE state = ? AND reported = 0 ORDER BY rowid", (S.POISONED.value,))
            return [_entry(row) for row in rows]

    def nonces_held(self, chain: str, sender: str, at_least: int = 0) -> set[int]:
        """The account nonces (``meta.nonce``, at least ``at_least``) of ``sender``'s (``meta.from``) payloads
        journaled for ``chain`` and not known to be settled (signed or broadcast): the daemon never hands one of
        them to another pending transaction."""
        with self._db.reading() as conn:
            sender_of, nonce_of = conn.json_text("meta", "from"), conn.json_int("meta", "nonce")
            rows = conn.execute(
                f"SELECT {nonce_of} FROM journal WHERE chain = ? AND state IN (?, ?)"  # noqa: S608 - backend's own SQL
                f" AND meta IS NOT NULL AND {sender_of} = ? AND {nonce_of} >= ?",
                (chain.strip().upper(), S.SIGNED.value, S.BROADCAST.value, sender.lower(), at_least),
            ).fetchall()
        return {int(row[0]) for row in rows if isinstance(row[0], int)}

    def counts(self) -> dict[str, int]:
        """Entries per state (the ``kms_journal_entries`` gauge)."""
        with self._db.reading() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM journal GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    def was_released(self, pending_id: str, payload_sha256: str) -> bool:
        """Whether an operator released this id while it held this payload (so the audit log's record of that
        signing must no longer hold the id)."""
        check_pending_id(pending_id)
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM journal_releases WHERE pending_id = ? AND payload_sha256 = ?",
                (pending_id, payload_sha256),
            ).fetchone()
        return row is not None

    # -- writing ----------------------------------------------------------------------------------------------------

    def put(
        self,
        pending_id: str,
        chain: str,
        payload: str,
        request_sha256: str = "",
        meta: Mapping[str, object] | None = None,
    ) -> None:
        """Journal the signed payload (absent -> signed) before it is broadcast. Idempotent for the same payload (the
        first meta is kept); a different payload raises JournalConflictError, a refused, poisoned or held id
        JournalStateError."""
        error = self.put_many([SignedPayload(pending_id, chain, payload, request_sha256, meta)])[0]
        if error is not None:
            raise error

    def put_many(self, items: Sequence[SignedPayload]) -> list[StoreError | None]:
        """``put`` for several payloads in one transaction (one fsync: the daemon's group commit). Each item's
        outcome is its own: None when journaled (or already journaled with the same payload), else the error ``put``
        would raise for it, and that item wrote nothing. A failure of the transaction itself raises."""
        results: list[StoreError | None] = []
        rows: list[tuple[int, SignedPayload, str | None]] = []
        for position, item in enumerate(items):
            try:
                rows.append((position, item, _checked_put(item)))
                results.append(None)
            except StoreError as exc:
                results.append(exc)
        with self._db.writing(need_key=False) as txn:
            for position, item, meta_json in rows:
                results[position] = _put_row(txn.conn, item, meta_json)
        return results

    def resign(
        self, pending_id: str, replaced: str, payload: str, meta: Mapping[str, object] | None, reason: str
    ) -> None:
        """signed -> signed with a new payload, replacing ``replaced`` (which the node proved expired and never
        landed). JournalConflictError when the entry holds another payload by now (someone else re-signed first);
        JournalStateError when it is not signed (a broadcast or completed entry is never re-signed)."""
        check_pending_id(pending_id)
        if not isinstance(payload, str) or not payload or payload == replaced:
            raise StoreError("a re-signed journal txData must be new, non-empty text")
        if not reason:
            raise StoreError("a re-signing is journaled with its reason")
        with self._db.writing(need_key=False) as txn:
            entry = _require(txn.conn, pending_id)
            if entry.state is not S.SIGNED:
                raise JournalStateError(f"pending transaction '{pending_id}' is {entry.status}; it is not re-signed")
            if entry.payload != replaced:
                raise JournalConflictError(
                    f"pending transaction '{pending_id}' no longer holds the payload that expired; not re-signed"
                )
            meta_json = _encode_meta({**(meta or {}), "replacedPayloadSha256": entry.payload_sha256})
            txn.conn.execute(
                "UPDATE journal SET payload = ?, payload_sha256 = ?, meta = ?, reason = ?, updated_at = ?"
                " WHERE pending_id = ?",
                (payload, sha256_text(payload), meta_json, _clean_reason(reason), int(time.time()), pending_id),
            )

    def refuse(self, pending_id: str, chain: str, reason: str = "") -> None:
        """absent -> refused (the four-eye server said no). Refusing a refused id again changes nothing."""
        self._create_blocked(pending_id, chain, S.REFUSED, reason)

    def quarantine(self, pending_id: str, chain: str, reason: str) -> None:
        """-> poisoned: processing this id took a worker down; it is never retried automatically. Kept once
        poisoned (the first reason stays); `reported` starts false until mark_reported()."""
        check_pending_id(pending_id)
        with self._db.writing(need_key=False) as txn:
            existing = _lookup(txn.conn, pending_id)
            if existing is None:
                _insert(txn.conn, pending_id, chain, S.POISONED, None, "", "", None, _clean_reason(reason))
            elif existing.state is not S.POISONED:
                _move(txn.conn, existing, S.POISONED, reason)

    def mark_reported(self, pending_id: str) -> None:
        """A poisoned id was reported to the Tatum API: never report it again."""
        check_pending_id(pending_id)
        with self._db.writing(need_key=False) as txn:
            entry = _require(txn.conn, pending_id)
            if entry.state is not S.POISONED:
                raise JournalStateError(f"pending transaction '{pending_id}' is {entry.status}, not poisoned")
            txn.conn.execute("UPDATE journal SET reported = 1 WHERE pending_id = ?", (pending_id,))

    def hold(self, pending_id: str, reason: str, *, chain: str = "", payload_sha256: str = "") -> None:
        """-> held: the id was signed elsewhere (the audit log says so, the journal does not agree), so it is never
        signed here until an operator releases it. `payload_sha256` is the hash that signing recorded."""
        check_pending_id(pending_id)
        if not _SHA256_RE.fullmatch(payload_sha256):
            raise StoreError("a held payload hash must be a lowercase hex SHA-256 or empty")
        with self._db.writing(need_key=False) as txn:
            existing = _lookup(txn.conn, pending_id)
            if existing is None:
                _insert(
                    txn.conn, pending_id, chain or "?", S.HELD, None, payload_sha256, "", None, _clean_reason(reason)
                )
            elif existing.state is not S.HELD:
                _move(txn.conn, existing, S.HELD, reason)

    def mark_broadcast(self, pending_id: str) -> None:
        """The broadcast call accepted the payload. A completed entry stays completed. Written without its own fsync
        (the next durable write carries it): losing it to a power cut leaves the entry `signed`, and the daemon then
        sends the same payload again, which the network takes as the transaction it already has."""
        check_pending_id(pending_id)
        with self._db.writing(need_key=False, durable=False) as txn:
            _move(txn.conn, _require(txn.conn, pending_id), S.BROADCAST)

    def reconcile(self, pending_id: str, outcome: JournalState, reason: str = "") -> None:
        """Record what the Tatum API said about a signed or broadcast entry: completed, failed, or still signed
        (then only the reconciliation time changes; the daemon re-sends the same payload)."""
        outcome = parse_state(outcome)
        if outcome not in (S.SIGNED, S.COMPLETED, S.FAILED):
            raise StoreError(f"a reconciliation ends in signed, completed or failed, not {outcome.value}")
        check_pending_id(pending_id)
        now = int(time.time())
        with self._db.writing(need_key=False) as txn:
            entry = _require(txn.conn, pending_id)
            if entry.state not in (S.SIGNED, S.BROADCAST) and entry.state is not outcome:
                raise JournalStateError(f"pending transaction '{pending_id}' is {entry.status}; not reconciled")
            if outcome is not S.SIGNED and outcome is not entry.state:
                _move(txn.conn, entry, outcome, reason)
            txn.conn.execute("UPDATE journal SET reconciled_at = ? WHERE pending_id = ?", (now, pending_id))

    def transition(self, pending_id: str, state: JournalState | str, reason: str = "") -> None:
        """Move an existing entry to `state` if the state machine allows it (JournalStateError otherwise)."""
        target = parse_state(state)
        check_pending_id(pending_id)
        with self._db.writing(need_key=False) as txn:
            _move(txn.conn, _require(txn.conn, pending_id), target, reason)

    def release(self, pending_id: str) -> JournalEntry:
        """Forget a pending id, whatever its state (an operator's decision: it may then be signed again, possibly
        differently). Leaves a release record so that a later reconciliation with the audit log does not hold it."""
        check_pending_id(pending_id)
        with self._db.writing(need_key=False) as txn:
            entry = _require(txn.conn, pending_id)
            txn.conn.execute("DELETE FROM journal WHERE pending_id = ?", (pending_id,))
            txn.conn.execute(
                "INSERT INTO journal_releases (pending_id, payload_sha256, state, released_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (pending_id, payload_sha256) DO UPDATE SET state = excluded.state,"
                " released_at = excluded.released_at",
                (pending_id, entry.payload_sha256, entry.status, int(time.time())),
            )
        return entry

    def prune(self, older_than_days: int = DEFAULT_RETENTION_DAYS, now: float | None = None) -> int:
        """Delete broadcast and completed entries unchanged for `older_than_days`; returns how many. Signed, failed,
        refused, poisoned and held entries are kept: each still means something to the daemon or an operator."""
        if not isinstance(older_than_days, int) or older_than_days < 1:
            raise StoreError("the journal retention must be at least one day")
        cutoff = int((time.time() if now is None else now) - older_than_days * _DAY_S)
        with self._db.writing(need_key=False) as txn:
            placeholders = ", ".join("?" for _ in _PRUNABLE)
            cursor = txn.conn.execute(
                f"DELETE FROM journal WHERE state IN ({placeholders}) AND updated_at < ?",  # noqa: S608
                (*(s.value for s in _PRUNABLE), cutoff),
            )
            return cursor.rowcount

    def _create_blocked(self, pending_id: str, chain: str, state: JournalState, reason: str) -> None:
        check_pending_id(pending_id)
        with self._db.writing(need_key=False) as txn:
            existing = _lookup(txn.conn, pending_id)
            if existing is None:
                _insert(txn.conn, pending_id, chain, state, None, "", "", None, _clean_reason(reason))
            elif existing.state is not state:
                raise JournalStateError(
                    f"pending transaction '{pending_id}' is {existing.status} in the journal; not {state.value}"
                )


# -- statements (inside the caller's transaction) ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedPayload:
    """One ``put``: a payload to journal for a pending id."""

    pending_id: str
    chain: str
    payload: str
    request_sha256: str = ""
    meta: Mapping[str, object] | None = None


def _checked_put(item: SignedPayload) -> str | None:
    """Checks one ``put`` before the transaction; returns its meta as JSON."""
    check_pending_id(item.pending_id)
    if not isinstance(item.payload, str) or not item.payload:
        raise StoreError("journal txData must be non-empty text")
    if not isinstance(item.request_sha256, str) or not _SHA256_RE.fullmatch(item.request_sha256):
        raise StoreError("journal request hash must be a lowercase hex SHA-256 or empty")
    return _encode_meta(item.meta)


def _put_row(conn: StoreConnection, item: SignedPayload, meta_json: str | None) -> StoreError | None:
    existing = _lookup(conn, item.pending_id)
    if existing is None:
        _insert(
            conn, item.pending_id, item.chain, S.SIGNED, item.payload, sha256_text(item.payload), item.request_sha256,
            meta_json,
        )  # fmt: skip
        return None
    if existing.payload == item.payload:
        return None
    if existing.payload is None:
        return JournalStateError(
            f"pending transaction '{item.pending_id}' is {existing.status} in the journal; it is not signed"
        )
    return JournalConflictError(
        f"pending transaction '{item.pending_id}' already has a different signed txData in the journal"
    )


def _lookup(conn: StoreConnection, pending_id: str) -> JournalEntry | None:
    row = conn.execute(_SELECT + " WHERE pending_id = ?", (pending_id,)).fetchone()
    return None if row is None else _entry(row)


def _require(conn: StoreConnection, pending_id: str) -> JournalEntry:
    entry = _lookup(conn, pending_id)
    if entry is None:
        raise StoreError(f"no journal entry for pending transaction '{pending_id}'")
    return entry


def _insert(
    conn: StoreConnection,
    pending_id: str,
    chain: str,
    state: JournalState,
    payload: str | None,
    payload_sha256: str,
    request_sha256: str,
    meta_json: str | None,
    reason: str = "",
) -> None:
    now = int(time.time())
    conn.execute(
        "INSERT INTO journal (pending_id, chain, state, payload, payload_sha256, request_sha256, meta, reason,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (pending_id, str(chain).strip().upper(), state.value, payload, payload_sha256, request_sha256, meta_json,
         reason, now, now),
    )  # fmt: skip


def _move(conn: StoreConnection, entry: JournalEntry, target: JournalState, reason: str = "") -> None:
    if target is S.BROADCAST and entry.state is S.COMPLETED:
        return  # already further along
    if target not in _TRANSITIONS[entry.state]:
        raise JournalStateError(
            f"pending transaction '{entry.pending_id}' is {entry.status} in the journal; it cannot become "
            f"{target.value}"
        )
    new_reason = _clean_reason(reason) if reason else entry.reason
    conn.execute(
        "UPDATE journal SET state = ?, reason = ?, updated_at = ? WHERE pending_id = ?",
        (target.value, new_reason, int(time.time()), entry.pending_id),
    )


# -- schema versions ---------------------------------------------------------------------------------------------------


def upgrade(conn: StoreConnection, from_version: int) -> None:
    """Rewrite a schema-1 journal (status text, a refused marker in tx_data, maybe no request_sha256 column) as the
    current table, inside the caller's transaction. A status this kms never wrote becomes `signed`: the daemon then
    asks the Tatum API about it and never signs it anew."""
    if from_version != 1:
        raise StoreError(f"cannot upgrade a wallet store from schema version {from_version}")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(journal)")}
    request = "request_sha256" if "request_sha256" in columns else "''"
    old_rows = conn.execute(
        f"SELECT pending_id, chain, tx_data, {request}, status, created_at, updated_at FROM journal ORDER BY rowid"  # noqa: S608
    ).fetchall()
    conn.execute("ALTER TABLE journal RENAME TO journal_schema1")
    for statement in SCHEMA.split(";"):  # not executescript: that would commit the caller's transaction
        if statement.strip():
            conn.execute(statement)
    for pending_id, chain, tx_data, request_sha256, status, created_at, updated_at in old_rows:
        conn.execute(
            f"INSERT INTO journal ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, '', 0, NULL, ?, ?)",  # noqa: S608
            (pending_id, chain, *_upgraded(str(tx_data), str(status)), request_sha256, created_at, updated_at),
        )
    conn.execute("DROP TABLE journal_schema1")


def _upgraded(tx_data: str, status: str) -> tuple[str, str | None, str]:
    """(state, payload, payload_sha256) of a schema-1 row."""
    if tx_data == _LEGACY_REFUSED_MARKER:
        return S.REFUSED.value, None, ""
    state = status if status in (S.SIGNED.value, S.BROADCAST.value) else S.SIGNED.value
    return state, tx_data, sha256_text(tx_data)
