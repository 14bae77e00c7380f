"""The shared store backend: one PostgreSQL database that several daemons (replicas) use at once.

The same records as the file: sealed by kms with AES-256-GCM before they are sent, under the same associated data and
the same wrapped data key, so the database holds ciphertext only and a row moved to another id fails authentication.
Writers serialise on one transaction-scoped advisory lock (the file's BEGIN IMMEDIATE); the per-chain limit is also a
CHECK constraint, so it holds whatever a client does. Claims (kms.store.claims) and replica heartbeats
(kms.store.replicas) live in two more tables, and a trigger refuses a signed journal entry from a replica that does
not hold the pending id's claim.

psycopg (the ``kms[postgres]`` extra) is imported here only. The password comes from the provider layer at every
connect; TLS is required except to a loopback address or a local socket; the location printed never has a password.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from kms.errors import (
    ClaimLostError,
    DuplicateKeyError,
    KmsError,
    LimitExceededError,
    StoreError,
    StoreUnavailableError,
    UsageError,
)
from kms.store import velocity as velocity_schema
from kms.store.backend import CredentialSource, Cursor, StoreConnection
from kms.store.format import KINDS, MAGIC, MAX_WALLETS_PER_CHAIN
from kms.store.journal import PAYLOAD_STATES, JournalState

CLOCK = "extract(epoch from clock_timestamp())::double precision"
"""The database's clock, in unix seconds: every lease and heartbeat is measured on this one clock."""
_WRITER_LOCK = 0x6B6D7331  # pg_advisory_xact_lock key of the store's writer lock ("kms1")
_CLAIM_LOST_STATE = "KM001"
_CONNECT_TIMEOUT_S = 10
_STATEMENT_TIMEOUT_MS = 120_000
_SECURE_SSLMODES = ("require", "verify-ca", "verify-full")


def _states(states: Iterable[JournalState]) -> str:
    return ", ".join(f"'{s.value}'" for s in states)


SCHEMA = f"""
CREATE TABLE kms_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
CREATE TABLE header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    magic TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    kdf TEXT NOT NULL,
    salt BYTEA NOT NULL,
    key_nonce BYTEA NOT NULL,
    wrapped_key BYTEA NOT NULL,
    key_generation BIGINT NOT NULL,
    encryptions BIGINT NOT NULL
);
CREATE TABLE wallets (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    signature_id TEXT PRIMARY KEY NOT NULL,
    chain TEXT NOT NULL,
    testnet SMALLINT NOT NULL CHECK (testnet IN (0, 1)),
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in KINDS)})),
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL
);
CREATE INDEX wallets_by_chain ON wallets (chain, testnet, rowid);
CREATE TABLE chain_counts (
    chain TEXT NOT NULL,
    testnet SMALLINT NOT NULL,
    wallets INTEGER NOT NULL CHECK (wallets BETWEEN 0 AND {MAX_WALLETS_PER_CHAIN}),
    PRIMARY KEY (chain, testnet)
);
CREATE FUNCTION kms_count_wallets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE chain_counts SET wallets = wallets - 1 WHERE chain = OLD.chain AND testnet = OLD.testnet;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO chain_counts (chain, testnet, wallets) VALUES (NEW.chain, NEW.testnet, 1)
            ON CONFLICT (chain, testnet) DO UPDATE SET wallets = chain_counts.wallets + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER wallets_counted AFTER INSERT OR DELETE OR UPDATE OF chain, testnet ON wallets
    FOR EACH ROW EXECUTE FUNCTION kms_count_wallets();
CREATE TABLE journal (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    pending_id TEXT PRIMARY KEY NOT NULL,
    chain TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_states(JournalState)})),
    payload TEXT CHECK (payload IS NULL OR length(payload) > 0),
    payload_sha256 TEXT NOT NULL DEFAULT '',
    request_sha256 TEXT NOT NULL DEFAULT '',
    meta TEXT,
    reason TEXT NOT NULL DEFAULT '',
    reported SMALLINT NOT NULL DEFAULT 0 CHECK (reported IN (0, 1)),
    reconciled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (state NOT IN ({_states(PAYLOAD_STATES)}) OR payload IS NOT NULL)
);
CREATE INDEX journal_by_state ON journal (state, updated_at);
CREATE TABLE journal_releases (
    pending_id TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    released_at BIGINT NOT NULL,
    PRIMARY KEY (pending_id, payload_sha256)
);
CREATE TABLE claims (
    pending_id TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL
);
CREATE FUNCTION kms_signed_under_claim() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me TEXT := coalesce(current_setting('kms.replica', true), '');
BEGIN
    -- Only a daemon replica names itself; operator tools (kms store copy, kms journal) are not refused here.
    IF me <> '' AND NOT EXISTS (
        SELECT 1 FROM claims WHERE pending_id = NEW.pending_id AND holder = me AND lease_until > {CLOCK}
    ) THEN
        RAISE EXCEPTION 'replica does not hold the claim on this pending transaction'
            USING ERRCODE = '{_CLAIM_LOST_STATE}';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_signed_under_claim BEFORE INSERT ON journal
    FOR EACH ROW WHEN (NEW.state = 'signed') EXECUTE FUNCTION kms_signed_under_claim();
"""  # noqa: S608 - constants only


def _psycopg() -> ModuleType:
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs the psycopg package; install it with: pip install 'kms[postgres]'"
        ) from None


@lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """Portable ``?`` placeholders as psycopg's ``%s`` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def translate(exc: Exception) -> KmsError:
    """A psycopg error as the store's errors (one line; a server message never carries a key: none is sent)."""
    psycopg = _psycopg()
    state = getattr(exc, "sqlstate", None)
    if state == _CLAIM_LOST_STATE:
        return ClaimLostError("this replica does not hold the claim on the pending transaction; not journaled")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return DuplicateKeyError(f"wallet store constraint failed: {_first_line(exc)}")
    if isinstance(exc, psycopg.errors.CheckViolation) and "chain_counts" in str(exc):
        return LimitExceededError(f"the limit of {MAX_WALLETS_PER_CHAIN} signatureIds per chain would be passed")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and state is None:
        return StoreUnavailableError(f"the wallet store database cannot be reached: {_first_line(exc)}")
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow):
        return StoreUnavailableError(f"the wallet store database is restarting: {_first_line(exc)}")
    return StoreError(f"wallet store database error: {_first_line(exc)}")


class PostgresConnection:
    """kms.store.backend.StoreConnection over psycopg, reconnecting at the next transaction after a lost link."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._conn: Any = None

    def _live(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._conn = self._backend.raw_connect()
        return self._conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        psycopg = _psycopg()
        try:
            return self._live().execute(_dialect(sql), tuple(params))  # type: ignore[no-any-return]
        except psycopg.Error as exc:
            raise translate(exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        psycopg = _psycopg()
        try:
            with self._live().cursor() as cursor:
                cursor.executemany(_dialect(sql), [tuple(row) for row in rows])
        except psycopg.Error as exc:
            raise translate(exc) from None

    def begin_read(self) -> None:
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def begin_write(self, *, durable: bool = True) -> None:
        self.execute("BEGIN")
        if not durable:
            self.execute("SET LOCAL synchronous_commit = off")
        self.execute(f"SELECT pg_advisory_xact_lock({_WRITER_LOCK})")

    def begin_rows(self) -> None:
        """A write transaction without the writer lock: claims and heartbeats are single atomic statements."""
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except _psycopg().Error:
            conn.close()  # reconnected at the next transaction

    @property
    def in_transaction(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            return False
        return bool(conn.info.transaction_status != _psycopg().pq.TransactionStatus.IDLE)

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def json_int(self, column: str, key: str) -> str:
        # Only integral JSON numbers count (a nonce is one); anything else is NULL rather than a cast error. No question
        # mark in here: the placeholder translation would take it for one.
        return (
            f"(CASE WHEN jsonb_typeof({column}::jsonb -> '{key}') = 'number' "
            f"AND ({column}::jsonb ->> '{key}') ~ '^-*[0-9]+$' THEN ({column}::jsonb ->> '{key}')::bigint END)"
        )

    def schema_version(self) -> int:
        row = self.execute("SELECT version FROM kms_schema WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, version: int) -> None:
        self.execute(
            "INSERT INTO kms_schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = ?",
            (int(version), int(version)),
        )

    def checkpoint(self) -> None:
        """Nothing to do: the server's own WAL and VACUUM handle replaced rows (see SECURITY.md)."""

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class PostgresBackend:
    """A store in a PostgreSQL database. Several daemons may use it at once (``replicated``)."""

    replicated = True
    path: Path | None = None
    clock = CLOCK

    def __init__(self, params: dict[str, str], credentials: CredentialSource | None) -> None:
        self._params = params
        self._credentials = credentials
        self.location = describe(params)
        self.replica_id = f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(4)}"
        """This process's name among the replicas."""
        self._replica = False

    def as_replica(self) -> PostgresBackend:
        """Connect as a daemon replica: every connection names replica_id (kms.replica), and the database then
        refuses a signed journal entry for a pending id this replica holds no live claim on."""
        self._replica = True
        return self

    def raw_connect(self) -> Any:
        psycopg = _psycopg()
        kwargs: dict[str, Any] = dict(self._params)
        secret = self._credentials() if self._credentials is not None else None
        try:
            if secret is not None:
                kwargs["password"] = secret.raw().decode("utf-8")
            conn = psycopg.connect(autocommit=True, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from None
        except UnicodeDecodeError:
            raise StoreError("the wallet store database password is not UTF-8") from None
        finally:
            kwargs.pop("password", None)
            if secret is not None:
                secret.wipe()
        if self._replica:
            try:
                conn.execute("SELECT set_config('kms.replica', %s, false)", (self.replica_id,))
            except psycopg.Error as exc:
                conn.close()
                raise translate(exc) from None
        return conn

    def probe(self) -> str:
        conn = PostgresConnection(self)
        try:
            if conn.execute("SELECT to_regclass('header')").fetchone()[0] is None:
                return "missing"
            try:
                row = conn.execute("SELECT magic FROM header WHERE id = 1").fetchone()
            except StoreUnavailableError:
                raise
            except StoreError:  # a table of that name that is not ours
                return "other"
            return "kms" if row is not None and row[0] == MAGIC else "other"
        finally:
            conn.close()

    def create(self, initialise: Callable[[StoreConnection], None], schema_version: int) -> bool:
        """DDL is transactional here: the tables, the header and the version appear together or not at all."""
        conn = PostgresConnection(self)
        try:
            conn.begin_write()
            try:
                if conn.execute("SELECT to_regclass('header')").fetchone()[0] is not None:
                    conn.rollback()
                    return False
                conn.execute(SCHEMA)
                velocity_schema.create(conn)
                conn.set_schema_version(schema_version)
                initialise(conn)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            return True
        finally:
            conn.close()

    def connect(self) -> StoreConnection:
        conn = PostgresConnection(self)
        conn._live()
        return conn

    def check_placement(self) -> None:
        """Who may read the tables is the database's access control (see ops/README.md); kms needs none beyond
        its own role."""

    def upgrade(self, conn: StoreConnection, from_version: int) -> None:
        if from_version != 2:
            raise StoreError(f"cannot upgrade a PostgreSQL wallet store from schema version {from_version}")
        velocity_schema.create(conn)  # schema 3: the policy velocity table


def describe(params: dict[str, str]) -> str:
    """A printable location: postgresql://user@host:port/db?sslmode=..., never the password."""
    user = quote(params.get("user", ""), safe="")
    host = params.get("host", "")
    port = f":{params['port']}" if params.get("port") else ""
    where = f"{user}@" if user else ""
    return f"postgresql://{where}{host}{port}/{quote(params.get('dbname', ''), safe='')}?sslmode={params['sslmode']}"


def _is_local(host: str) -> bool:
    from backends.base import is_loopback_host

    return all(h.startswith("/") or is_loopback_host(h) for h in host.split(",") if h) and bool(host)


def from_location(location: str, credentials: CredentialSource | None = None) -> PostgresBackend:
    """Parse a postgresql:// URL. TLS (sslmode require or verify-*) is required unless every host is loopback or a
    local socket; without sslmode, verify-full is used for a remote host (prefer for a local one)."""
    psycopg = _psycopg()
    try:
        params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(location.strip()).items()}
    except psycopg.Error:
        raise UsageError("the store URL is not a valid postgresql:// URL") from None
    if "password" in params and credentials is not None:
        params.pop("password")  # the provider's credential wins over one written into the URL
    local = _is_local(params.get("host", ""))
    sslmode = params.get("sslmode", "")
    if not sslmode:
        params["sslmode"] = "prefer" if local else "verify-full"
    elif not local and sslmode not in _SECURE_SSLMODES:
        raise UsageError(
            f"refusing sslmode={sslmode} to a remote database: the store URL needs sslmode=verify-full (or require)"
        )
    if not params.get("host"):
        raise UsageError("the store URL names no database host")
    params.setdefault("connect_timeout", str(_CONNECT_TIMEOUT_S))
    params.setdefault("application_name", "kms")
    # A cut network must fail statements, not hang them: keepalives and a bound on every statement.
    params.setdefault("keepalives", "1")
    params.setdefault("keepalives_idle", "5")
    params.setdefault("keepalives_interval", "2")
    params.setdefault("keepalives_count", "3")
    params.setdefault("tcp_user_timeout", "15000")
    params.setdefault("options", f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}")
    return PostgresBackend(params, credentials)
