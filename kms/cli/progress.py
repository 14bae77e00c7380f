"""Progress of long CLI work, on stderr, only when stderr is a terminal.

Scripts see no change: with stderr redirected (a pipe, a file, /dev/null) nothing is written, and stdout is never
touched. Small jobs (fewer than ``LARGE`` items) stay silent too: they are over before a progress line would help.
The line is redrawn in place (carriage return, erase line) at most every ``REFRESH`` seconds and erased at the end,
so the command's own output and error messages start on a clean line. It holds counts and fixed words, never a
wallet, an address or a path.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO, TypeVar

LARGE = 200
"""Items from which a job shows progress."""
REFRESH = 0.2
"""Seconds between redraws of the line."""
_ERASE = "\r\x1b[K"

T = TypeVar("T")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed or not a real file
        return False


class Progress:
    """``with Progress("generating 500 ETH keys", 500) as progress:`` then ``progress.wrap(items)`` for work counted
    item by item, or ``with progress.step("storing"):`` around one long call (shows the seconds it has run)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.label = label
        self.total = max(0, int(total))
        self.shown = self.total >= LARGE and _is_terminal(self._stream)
        self._done = 0
        self._step: str | None = None
        self._step_started = 0.0
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._wrote = False

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done = min(self.total, self._done + n)
        self._draw(force=self._done == self.total)

    def wrap(self, items: Iterable[T]) -> Iterator[T]:
        """Yields ``items``, counting one step per item."""
        for item in items:
            yield item
            self.advance()

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """One long call whose progress cannot be counted: "label: text... 3s", redrawn while it runs."""
        with self._lock:
            self._step, self._step_started = text, time.monotonic()
        self._draw(force=True)
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), name="kms-progress", daemon=True)
        if self.shown:
            ticker.start()
        try:
            yield
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
            with self._lock:
                self._step = None

    def close(self) -> None:
        with self._lock:
            if self._wrote:
                self._write(_ERASE)
                self._wrote = False

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(REFRESH):
            self._draw(force=True)

    def _line(self) -> str:
        if self._step is not None:
            return f"{self.label}: {self._step}... {int(time.monotonic() - self._step_started)}s"
        percent = 100 * self._done // self.total if self.total else 100
        return f"{self.label}: {self._done}/{self.total} ({percent}%)"

    def _draw(self, force: bool = False) -> None:
        if not self.shown:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_draw < REFRESH:
                return
            self._last_draw = now
            self._write(_ERASE + self._line())
            self._wrote = True

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a terminal that went away must not fail the command
            self.shown = False


__all__ = ["LARGE", "Progress"]
