"""Slowing down password guessing on the unseal socket.

A single mistyped password costs nothing. From the second wrong password in a row on, the gate checks no password
for a while: 1 s, then 2, 4, 8 ... up to ``MAX_DELAY``. Attempts inside that window are refused without running the
(deliberately slow) store KDF, and do not extend it. A right password resets the count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

FIRST_DELAY = 1.0
MAX_DELAY = 60.0


def delay_after(failures: int, first: float = FIRST_DELAY, maximum: float = MAX_DELAY) -> float:
    """Seconds during which no password is checked after the ``failures``-th wrong password in a row."""
    if failures <= 1:
        return 0.0
    return min(first * 2.0 ** min(failures - 2, 62), maximum)


class UnlockThrottle:
    """Counts wrong passwords in a row and says how long to refuse attempts. ``clock`` is injectable for tests."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        maximum: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first = first
        self._maximum = maximum
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self._open_at = 0.0

    def wait_left(self) -> float:
        """Seconds until a password is checked again (0 when one would be checked now)."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())

    def failed(self) -> float:
        """Record a wrong password; returns the delay before the next one is checked."""
        with self._lock:
            self.failures += 1
            delay = delay_after(self.failures, self._first, self._maximum)
            self._open_at = self._clock() + delay
            return delay

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._open_at = 0.0
