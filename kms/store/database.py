"""The store file on disk: recognising it, creating it atomically, and opening SQLite connections to it."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from kms.errors import StoreError
from kms.store.format import APPLICATION_ID, SQLITE_HEADER
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
