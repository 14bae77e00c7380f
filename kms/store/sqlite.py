"""The embedded store backend: one SQLite file (WAL mode, writers serialised on BEGIN IMMEDIATE), created atomically
beside its final name and linked into place. The default: a plain path or ``sqlite:///abs/path``."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from kms.errors import DuplicateKeyError, KmsError, StoreError, UsageError
from kms.settings import private_file_problem
from kms.store import journal as journal_schema
from kms.store import velocity as velocity_schema
from kms.store.backend import CredentialSource, Cursor, StoreConnection
from kms.store.format import APPLICATION_ID, SCHEMA, SQLITE_HEADER
from kms.store.upstream import looks_like_upstream

# A rotation of 550,000 records holds the write lock for seconds; other writers wait rather than fail.
BUSY_TIMEOUT_S = 120.0
_PROBE_BYTES = 4096
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
_MIN_SQLITE = (3, 24, 0)  # UPSERT, used by the per-chain counting triggers


def peek_counts(path: Path) -> dict[tuple[str, bool], int]:
    """Wallets per (chain, testnet) from a kms store's plaintext counting table, without its password (checkconfig's
    warnings). Opened read-only; anything unreadable gives {}: these counts are not authenticated, only a hint."""
    if probe(path) != "kms":
        return {}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = conn.execute("SELECT chain, testnet, wallets FROM chain_counts WHERE wallets > 0").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    return {(str(chain), bool(testnet)): int(n) for chain, testnet, n in rows}


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


def store_error(exc: sqlite3.Error) -> KmsError:
    if isinstance(exc, sqlite3.IntegrityError):
        return DuplicateKeyError(f"wallet store constraint failed: {exc}")
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreError(f"the wallet store stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s")
    return StoreError(f"wallet store database error: {exc}")


class SqliteConnection:
    """kms.store.backend.StoreConnection over one sqlite3 connection (autocommit; transactions made explicit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._relaxed = False

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise store_error(exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise store_error(exc) from None

    def begin_read(self) -> None:
        self.execute("BEGIN")

    def begin_write(self, *, durable: bool = True) -> None:
        if not durable:
            # NORMAL for this one transaction: the next FULL commit's fsync of the WAL carries it.
            self.execute("PRAGMA synchronous = NORMAL")
            self._relaxed = True
        self.execute("BEGIN IMMEDIATE")

    def begin_rows(self) -> None:
        self.execute("BEGIN IMMEDIATE")  # one file, one writer: nothing to gain

    def commit(self) -> None:
        self.execute("COMMIT")
        self._restore_durability()

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self.execute("ROLLBACK")
        self._restore_durability()

    def _restore_durability(self) -> None:
        if self._relaxed:
            self._relaxed = False
            self.execute("PRAGMA synchronous = FULL")

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def json_int(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def schema_version(self) -> int:
        return int(self.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.execute(f"PRAGMA user_version = {int(version)}")

    def checkpoint(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:  # busy readers elsewhere: the WAL is reset at a later checkpoint
            pass

    def ensure_wal(self) -> None:
        mode = self.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            self.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self._conn.close()


class SqliteBackend:
    """A store file. Any number of processes may open it; one daemon at a time (kms.store.lock)."""

    replicated = False
    replica_id = ""
    clock = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path) -> None:
        self.path: Path | None = path
        self._path = path
        self.location = str(path)

    def probe(self) -> str:
        return probe(self._path)

    def create(self, initialise: Callable[[StoreConnection], None], schema_version: int) -> bool:
        def build(conn: sqlite3.Connection) -> None:
            wrapped = SqliteConnection(conn)
            conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}{journal_schema.SCHEMA}{velocity_schema.SCHEMA}")
            wrapped.set_schema_version(schema_version)
            initialise(wrapped)
            conn.execute("COMMIT")

        return create_atomically(self._path, build)

    def connect(self) -> StoreConnection:
        conn = SqliteConnection(connect(self._path))
        try:
            conn.ensure_wal()
        except BaseException:
            conn.close()
            raise
        return conn

    def check_placement(self) -> None:
        check_placement(self._path)

    def as_replica(self) -> SqliteBackend:
        return self  # one daemon per file (kms.store.lock)

    def upgrade(self, conn: StoreConnection, from_version: int) -> None:
        assert isinstance(conn, SqliteConnection)
        if from_version < 2:
            journal_schema.upgrade(conn, from_version)
        velocity_schema.create(conn)


def from_location(location: str, credentials: CredentialSource | None = None) -> SqliteBackend:
    """A plain path, ``sqlite:///abs/path`` or ``file:///abs/path``."""
    if "://" not in location:
        return SqliteBackend(Path(location).expanduser())
    parts = urlsplit(location)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise UsageError("a sqlite store URL is sqlite:///ABSOLUTE/PATH (three slashes, no host)")
    return SqliteBackend(Path(unquote(parts.path)))
