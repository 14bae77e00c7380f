"""The store file: recognising it, creating it atomically, and the one open Database object (connection,
transactions, header and keys, schema migrations run at open) that the wallets, rotation and journal classes share."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from kms.errors import KmsError, NotAStoreError, StoreError, UpstreamStoreError, UsageError, WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.settings import private_file_problem
from kms.store import journal as journal_schema
from kms.store.crypto import KdfParams, RecordCipher, derive_kek, new_data_key, random_bytes, unwrap_key, wrap_key
from kms.store.errors import StoreMissingError, WeakKdfError
from kms.store.format import APPLICATION_ID, FORMAT_VERSION, MAGIC, SCHEMA, SQLITE_HEADER, header_aad
from kms.store.upstream import looks_like_upstream

# A rotation of 550,000 records holds the write lock for seconds; other writers wait rather than fail.
BUSY_TIMEOUT_S = 120.0
_PROBE_BYTES = 4096
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
_MIN_SQLITE = (3, 24, 0)  # UPSERT, used by the per-chain counting triggers


def probe(path: Path) -> str:
    """ "missing" | "kms" | "upstream" | "other", from the file's first bytes only (no SQLite, no writes)."""
    try:
        # Non-blocking: a FIFO at the store path must not hang the command.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "other"
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "other"
        head = os.read(fd, _PROBE_BYTES)
    except IsADirectoryError:
        return "other"
    finally:
        os.close(fd)
    # The SQLite header (page 1, bytes 0..99) is written when the store is created and never changes its magic or
    # application_id afterwards, so these bytes are stable even while another process writes.
    if len(head) >= 100 and head.startswith(SQLITE_HEADER) and int.from_bytes(head[68:72], "big") == APPLICATION_ID:
        return "kms"
    if looks_like_upstream(head):
        return "upstream"
    return "other"


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection to an existing store; never creates the file."""
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise StoreError(f"the wallet store needs SQLite 3.24 or newer; this Python has {sqlite3.sqlite_version}")
    uri = f"file:{quote(os.fspath(path.absolute()))}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the wallet store {path}: {exc}") from None
    try:
        # FULL: a commit fsyncs the WAL before returning, so a wallet whose add() returned survives a power loss too,
        # not just a killed process (NORMAL in WAL mode only promises the latter).
        conn.execute("PRAGMA synchronous = FULL")
        # Freed pages (removed wallets, replaced wrapped keys) are zeroed rather than left behind in the file.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        # After a big transaction (a rotation of every record) the WAL is cut back to this size at checkpoints
        # instead of keeping its high-water mark for the life of a long-running daemon.
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        conn.execute("PRAGMA cell_size_check = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the wallet store {path}: {exc}") from None
    return conn


def create_atomically(path: Path, initialise: Callable[[sqlite3.Connection], None]) -> bool:
    """Build a complete store beside `path` (`initialise` writes and commits its content), then link it into place
    only if nothing is there yet.

    A crash leaves either no store or a complete one (plus, at worst, a stray `.NAME.*.creating` file); an existing
    file, of any kind, is never replaced. Returns False when another process created `path` first.
    """
    parent = path.parent
    _make_private_dir(parent)
    temp = parent / f".{path.name}.{secrets.token_hex(8)}.creating"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    try:
        conn = connect(temp)
        try:
            # The temporary file is thrown away unless it is complete, so it needs no rollback journal on disk (one
            # would be left behind, as `.NAME.*.creating-journal`, by a process killed while initialising).
            conn.execute("PRAGMA journal_mode = MEMORY")
            initialise(conn)
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()  # checkpoints: the main file now holds everything
        fsync_path(temp)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        fsync_path(parent)
        return True
    finally:
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm"), Path(f"{temp}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            fsync_path(parent)


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    _make_private_dir(directory.parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------ the open store

SCHEMA_VERSION = 2
"""PRAGMA user_version of a current store. 1: the first journal (a refused marker in tx_data; request_sha256 added by
a later write). 2: the journal as an explicit state machine (kms.store.journal). Older stores are upgraded at open."""


def check_placement(path: Path) -> None:
    """Refuse a store that others could read or replace: the same rules as a secret-holding env file (readable or
    writable by others, owned by another user), and a directory anyone may write to without the sticky bit."""
    try:
        st = os.stat(path)
        parent = os.stat(path.absolute().parent)
    except OSError as exc:
        raise StoreError(f"cannot inspect the wallet store {path}: {exc.strerror}") from None
    problem = private_file_problem(st, readable_matters=True)
    if problem:
        raise StoreError(f"the wallet store {path} {problem}; refusing to use it")
    if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        raise StoreError(
            f"the wallet store {path} is in a directory anyone may write to (mode {stat.S_IMODE(parent.st_mode):04o},"
            " no sticky bit), where it could be replaced; move it to a private directory"
        )


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
    conn: sqlite3.Connection
    cipher: RecordCipher
    encryptions: int
    counter_dirty: bool = False
    new_key_nonce: bytes | None = None  # set when this transaction installed a new data key
    new_password: PasswordChange | None = None


class Database:
    """One open store file. Open with Database.open(); close() wipes the keys. Safe to share between threads; any
    number of processes may open the same file at once (SQLite WAL; writers serialise on BEGIN IMMEDIATE)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        kek: SecretBuffer,
        header: Header,
        cipher: RecordCipher,
        *,
        allow_weak_kdf: bool,
        rotate_after: int,
    ) -> None:
        self.path = path
        self.allow_weak_kdf = allow_weak_kdf
        self.rotate_after = rotate_after
        self._conn: sqlite3.Connection | None = conn
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
        path: Path,
        password: SecretBuffer,
        *,
        create: bool,
        kdf: KdfParams | None,
        allow_weak_kdf: bool,
        rotate_after: int,
    ) -> Database:
        if rotate_after < 1:
            raise UsageError("rotate_after must be at least 1")
        state = probe(path)
        if state == "missing":
            if not create:
                raise StoreMissingError(f"no wallet store at {path}")
            created = cls._create(path, password, kdf or KdfParams.default(), allow_weak_kdf, rotate_after)
            if created is not None:
                return created
            state = probe(path)  # another process created it first: open theirs
        if state == "upstream":
            raise UpstreamStoreError(
                f"{path} is an upstream tatum-kms wallet file; import it first with: kms migrate --from {path}"
            )
        if state != "kms":
            raise NotAStoreError(f"{path} is not a kms wallet store; refusing to read or overwrite it")
        check_placement(path)
        db = cls._unlock(path, password, allow_weak_kdf, rotate_after)
        try:
            db._migrate()
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _create(
        cls, path: Path, password: SecretBuffer, kdf: KdfParams, allow_weak_kdf: bool, rotate_after: int
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

        def initialise(conn: sqlite3.Connection) -> None:
            conn.executescript(
                f"BEGIN IMMEDIATE;{SCHEMA}{journal_schema.SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};"
            )
            conn.execute(
                "INSERT INTO header (id, magic, format_version, kdf, salt, key_nonce, wrapped_key, key_generation,"
                " encryptions) VALUES (1, ?, ?, ?, ?, ?, ?, 1, 0)",
                (MAGIC, FORMAT_VERSION, kdf_json, salt, key_nonce, wrapped),
            )
            conn.execute("COMMIT")

        try:
            if not create_atomically(path, initialise):
                kek.wipe()
                cipher.wipe()
                return None
            conn = connect(path)
        except BaseException:
            kek.wipe()
            cipher.wipe()
            raise
        return cls(path, conn, kek, header, cipher, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after)

    @classmethod
    def _unlock(cls, path: Path, password: SecretBuffer, allow_weak_kdf: bool, rotate_after: int) -> Database:
        conn = connect(path)
        kek: SecretBuffer | None = None
        try:
            try:
                conn.execute("BEGIN")
                header = read_header(conn)
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

    def _migrate(self) -> None:
        """Bring an older store's schema up to SCHEMA_VERSION, in one transaction, after the password was checked
        (a wrong password never changes the file). A store from a newer kms is refused rather than guessed at."""
        with self.reading() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the wallet store has schema version {version}; this kms knows up to {SCHEMA_VERSION}: upgrade kms"
            )
        with self.writing(need_key=False) as txn:
            version = int(txn.conn.execute("PRAGMA user_version").fetchone()[0])  # another process may have done it
            if version < SCHEMA_VERSION:
                journal_schema.upgrade(txn.conn, version)
                txn.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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

    def check_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the wallet store is closed")
        return self._conn

    @contextmanager
    def reading(self, *, need_key: bool = False) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot of the file (WAL readers never block or see a torn store)."""
        with self._lock:
            conn = self.check_open()
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
    def writing(self, *, need_key: bool = True, durable: bool = True) -> Iterator[Txn]:
        """A write transaction. BEGIN IMMEDIATE takes the file's write lock first, so checks (limits, duplicates,
        journal states) and the writes they guard are atomic across processes. ``durable=False``: the commit is not
        fsynced (synchronous NORMAL for this one transaction; the next durable commit's fsync of the WAL carries it)."""
        with self._lock:
            conn = self.check_open()
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._transaction(conn, need_key) as txn:
                    yield txn
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, need_key: bool) -> Iterator[Txn]:
        """One write transaction on ``conn``; the caller holds the lock."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(exc) from None
        txn: Txn | None = None
        try:
            encryptions = self._follow_header(conn) if need_key else 0
            txn = Txn(conn, self._cipher, encryptions)
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

    def _follow_header(self, conn: sqlite3.Connection) -> int:
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
        """Push old pages out of the WAL (secure_delete zeroes freed pages in the main file)."""
        with self._lock:
            conn = self.check_open()
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # busy readers elsewhere: the WAL is reset at a later checkpoint
                pass


def read_header(conn: sqlite3.Connection) -> Header:
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


def _store_error(exc: sqlite3.Error) -> KmsError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreError(f"the wallet store stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s")
    return StoreError(f"wallet store database error: {exc}")
