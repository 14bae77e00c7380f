"""The one open Database object that the wallets, rotation and journal classes share: a connection from the store's
backend (kms.store.backend: a SQLite file or a PostgreSQL database), transactions, the header and keys, and the schema
migrations run at open. Nothing here depends on which backend it is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kms.errors import (
    NotAStoreError,
    StoreError,
    StoreMissingError,
    StoreUnavailableError,
    UpstreamStoreError,
    UsageError,
    WeakKdfError,
    WrongPasswordError,
)
from kms.hygiene import SecretBuffer
from kms.store.backend import StoreBackend, StoreConnection
from kms.store.crypto import KdfParams, RecordCipher, derive_kek, new_data_key, random_bytes, unwrap_key, wrap_key
from kms.store.format import FORMAT_VERSION, MAGIC, header_aad
from kms.store.sqlite import check_placement, fsync_path, probe  # noqa: F401 - the file helpers' old home

# ------------------------------------------------------------------------------------------------ the open store

SCHEMA_VERSION = 3  # 3: the policy velocity table (kms.store.velocity)
"""PRAGMA user_version of a current store. 1: the first journal (a refused marker in tx_data; request_sha256 added by
a later write). 2: the journal as an explicit state machine (kms.store.journal). Older stores are upgraded at open."""


@dataclass
class Header:
    kdf_json: str
    kdf: KdfParams
    salt: bytes
    key_nonce: bytes
    wrapped_key: bytes
    key_generation: int
    encryptions: int


@dataclass
class PasswordChange:
    """A new password key waiting for its transaction to commit (then it replaces the old one)."""

    kek: SecretBuffer
    kdf: KdfParams
    kdf_json: str
    salt: bytes


@dataclass
class Txn:
    conn: StoreConnection
    cipher: RecordCipher
    encryptions: int
    counter_dirty: bool = False
    new_key_nonce: bytes | None = None  # set when this transaction installed a new data key
    new_password: PasswordChange | None = None


class Database:
    """One open store. Open with Database.open(); close() wipes the keys. Safe to share between threads; any number of
    processes may open the same store at once (their writers serialise on the backend's writer lock)."""

    def __init__(
        self,
        backend: StoreBackend,
        conn: StoreConnection,
        kek: SecretBuffer,
        header: Header,
        cipher: RecordCipher,
        *,
        allow_weak_kdf: bool,
        rotate_after: int,
    ) -> None:
        self.backend = backend
        self.path = backend.path
        self.allow_weak_kdf = allow_weak_kdf
        self.rotate_after = rotate_after
        self._conn: StoreConnection | None = conn
        self._kek = kek
        self._cipher = cipher
        self._kdf = header.kdf
        self._kdf_json = header.kdf_json
        self._salt = header.salt
        self._key_nonce = header.key_nonce
        self._lock = threading.RLock()

    # -- opening ----------------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        backend: StoreBackend,
        password: SecretBuffer,
        *,
        create: bool,
        kdf: KdfParams | None,
        allow_weak_kdf: bool,
        rotate_after: int,
    ) -> Database:
        if rotate_after < 1:
            raise UsageError("rotate_after must be at least 1")
        where = backend.location
        state = backend.probe()
        if state == "missing":
            if not create:
                raise StoreMissingError(f"no wallet store at {where}")
            created = cls._create(backend, password, kdf or KdfParams.default(), allow_weak_kdf, rotate_after)
            if created is not None:
                return created
            state = backend.probe()  # another process created it first: open theirs
        if state == "upstream":
            raise UpstreamStoreError(
                f"{where} is an upstream tatum-kms wallet file; import it first with: kms migrate --from {where}"
            )
        if state != "kms":
            raise NotAStoreError(f"{where} is not a kms wallet store; refusing to read or overwrite it")
        backend.check_placement()
        db = cls._unlock(backend, password, allow_weak_kdf, rotate_after)
        try:
            db._migrate()
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _create(
        cls, backend: StoreBackend, password: SecretBuffer, kdf: KdfParams, allow_weak_kdf: bool, rotate_after: int
    ) -> Database | None:
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
        header = Header(kdf_json, kdf, salt, key_nonce, wrapped, 1, 0)

        def initialise(conn: StoreConnection) -> None:
            conn.execute(
                "INSERT INTO header (id, magic, format_version, kdf, salt, key_nonce, wrapped_key, key_generation,"
                " encryptions) VALUES (1, ?, ?, ?, ?, ?, ?, 1, 0)",
                (MAGIC, FORMAT_VERSION, kdf_json, salt, key_nonce, wrapped),
            )

        try:
            if not backend.create(initialise, SCHEMA_VERSION):
                kek.wipe()
                cipher.wipe()
                return None
            conn = backend.connect()
        except BaseException:
            kek.wipe()
            cipher.wipe()
            raise
        return cls(backend, conn, kek, header, cipher, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after)

    @classmethod
    def _unlock(
        cls, backend: StoreBackend, password: SecretBuffer, allow_weak_kdf: bool, rotate_after: int
    ) -> Database:
        conn = backend.connect()
        kek: SecretBuffer | None = None
        try:
            try:
                conn.begin_read()
                header = read_header(conn)
                conn.commit()
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                raise StoreError(f"the wallet store {backend.location} is damaged: {exc}") from None
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
        except BaseException:
            if kek is not None:
                kek.wipe()
            conn.close()
            raise
        cipher = RecordCipher(data_key)
        return cls(backend, conn, kek, header, cipher, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after)

    def _migrate(self) -> None:
        """Bring an older store's schema up to SCHEMA_VERSION, in one transaction, after the password was checked
        (a wrong password never changes the file). A store from a newer kms is refused rather than guessed at."""
        with self.reading() as conn:
            version = conn.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the wallet store has schema version {version}; this kms knows up to {SCHEMA_VERSION}: upgrade kms"
            )
        with self.writing(need_key=False) as txn:
            version = txn.conn.schema_version()  # another process may have done it
            if version < SCHEMA_VERSION:
                self.backend.upgrade(txn.conn, version)
                txn.conn.set_schema_version(SCHEMA_VERSION)

    # -- life cycle -------------------------------------------------------------------------------------------------

    @property
    def kdf(self) -> KdfParams:
        return self._kdf

    @property
    def closed(self) -> bool:
        return self._conn is None

    @property
    def cipher(self) -> RecordCipher:
        """The current data key's cipher; only meaningful inside reading(need_key=True) or writing()."""
        return self._cipher

    def close(self) -> None:
        """Wipe the data key and the password key, and close the file. Idempotent."""
        with self._lock:
            self._cipher.wipe()
            self._kek.wipe()
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    # -- transactions -----------------------------------------------------------------------------------------------

    def check_open(self) -> StoreConnection:
        if self._conn is None:
            raise StoreError("the wallet store is closed")
        return self._conn

    @contextmanager
    def reading(self, *, need_key: bool = False) -> Iterator[StoreConnection]:
        """A read transaction: one consistent snapshot of the store (readers never see a torn store)."""
        with self._lock:
            conn = self.check_open()
            conn.begin_read()
            try:
                if need_key:
                    self._follow_header(conn)
                yield conn
                conn.commit()  # nothing was written; this only ends the snapshot
            except BaseException:
                conn.rollback()
                raise

    @contextmanager
    def rows(self) -> Iterator[StoreConnection]:
        """A write transaction for single atomic statements that need no writer lock (claims, heartbeats)."""
        with self._lock:
            conn = self.check_open()
            conn.begin_rows()
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    @contextmanager
    def writing(self, *, need_key: bool = True, durable: bool = True) -> Iterator[Txn]:
        """A write transaction. The backend's writer lock is taken first, so checks (limits, duplicates, journal
        states) and the writes they guard are atomic across processes. ``durable=False``: this commit is not flushed
        to disk on its own (the next durable commit carries it); for marks whose loss only repeats safe work."""
        with self._lock:
            conn = self.check_open()
            conn.begin_write(durable=durable)
            txn: Txn | None = None
            try:
                encryptions = self._follow_header(conn) if need_key else 0
                txn = Txn(conn, self._cipher, encryptions)
                yield txn
                if txn.counter_dirty:
                    conn.execute("UPDATE header SET encryptions = ? WHERE id = 1", (txn.encryptions,))
                conn.commit()
            except BaseException:
                conn.rollback()
                if txn is not None and txn.cipher is not self._cipher:
                    txn.cipher.wipe()
                raise
            self._after_commit(txn)

    def _after_commit(self, txn: Txn) -> None:
        if txn.cipher is not self._cipher:
            self._cipher.wipe()
            self._cipher = txn.cipher
        if txn.new_key_nonce is not None:
            self._key_nonce = txn.new_key_nonce
        change = txn.new_password
        if change is not None:
            self._kek.wipe()
            self._kek, self._kdf, self._kdf_json, self._salt = change.kek, change.kdf, change.kdf_json, change.salt

    def _follow_header(self, conn: StoreConnection) -> int:
        """Pick up a data key rotated by another process; returns the header's encryption counter."""
        header = read_header(conn)
        if header.key_nonce != self._key_nonce:
            if header.kdf_json != self._kdf_json or header.salt != self._salt:
                raise WrongPasswordError("the store password was changed by another process; open the store again")
            data_key = unwrap_key(self._kek, header.key_nonce, header.wrapped_key, self.header_aad())
            if data_key is None:
                raise WrongPasswordError()
            self._cipher.wipe()
            self._cipher = RecordCipher(data_key)
            self._key_nonce = header.key_nonce
        return header.encryptions

    # -- keys -------------------------------------------------------------------------------------------------------

    def wrap_under_password(self, data_key: RecordCipher) -> tuple[bytes, bytes]:
        """Wrap `data_key` under the current password key: (nonce, wrapped), for the header."""
        return wrap_key(self._kek, data_key.key, self.header_aad())

    def header_aad(self) -> bytes:
        return header_aad(FORMAT_VERSION, self._kdf_json, self._salt)

    def checkpoint(self) -> None:
        """Push replaced pages (an old wrapped key) out of the backend's write-ahead log, where it has one."""
        with self._lock:
            self.check_open().checkpoint()


def read_header(conn: StoreConnection) -> Header:
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
    return Header(kdf_json, KdfParams.from_json(kdf_json), salt, key_nonce, wrapped, generation, encryptions)
