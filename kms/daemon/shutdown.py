"""Stopping on SIGTERM / SIGINT: finish in-flight work within a deadline, then go.

The first signal sets ``stop``: no new cycle, no new transaction; transactions already past their approval finish
(sign, journal, broadcast). When the deadline passes, or on a second signal, ``hard`` is set: retries and waits end
at once and the caller abandons what is left. Abandoning is safe: whatever was signed is in the journal and is
broadcast again, unchanged, by the next run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("kms.daemon")


class Shutdown:
    def __init__(self, deadline: float, stop: threading.Event | None = None, hard: threading.Event | None = None):
        self.deadline = deadline
        self.stop = stop or threading.Event()
        self.hard = hard or threading.Event()
        self._stop_at: float | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.hard.set()
        self.stop.set()

    def run(self, target: Callable[[], None], name: str = "kms-loop") -> bool:
        """Run ``target`` in a thread until it returns, or until a stop plus the deadline. True when it finished,
        False when it was abandoned."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if not self.stop.is_set():
                continue
            if self._stop_at is None:
                self._stop_at = time.monotonic()
                log.info("stopping: finishing in-flight work (at most %.0fs)", self.deadline)
            if self.hard.is_set() or time.monotonic() - self._stop_at > self.deadline:
                self.hard.set()
                thread.join(0.5)
                if thread.is_alive():
                    log.warning("stop deadline passed; abandoning in-flight work (the journal keeps it safe)")
                    return False
        return True
