"""One daemon per store: an exclusive lock on a file beside the store, naming its holder.

Two daemons on one store file each sign the same pending transactions; the journal keeps the second signature from
being broadcast, but it is still made (and with nonces looked up twice, it differs). The daemon therefore holds
``flock(LOCK_EX)`` on ``.<store name>.daemon-lock`` for as long as it runs. The kernel drops the lock when the
process ends however it ends (kill -9 included), so a stale lock file never blocks a restart. The file holds the
holder's pid, host and start time, which a refused daemon reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from kms.errors import DaemonLockedError, StoreError

_MAX_HOLDER_BYTES = 1024


def lock_path(store_path: Path) -> Path:
    return store_path.parent / f".{store_path.name}.daemon-lock"


class DaemonLock:
    """Held from acquire_daemon_lock() until release() (or the end of a with block, or the process)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the holder line describes a running daemon only
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<DaemonLock {self.path} {'held' if self.held else 'released'}>"


def acquire_daemon_lock(store_path: Path | str) -> DaemonLock:
    """Take the daemon lock of the store at `store_path`, or raise DaemonLockedError saying who holds it."""
    store_path = Path(store_path).expanduser()
    path = lock_path(store_path)
    try:
        # O_NOFOLLOW: a symlink planted at the lock path must not make us truncate another file.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the daemon lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(fd)
        os.close(fd)
        raise DaemonLockedError(
            f"another kms daemon is using the wallet store {store_path} ({holder}); two daemons on one store would"
            " sign the same transactions twice. Stop it first"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time())}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot write the daemon lock {path}: {exc.strerror}") from None
    return DaemonLock(path, fd)


def _describe_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, _MAX_HOLDER_BYTES, 0)
        holder = json.loads(raw.decode())
        pid, host, since = int(holder["pid"]), str(holder["host"]), int(holder["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it has not written its details yet"
    host = host if host.isprintable() else host.encode("unicode_escape").decode("ascii")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    return f"pid {pid} on host {host[:100]}, since {started}"
