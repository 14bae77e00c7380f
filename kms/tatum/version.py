"""The ``x-ttm-kms-latest-version`` header: the Tatum API's way of telling KMS clients that a newer release exists.

Upstream (signatures.ts, processVersionUpdateHeader): the header is ``<latest version>;<level>;<message>``; it is
read at most once a minute; when the latest version is newer (semver) than the client version and level and message
are present, a line ``<LEVEL>: <message>. Current version: <current>. Latest version: <latest>`` is logged every 30
seconds from then on, at error level when LEVEL is ERROR and at info level otherwise. The same here, except that the
first header is read at once (upstream starts its one-minute clock at start-up, so it ignores every header of its
first minute).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("kms.tatum")

CLIENT_VERSION = "8.0.1"
"""Reported to the Tatum API in ``x-ttm-kms-client-version`` (upstream's release this kms stands in for)."""
HEADER = "x-ttm-kms-latest-version"
CHECK_EVERY = 60.0
REPEAT_EVERY = 30.0

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _prerelease_key(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in text.split("."))


def semver_greater(a: str, b: str) -> bool:
    """semver.gt(a, b); False when either is not a version."""
    ma, mb = _SEMVER.match(a.strip()), _SEMVER.match(b.strip())
    if not ma or not mb:
        return False
    core_a = tuple(int(x) for x in ma.groups()[:3])
    core_b = tuple(int(x) for x in mb.groups()[:3])
    if core_a != core_b:
        return core_a > core_b
    pre_a, pre_b = ma.group(4), mb.group(4)
    if pre_a == pre_b:
        return False
    if pre_a is None:
        return True
    if pre_b is None:
        return False
    return _prerelease_key(pre_a) > _prerelease_key(pre_b)


@dataclass
class UpdateNotice:
    latest: str
    level: str
    message: str
    current: str

    def line(self) -> str:
        safe = "".join(ch for ch in self.message if ch.isprintable())[:300]
        return f"{self.level}: {safe}. Current version: {self.current}. Latest version: {self.latest}"


class VersionWatch:
    """Fed every header value seen; ``tick()`` logs the notice when one is due. Thread-safe."""

    def __init__(self, current_version: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._current = current_version
        self._clock = clock
        self._lock = threading.Lock()
        self._last_check: float | None = None
        self._last_log: float | None = None
        self.notice: UpdateNotice | None = None

    def observe(self, header: str | None) -> None:
        if not header:
            return
        now = self._clock()
        with self._lock:
            if self.notice is not None:
                return  # upstream stops reading once it has started nagging
            if self._last_check is not None and now - self._last_check < CHECK_EVERY:
                return
            self._last_check = now
            parts = header.split(";")
            latest = parts[0].strip().lower() if parts else ""
            level = parts[1].strip().upper() if len(parts) > 1 else ""
            message = parts[2].strip() if len(parts) > 2 else ""
            if latest and level and message and self._current and semver_greater(latest, self._current):
                self.notice = UpdateNotice(latest=latest, level=level, message=message, current=self._current)

    def tick(self) -> None:
        with self._lock:
            notice = self.notice
            if notice is None:
                return
            now = self._clock()
            if self._last_log is not None and now - self._last_log < REPEAT_EVERY:
                return
            self._last_log = now
        log.log(logging.ERROR if notice.level == "ERROR" else logging.INFO, "%s", notice.line())
