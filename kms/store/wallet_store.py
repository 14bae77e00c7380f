"""WalletStore: every managed wallet in one SQLite file, each record sealed with AES-256-GCM under a data key that is
itself wrapped under a key derived from the password (see kms.store.crypto for the cryptography, kms.store.format
for the layout)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kms.errors import (
    KmsError,
    LimitExceededError,
    NotAStoreError,
    StoreError,
    TamperedRecordError,
    UpstreamStoreError,
    UsageError,
    WalletNotFoundError,
    WrongPasswordError,
)
from kms.hygiene import SecretBuffer
from kms.store import database, journal
from kms.store.crypto import (
    KdfParams,
    RecordCipher,
    derive_kek,
    new_data_key,
    random_bytes,
    unwrap_key,
    wrap_key,
)
from kms.store.errors import ImportConflictError, InvalidWalletError, StoreMissingError, WeakKdfError
from kms.store.format import (
    FORMAT_VERSION,
    KINDS,
    MAGIC,
    MAX_WALLETS_PER_CHAIN,
    SCHEMA,
    check_fields,
    check_signature_id,
    decode_fields,
    encode_fields,
    header_aad,
    normalize_chain,
    record_aad,
)
from kms.store.journal import JournalEntry
from kms.store.model import StoredWallet, WalletMeta

DEFAULT_STORE_PATH = Path.home() / ".tatumrc" / "wallet.dat"
DEFAULT_ROTATE_AFTER = 2**24
_ROTATION_BATCH = 1000
_INSERT_WALLET = "INSERT INTO wallets (signature_id, chain, testnet, kind, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?)"
_SELECT_RECORD = "SELECT chain, testnet, kind, nonce, ciphertext FROM wallets WHERE signature_id = ?"

_Row = tuple[object, object, object, object, object]


@dataclass
class _Header:
    kdf_json: str
    kdf: KdfParams
    salt: bytes
    key_nonce: bytes
    wrapped_key: bytes
    key_generation: int
    encryptions: int


@dataclass
class _Txn:
    conn: sqlite3.Connection
    cipher: RecordCipher
    encryptions: int
    counter_dirty: bool = False
    new_key_nonce: bytes | None = None  # set when this transaction installed a new data key


class WalletStore:
    """Open with WalletStore.open(); use as a context manager or call close(), which wipes the keys.

    One instance is safe to share between threads. Any number of processes may open the same file at once.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        kek: SecretBuffer,
        header: _Header,
        cipher: RecordCipher,
        *,
        allow_weak_kdf: bool,
        rotate_after: int,
    ) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._kek = kek
        self._cipher = cipher
        self._kdf = header.kdf
        self._kdf_json = header.kdf_json
        self._salt = header.salt
        self._key_nonce = header.key_nonce
        self._allow_weak_kdf = allow_weak_kdf
        self._rotate_after = rotate_after
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        path: Path | str,
        password: SecretBuffer,
        *,
        create: bool = False,
        kdf: KdfParams | None = None,
        allow_weak_kdf: bool = False,
        rotate_after: int = DEFAULT_ROTATE_AFTER,
    ) -> WalletStore:
        """Unlock the store at `path` (deriving the password key exactly once), or create it when `create` is set and
        nothing is there. `kdf` only applies to a new store; an existing store keeps the parameters in its header."""
        path = Path(path).expanduser()
        if rotate_after < 1:
            raise UsageError("rotate_after must be at least 1")
        state = database.probe(path)
        if state == "missing":
            if not create:
                raise StoreMissingError(f"no wallet store at {path}")
            created = cls._create(path, password, kdf or KdfParams.default(), allow_weak_kdf, rotate_after)
            if created is not None:
                return created
            state = database.probe(path)  # another process created it first: open theirs
        if state == "upstream":
            raise UpstreamStoreError(
                f"{path} is an upstream tatum-kms wallet file; import it first with: kms migrate --from {path}"
            )
        if state != "kms":
            raise NotAStoreError(f"{path} is not a kms wallet store; refusing to read or overwrite it")
        return cls._unlock(path, password, allow_weak_kdf, rotate_after)

    @staticmethod
    def probe(path: Path | str) -> str:
        """ "missing" | "kms" | "upstream" | "other". Reads the first bytes of the file only."""
        return database.probe(Path(path).expanduser())

    @classmethod
    def _create(
        cls, path: Path, password: SecretBuffer, kdf: KdfParams, allow_weak_kdf: bool, rotate_after: int
    ) -> WalletStore | None:
        kdf.check_range()
        if kdf.is_weak() and not allow_weak_kdf:
            raise WeakKdfError(f"KDF parameters {kdf.describe()} are below the minimum; refusing to create the store")
        if not password:
            raise UsageError("the store password must not be empty")
        salt = random_bytes(kdf.salt_len)
        kdf_json = kdf.to_json()
        kek = derive_kek(password, salt, kdf)
        cipher = RecordCipher(new_data_key())
        key_nonce, wrapped = wrap_key(kek, cipher.key, header_aad(FORMAT_VERSION, kdf_json, salt))
        header = _Header(kdf_json, kdf, salt, key_nonce, wrapped, 1, 0)

        def initialise(conn: sqlite3.Connection) -> None:
            conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)
            conn.execute(
                "INSERT INTO header (id, magic, format_version, kdf, salt, key_nonce, wrapped_key, key_generation,"
                " encryptions) VALUES (1, ?, ?, ?, ?, ?, ?, 1, 0)",
                (MAGIC, FORMAT_VERSION, kdf_json, salt, key_nonce, wrapped),
            )
            conn.execute("COMMIT")

        try:
            if not database.create_atomically(path, initialise):
                kek.wipe()
                cipher.wipe()
                return None
            conn = database.connect(path)
        except BaseException:
            kek.wipe()
            cipher.wipe()
            raise
        return cls(path, conn, kek, header, cipher, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after)

    @classmethod
    def _unlock(cls, path: Path, password: SecretBuffer, allow_weak_kdf: bool, rotate_after: int) -> WalletStore:
        conn = database.connect(path)
        kek: SecretBuffer | None = None
        try:
            try:
                conn.execute("BEGIN")
                header = _read_header(conn)
                journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"the wallet store {path} is damaged: {exc}") from None
            if header.kdf.is_weak() and not allow_weak_kdf:
                raise WeakKdfError(
                    f"the store's KDF parameters ({header.kdf.describe()}) are below the minimum; refusing to open it"
                )
            kek = derive_kek(password, header.salt, header.kdf)
            data_key = unwrap_key(
                kek, header.key_nonce, header.wrapped_key, header_aad(FORMAT_VERSION, header.kdf_json, header.salt)
            )
            if data_key is None:
                raise WrongPasswordError()
            if str(journal_mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            if kek is not None:
                kek.wipe()
            conn.close()
            raise
        cipher = RecordCipher(data_key)
        return cls(path, conn, kek, header, cipher, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after)

    # ------------------------------------------------------------------------------------------- life cycle

    @property
    def path(self) -> Path:
        return self._path

    @property
    def kdf(self) -> KdfParams:
        return self._kdf

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Wipe the data key and the password key, and close the file. Idempotent."""
        with self._lock:
            self._cipher.wipe()
            self._kek.wipe()
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> WalletStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WalletStore {self._path} {'closed' if self.closed else 'open'}>"

    # ----------------------------------------------------------------------------------------------- wallets

    def add(self, chain: str, testnet: bool, fields: Mapping[str, str]) -> str:
        """Store one wallet; returns its new signatureId (UUID4). Durable once this returns."""
        return self.add_many([(chain, testnet, fields)])[0]

    def add_many(self, items: Iterable[tuple[str, bool, Mapping[str, str]]]) -> list[str]:
        """Store several wallets in ONE transaction: all of them, or (limit, crash, error) none."""
        prepared: list[tuple[str, str, bool, str, SecretBuffer]] = []
        try:
            for chain, testnet, fields in items:
                code = normalize_chain(chain)
                kind = check_fields(fields)
                prepared.append((str(uuid.uuid4()), code, _check_testnet(testnet), kind, encode_fields(fields)))
            if prepared:
                with self._writing() as txn:
                    self._check_limits(txn.conn, Counter((code, testnet) for _, code, testnet, _, _ in prepared))
                    self._insert(txn, prepared)
            return [signature_id for signature_id, *_ in prepared]
        finally:
            for *_, plaintext in prepared:
                plaintext.wipe()

    def get(self, signature_id: str) -> StoredWallet:
        """Decrypt one wallet. Raises WalletNotFoundError, or TamperedRecordError if its bytes were altered."""
        with self._reading(need_key=True) as conn:
            row = conn.execute(_SELECT_RECORD, (signature_id,)).fetchone()
            if row is None:
                raise WalletNotFoundError(_printable(signature_id))
            meta, plaintext = self._open_row(signature_id, row, self._cipher)
        return StoredWallet(meta, plaintext)

    def meta(self, signature_id: str) -> WalletMeta:
        """Chain, network and kind of one wallet, without decrypting it."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT chain, testnet, kind FROM wallets WHERE signature_id = ?", (signature_id,)
            ).fetchone()
        if row is None:
            raise WalletNotFoundError(_printable(signature_id))
        return WalletMeta(signature_id, str(row[0]), bool(row[1]), str(row[2]))

    def remove(self, signature_id: str) -> None:
        with self._writing(need_key=False) as txn:
            if txn.conn.execute("DELETE FROM wallets WHERE signature_id = ?", (signature_id,)).rowcount == 0:
                raise WalletNotFoundError(_printable(signature_id))

    def signature_ids(self, chain: str, testnet: bool) -> list[str]:
        """The signatureIds of one chain and network, oldest first, without decrypting anything."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT signature_id FROM wallets WHERE chain = ? AND testnet = ? ORDER BY rowid",
                (str(chain).strip().upper(), int(bool(testnet))),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def list_meta(self) -> list[WalletMeta]:
        with self._reading() as conn:
            rows = conn.execute("SELECT signature_id, chain, testnet, kind FROM wallets ORDER BY rowid").fetchall()
        return [WalletMeta(str(sid), str(chain), bool(testnet), str(kind)) for sid, chain, testnet, kind in rows]

    def counts(self) -> dict[tuple[str, bool], int]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT chain, testnet, wallets FROM chain_counts WHERE wallets > 0 ORDER BY chain, testnet"
            ).fetchall()
        return {(str(chain), bool(testnet)): int(n) for chain, testnet, n in rows}

    def export(self) -> dict[str, dict[str, object]]:
        """Every wallet as upstream's JSON record (fields + chain + testnet), oldest first. Fails on a tampered one."""
        result: dict[str, dict[str, object]] = {}
        with self._reading(need_key=True) as conn:
            rows = conn.execute(
                "SELECT signature_id, chain, testnet, kind, nonce, ciphertext FROM wallets ORDER BY rowid"
            ).fetchall()
            for signature_id, *row in rows:
                meta, plaintext = self._open_row(signature_id, tuple(row), self._cipher)
                with StoredWallet(meta, plaintext) as wallet:
                    result[signature_id] = wallet.record()
        return result

    def import_records(self, records: Mapping[str, Mapping[str, object]]) -> int:
        """Import upstream records (signatureId -> {fields..., chain, testnet}) keeping ids and fields unchanged, in
        one transaction. An id already present with identical content is skipped; with different content the whole
        import fails with ImportConflictError. Returns how many wallets were added."""
        wanted: list[tuple[str, str, bool, str, Mapping[str, str]]] = []
        for signature_id, record in records.items():
            check_signature_id(signature_id)
            if not isinstance(record, Mapping):
                raise InvalidWalletError(f"wallet {signature_id!r} is not a record")
            code = normalize_chain(record.get("chain"))
            testnet = record.get("testnet")
            if not isinstance(testnet, bool):
                raise InvalidWalletError(f"wallet {signature_id!r} has no boolean testnet flag")
            fields = {name: value for name, value in record.items() if name not in ("chain", "testnet")}
            kind = check_fields(fields)
            wanted.append((signature_id, code, testnet, kind, fields))  # type: ignore[arg-type]
        prepared: list[tuple[str, str, bool, str, SecretBuffer]] = []
        try:
            with self._writing() as txn:
                for signature_id, code, testnet, kind, fields in wanted:
                    row = txn.conn.execute(_SELECT_RECORD, (signature_id,)).fetchone()
                    if row is not None:
                        if not self._same_record(signature_id, row, txn.cipher, code, testnet, fields):
                            raise ImportConflictError(
                                f"signatureId '{signature_id}' already exists in the store with different content;"
                                " nothing was imported"
                            )
                        continue
                    prepared.append((signature_id, code, testnet, kind, encode_fields(fields)))
                self._check_limits(txn.conn, Counter((code, testnet) for _, code, testnet, _, _ in prepared))
                self._insert(txn, prepared)
            return len(prepared)
        finally:
            for *_, plaintext in prepared:
                plaintext.wipe()

    # ----------------------------------------------------------------------------------------------- keys

    def change_password(
        self, new_password: SecretBuffer, kdf: KdfParams | None = None, *, rotate_data_key: bool = False
    ) -> None:
        """Re-wrap the data key under `new_password` (and, optionally, stronger KDF parameters) in one transaction;
        the old password stops opening the store. With rotate_data_key, every record is also re-encrypted under a
        fresh data key in the same transaction, so a copy of the file taken earlier no longer shares a key with it."""
        params = kdf or self._kdf
        params.check_range()
        if params.is_weak() and not self._allow_weak_kdf:
            raise WeakKdfError(f"KDF parameters {params.describe()} are below the minimum")
        if not new_password:
            raise UsageError("the store password must not be empty")
        self._check_open()
        salt = random_bytes(params.salt_len)
        kdf_json = params.to_json()
        new_kek = derive_kek(new_password, salt, params)  # before taking the write lock: it is slow on purpose
        try:
            with self._writing() as txn:
                if rotate_data_key:
                    self._reencrypt_all(txn)
                key_nonce, wrapped = wrap_key(new_kek, txn.cipher.key, header_aad(FORMAT_VERSION, kdf_json, salt))
                txn.conn.execute(
                    "UPDATE header SET kdf = ?, salt = ?, key_nonce = ?, wrapped_key = ? WHERE id = 1",
                    (kdf_json, salt, key_nonce, wrapped),
                )
                txn.new_key_nonce = key_nonce
                # Installed by _writing only after COMMIT succeeds:
                self._pending_password = (new_kek, params, kdf_json, salt)
        except BaseException:
            self._pending_password = None
            new_kek.wipe()
            raise
        self._checkpoint()  # push the old wrapped key out of the WAL (secure_delete zeroes freed pages)

    def rotate_data_key(self) -> None:
        """Re-encrypt every record under a fresh data key now, in one transaction."""
        with self._writing() as txn:
            self._reencrypt_all(txn)

    # ----------------------------------------------------------------------------------------------- journal

    def journal_put(self, pending_id: str, chain: str, tx_data: str, request_sha256: str = "") -> None:
        """Record the signed txData of a pending transaction (and the SHA-256 of the pending transaction it was made
        from) before broadcasting it. Idempotent for the same data; a different txData for the same id raises
        JournalConflictError."""
        with self._writing(need_key=False) as txn:
            journal.put(txn.conn, pending_id, str(chain).strip().upper(), tx_data, request_sha256)

    def journal_lookup(self, pending_id: str) -> JournalEntry | None:
        with self._reading() as conn:
            return journal.lookup(conn, pending_id)

    def journal_release(self, pending_id: str) -> None:
        with self._writing(need_key=False) as txn:
            journal.release(txn.conn, pending_id)

    def journal_get(self, pending_id: str) -> str | None:
        with self._reading() as conn:
            return journal.get(conn, pending_id)

    def journal_mark(self, pending_id: str, status: str) -> None:
        with self._writing(need_key=False) as txn:
            journal.mark(txn.conn, pending_id, status)

    def journal_entries(self, status: str | None = None) -> list[JournalEntry]:
        with self._reading() as conn:
            return journal.entries(conn, status)

    # ----------------------------------------------------------------------------------------------- internals

    _pending_password: tuple[SecretBuffer, KdfParams, str, bytes] | None = None

    def _check_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the wallet store is closed")
        return self._conn

    @contextmanager
    def _reading(self, *, need_key: bool = False) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot of the file (WAL readers never block or see a torn store)."""
        with self._lock:
            conn = self._check_open()
            try:
                conn.execute("BEGIN")
                try:
                    if need_key:
                        self._follow_header(conn)
                    yield conn
                finally:
                    conn.execute("COMMIT")  # nothing was written; this only ends the snapshot
            except sqlite3.Error as exc:
                raise _store_error(exc) from None

    @contextmanager
    def _writing(self, *, need_key: bool = True) -> Iterator[_Txn]:
        """A write transaction. BEGIN IMMEDIATE takes the file's write lock first, so checks (limits, duplicates)
        and the writes they guard are atomic across processes."""
        with self._lock:
            conn = self._check_open()
            self._pending_password = None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _store_error(exc) from None
            txn: _Txn | None = None
            try:
                encryptions = self._follow_header(conn) if need_key else 0
                txn = _Txn(conn, self._cipher, encryptions)
                yield txn
                if txn.counter_dirty:
                    conn.execute("UPDATE header SET encryptions = ? WHERE id = 1", (txn.encryptions,))
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if txn is not None and txn.cipher is not self._cipher:
                    txn.cipher.wipe()
                if isinstance(exc, sqlite3.Error):
                    raise _store_error(exc) from None
                raise
            self._after_commit(txn)

    def _after_commit(self, txn: _Txn) -> None:
        if txn.cipher is not self._cipher:
            self._cipher.wipe()
            self._cipher = txn.cipher
        if txn.new_key_nonce is not None:
            self._key_nonce = txn.new_key_nonce
        if self._pending_password is not None:
            new_kek, params, kdf_json, salt = self._pending_password
            self._pending_password = None
            self._kek.wipe()
            self._kek, self._kdf, self._kdf_json, self._salt = new_kek, params, kdf_json, salt

    def _follow_header(self, conn: sqlite3.Connection) -> int:
        """Pick up a data key rotated by another process; returns the header's encryption counter."""
        header = _read_header(conn)
        if header.key_nonce != self._key_nonce:
            if header.kdf_json != self._kdf_json or header.salt != self._salt:
                raise WrongPasswordError("the store password was changed by another process; open the store again")
            data_key = unwrap_key(self._kek, header.key_nonce, header.wrapped_key, self._header_aad())
            if data_key is None:
                raise WrongPasswordError()
            self._cipher.wipe()
            self._cipher = RecordCipher(data_key)
            self._key_nonce = header.key_nonce
        return header.encryptions

    def _header_aad(self) -> bytes:
        return header_aad(FORMAT_VERSION, self._kdf_json, self._salt)

    def _insert(self, txn: _Txn, prepared: list[tuple[str, str, bool, str, SecretBuffer]]) -> None:
        if not prepared:
            return
        if txn.encryptions + len(prepared) > self._rotate_after:
            self._reencrypt_all(txn)
        rows = []
        for signature_id, code, testnet, kind, plaintext in prepared:
            nonce, ciphertext = txn.cipher.seal(plaintext.view(), record_aad(signature_id, code, testnet, kind))
            rows.append((signature_id, code, int(testnet), kind, nonce, ciphertext))
        try:
            txn.conn.executemany(_INSERT_WALLET, rows)
        except sqlite3.IntegrityError:
            raise StoreError("a signatureId collided with an existing one; nothing was stored, try again") from None
        txn.encryptions += len(rows)
        txn.counter_dirty = True

    def _reencrypt_all(self, txn: _Txn) -> None:
        """Rotate the data key inside the caller's transaction: a fresh key, every record re-encrypted under it, the
        new key wrapped. A record that fails authentication stops the rotation (the transaction rolls back): once the
        old key is gone, a record whose only damage was an edited label could never be recovered."""
        old, new = txn.cipher, RecordCipher(new_data_key())
        txn.cipher = new  # from here on, the rollback path wipes `new`
        reencrypted = 0
        last_rowid = 0
        while True:
            rows = txn.conn.execute(
                "SELECT rowid, signature_id, chain, testnet, kind, nonce, ciphertext FROM wallets"
                " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last_rowid, _ROTATION_BATCH),
            ).fetchall()
            if not rows:
                break
            updates = []
            for rowid, signature_id, chain, testnet, kind, nonce, ciphertext in rows:
                last_rowid = rowid
                aad = _row_aad(signature_id, chain, testnet, kind)
                plaintext = old.open(nonce, ciphertext, aad) if aad is not None else None
                if plaintext is None:
                    raise TamperedRecordError(signature_id)
                try:
                    updates.append((*new.seal(plaintext.view(), aad), rowid))  # type: ignore[arg-type]
                finally:
                    plaintext.wipe()
            txn.conn.executemany("UPDATE wallets SET nonce = ?, ciphertext = ? WHERE rowid = ?", updates)
            reencrypted += len(updates)
        key_nonce, wrapped = wrap_key(self._kek, new.key, self._header_aad())
        txn.conn.execute(
            "UPDATE header SET key_nonce = ?, wrapped_key = ?, key_generation = key_generation + 1 WHERE id = 1",
            (key_nonce, wrapped),
        )
        txn.new_key_nonce = key_nonce
        txn.encryptions = reencrypted
        txn.counter_dirty = True

    def _check_limits(self, conn: sqlite3.Connection, additions: Counter[tuple[str, bool]]) -> None:
        for (code, testnet), adding in sorted(additions.items()):
            row = conn.execute(
                "SELECT wallets FROM chain_counts WHERE chain = ? AND testnet = ?", (code, int(testnet))
            ).fetchone()
            have = int(row[0]) if row else 0
            if have + adding > MAX_WALLETS_PER_CHAIN:
                network = "testnet" if testnet else "mainnet"
                raise LimitExceededError(
                    f"{code} {network} holds {have} wallets; adding {adding} would pass the limit of "
                    f"{MAX_WALLETS_PER_CHAIN} signatureIds per chain; nothing was stored"
                )

    def _open_row(self, signature_id: str, row: _Row, cipher: RecordCipher) -> tuple[WalletMeta, SecretBuffer]:
        chain, testnet, kind, nonce, ciphertext = row
        aad = _row_aad(signature_id, chain, testnet, kind)
        if aad is None or not isinstance(nonce, bytes) or not isinstance(ciphertext, bytes):
            raise TamperedRecordError(_printable(signature_id))
        plaintext = cipher.open(nonce, ciphertext, aad)
        if plaintext is None:
            raise TamperedRecordError(_printable(signature_id))
        return WalletMeta(signature_id, str(chain), bool(testnet), str(kind)), plaintext

    def _same_record(
        self, signature_id: str, row: _Row, cipher: RecordCipher, code: str, testnet: bool, fields: Mapping[str, str]
    ) -> bool:
        meta, plaintext = self._open_row(signature_id, row, cipher)
        try:
            return meta.chain == code and meta.testnet == testnet and decode_fields(plaintext) == dict(fields)
        finally:
            plaintext.wipe()

    def _checkpoint(self) -> None:
        with self._lock:
            conn = self._check_open()
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # busy readers elsewhere: the WAL is reset at a later checkpoint
                pass


def _read_header(conn: sqlite3.Connection) -> _Header:
    row = conn.execute(
        "SELECT magic, format_version, kdf, salt, key_nonce, wrapped_key, key_generation, encryptions"
        " FROM header WHERE id = 1"
    ).fetchone()
    if row is None:
        raise StoreError("the wallet store has no header; it is damaged")
    magic, version, kdf_json, salt, key_nonce, wrapped, generation, encryptions = row
    if magic != MAGIC:
        raise NotAStoreError("the file is not a kms wallet store (bad magic)")
    if version != FORMAT_VERSION:
        raise StoreError(f"the wallet store has format version {version}; this kms reads version {FORMAT_VERSION}")
    if not (isinstance(kdf_json, str) and isinstance(salt, bytes) and isinstance(key_nonce, bytes)):
        raise StoreError("the wallet store header is damaged")
    if not (isinstance(wrapped, bytes) and isinstance(generation, int) and isinstance(encryptions, int)):
        raise StoreError("the wallet store header is damaged")
    return _Header(kdf_json, KdfParams.from_json(kdf_json), salt, key_nonce, wrapped, generation, encryptions)


def _row_aad(signature_id: object, chain: object, testnet: object, kind: object) -> bytes | None:
    if not (isinstance(signature_id, str) and isinstance(chain, str) and isinstance(kind, str)):
        return None
    if testnet not in (0, 1) or kind not in KINDS or not chain.isascii():
        return None
    return record_aad(signature_id, chain, bool(testnet), kind)


def _check_testnet(testnet: object) -> bool:
    if not isinstance(testnet, bool):
        raise InvalidWalletError("testnet must be True or False")
    return testnet


def _printable(signature_id: object) -> str:
    """The id as given, unless it holds control characters (an error message stays on one line)."""
    text = str(signature_id)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _store_error(exc: sqlite3.Error) -> KmsError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreError(f"the wallet store stayed locked by another process for {database.BUSY_TIMEOUT_S:.0f} s")
    return StoreError(f"wallet store database error: {exc}")
