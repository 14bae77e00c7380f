"""Secret buffers and process hardening.

Python cannot promise that no copy of a secret survives: every ``str`` and ``bytes`` a library makes is immutable and
is freed, not wiped. What this module does is narrow the window: secrets that kms itself holds live in a
``SecretBuffer`` (a mutable ``bytearray`` that is locked in RAM where the OS allows it and zeroed in place when done),
and the process is made non-dumpable so a crash or a debugger attach by another user cannot read them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _libc = None

_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3


def _address_of(buf: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


class WipedOnExit:
    """What holds a secret: ``with holder:`` wipes it when the block ends, however it ends."""

    __slots__ = ()

    def wipe(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wipe()


class SecretBuffer(WipedOnExit):
    """A mutable secret that can be wiped in place.

    Its ``repr``/``str`` never show the content. Use as a context manager, or call ``wipe()``; it also wipes itself
    when garbage-collected.
    """

    __slots__ = ("__weakref__", "_buf", "_locked")

    def __init__(self, data: bytes | bytearray | memoryview | str = b"") -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self._buf = bytearray(len(raw))
        self._locked = False
        if self._buf:
            self._locked = _mlock(self._buf)
        self._buf[:] = raw
        if isinstance(data, bytearray):
            # The caller handed over a mutable buffer: do not leave a second copy behind.
            zero_bytearray(data)

    @classmethod
    def from_str(cls, text: str) -> SecretBuffer:
        return cls(text.encode("utf-8"))

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return bool(self._buf)

    def __repr__(self) -> str:
        return f"<SecretBuffer len={len(self._buf)} {'locked' if self._locked else 'unlocked'}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        import hmac

        if isinstance(other, SecretBuffer):
            return hmac.compare_digest(self._buf, other._buf)  # no immutable copies of either secret
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def view(self) -> memoryview:
        """A read-only view of the secret bytes; no copy is made."""
        return memoryview(self._buf).toreadonly()

    def raw(self) -> bytearray:
        """The backing buffer itself (for libraries that need a writable buffer). Do not keep it."""
        return self._buf

    def bytes(self) -> bytes:
        """An immutable copy, for libraries that accept nothing else. The copy cannot be wiped: keep it short-lived."""
        return bytes(self._buf)

    def text(self) -> str:
        """The secret as text, for libraries that accept nothing else. The copy cannot be wiped."""
        return self._buf.decode("utf-8")

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def wiped(self) -> bool:
        return not any(self._buf)

    def wipe(self) -> None:
        self._wipe(finalising=False)

    def _wipe(self, *, finalising: bool) -> None:
        if self._buf:
            zero_bytearray(self._buf)
            if self._locked:
                _munlock(self._buf, finalising=finalising)
                self._locked = False

    def __del__(self) -> None:
        try:
            self._wipe(finalising=True)
        except Exception:  # noqa: S110 - interpreter shutdown; nothing sensible to do
            pass

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("SecretBuffer cannot be pickled")


def zero_bytearray(buf: bytearray) -> None:
    """Overwrite a bytearray with zeros in place (same memory, no reallocation)."""
    if not buf:
        return
    ctypes.memset(_address_of(buf), 0, len(buf))


# mlock works on whole pages and does not count: several small buffers share a page, and unlocking one would
# unlock its neighbours. So locks are counted per page, and a page is unlocked when its last buffer lets go.
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_page_locks: dict[int, int] = {}
_page_lock_guard = threading.Lock()
_deferred_unlocks: list[range] = []


def _pages(buf: bytearray) -> range:
    start = _address_of(buf)
    return range(start // _PAGE, (start + len(buf) - 1) // _PAGE + 1)


def _mlock(buf: bytearray) -> bool:
    if _libc is None or not buf:
        return False
    with _page_lock_guard:
        _release_deferred()
        try:
            if _libc.mlock(ctypes.c_void_p(_address_of(buf)), ctypes.c_size_t(len(buf))) != 0:
                return False
        except (AttributeError, OSError):
            return False
        for page in _pages(buf):
            _page_locks[page] = _page_locks.get(page, 0) + 1
        return True


def _munlock(buf: bytearray, *, finalising: bool = False) -> None:
    if _libc is None or not buf:
        return
    pages = _pages(buf)
    # A finaliser can run inside _mlock on this very thread (an allocation there triggers the garbage collector), so
    # it must never wait for the guard: it leaves its pages to whoever takes the guard next.
    if not _page_lock_guard.acquire(blocking=not finalising):
        _deferred_unlocks.append(pages)
        return
    try:
        _release_pages(pages)
        _release_deferred()
    finally:
        _page_lock_guard.release()


def _release_deferred() -> None:
    while _deferred_unlocks:
        _release_pages(_deferred_unlocks.pop())


def _release_pages(pages: range) -> None:
    for page in pages:
        remaining = _page_locks.get(page, 1) - 1
        if remaining > 0:
            _page_locks[page] = remaining
            continue
        _page_locks.pop(page, None)
        try:
            _libc.munlock(ctypes.c_void_p(page * _PAGE), ctypes.c_size_t(_PAGE))  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass


@dataclass(frozen=True)
class HardeningReport:
    core_dumps_disabled: bool
    not_dumpable: bool
    mlock_available: bool

    def as_dict(self) -> dict[str, bool]:
        return {
            "coreDumpsDisabled": self.core_dumps_disabled,
            "notDumpable": self.not_dumpable,
            "mlockAvailable": self.mlock_available,
        }


_report: HardeningReport | None = None


def harden_process() -> HardeningReport:
    """Disable core dumps and ptrace-style dumping of this process. Idempotent; returns what is in force."""
    global _report
    core_off = False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        core_off = resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    except (ValueError, OSError):
        core_off = False
    not_dumpable = False
    if sys.platform.startswith("linux") and _libc is not None:
        try:
            _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
            not_dumpable = _libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
        except (AttributeError, OSError):
            not_dumpable = False
    probe = SecretBuffer(b"\0" * 32)
    mlock_ok = probe.locked
    probe.wipe()
    _report = HardeningReport(core_dumps_disabled=core_off, not_dumpable=not_dumpable, mlock_available=mlock_ok)
    return _report


def hardening_status() -> HardeningReport:
    """What harden_process put in force in this process (hardening first if it has not run)."""
    return _report if _report is not None else harden_process()


def getpid_dumpable() -> bool:
    """True when the process can currently be dumped (for tests)."""
    if _libc is None:
        return True
    return bool(_libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))


__all__ = [
    "HardeningReport",
    "SecretBuffer",
    "getpid_dumpable",
    "harden_process",
    "hardening_status",
    "zero_bytearray",
]

if os.name != "posix":  # pragma: no cover
    raise ImportError("kms runs on POSIX systems only")
