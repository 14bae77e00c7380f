"""Quarantine of pending transactions that take the process down (issue 15, item 1).

A Python exception inside signing is a per-transaction failure already; this is for what no ``except`` can catch: a
SIGSEGV in a C extension, a stack overflow, the OOM killer. Before a pending id is parsed or signed, a small marker
file for it is written and fsynced into a directory of its own (one file per id: no shared file to rewrite, no
database write on the hot path, and it works the same on a shared PostgreSQL store because the markers are this
host's; replicas sharing a directory leave each other's live markers alone). The marker is removed when the id's
processing ends, however it ends. So a marker found at start means the process died while that id was in flight.

One death proves little (``kill -9``, a host restart, the OOM killer hit whatever was running), so an id found in
flight once becomes a *suspect*: it is processed again, but alone (no other transaction runs while it does). If the
process dies while a suspect runs alone, that id is the cause: it is journaled as poisoned (``quarantine``), reported
once through the batch error endpoint and never retried until ``kms journal release``. Markers written under another
boot of the host (a power loss, a reboot) are dropped: they say nothing about the transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kms.api import PendingTransaction
from kms.errors import KmsError
from kms.store.journal import JournalState, SigningJournal, check_pending_id

log = logging.getLogger("kms.daemon")

INFLIGHT_DIR_SETTING = "TATUM_KMS_INFLIGHT_DIR"
POISONED_REASON = (
    "processing it took the kms process down (found in flight after a crash, twice, the second time alone)"
)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_MAX_MARKER_BYTES = 1024
SOLO_WAIT_S = 10.0
"""How long a suspect waits for the running transactions to end before it is left for a later cycle."""


class QuarantineError(KmsError):
    """The in-flight marker could not be written: the id is not processed (fail closed)."""


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Marker:
    pending_id: str
    chain: str
    boot: str
    alone: bool
    pid: int = 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process other than this one (a sibling replica sharing the marker directory)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NotAloneYet(KmsError):
    """A suspect is running (or waiting to run) alone: this transaction waits for a later cycle, untouched."""


class _SoloLock:
    """Many normal transactions at once, or one suspect alone. Nothing waits long: a normal transaction arriving while
    a suspect runs or waits is skipped for this cycle (NotAloneYet), and a suspect waits at most ``wait_s`` for the
    running ones to end, else it is skipped for this cycle. So a suspect never holds up other chains for longer than
    its own processing (bounded by its requests' deadlines)."""

    def __init__(self, wait_s: float) -> None:
        self._cond = threading.Condition()
        self._wait_s = wait_s
        self._shared = 0
        self._solo = False
        self._solo_waiting = 0

    def acquire(self, solo: bool) -> None:
        with self._cond:
            if not solo:
                if self._solo or self._solo_waiting:
                    raise NotAloneYet("a transaction found in flight at a crash is running alone; not now")
                self._shared += 1
                return
            self._solo_waiting += 1
            try:
                alone = self._cond.wait_for(lambda: not self._solo and self._shared == 0, timeout=self._wait_s)
            finally:
                self._solo_waiting -= 1
            if not alone:
                raise NotAloneYet("waiting to run alone (it was in flight at a crash); not now")
            self._solo = True

    def release(self, solo: bool) -> None:
        with self._cond:
            if solo:
                self._solo = False
            else:
                self._shared -= 1
            self._cond.notify_all()


class InFlight:
    """The in-flight markers of one daemon (``directory`` is created 0700). Thread-safe."""

    def __init__(self, directory: Path, solo_wait_s: float = SOLO_WAIT_S) -> None:
        self.directory = directory
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._boot = _boot_id()
        self._lock = threading.Lock()
        self._solo = _SoloLock(solo_wait_s)
        self._held: dict[str, bool] = {}  # pending id -> entered solo
        self.suspects: set[str] = set()
        self.poisoned: list[Marker] = []
        self._scan()

    def _path(self, pending_id: str) -> Path:
        return self.directory / (hashlib.sha256(pending_id.encode()).hexdigest() + ".inflight")

    def _scan(self) -> None:
        for path in sorted(self.directory.glob("*.inflight")):
            marker = _read_marker(path)
            if marker is not None and marker.boot == self._boot and _alive(marker.pid):
                continue  # a sibling replica's, in flight right now
            if marker is None or marker.boot != self._boot or not _journal_id(marker.pending_id):
                # Unreadable, or from before a reboot: no evidence against the id. An id the journal cannot hold is
                # refused by the journal look-up before anything is parsed or signed anyway.
                path.unlink(missing_ok=True)
            elif marker.alone:
                self.poisoned.append(marker)
            else:
                self.suspects.add(marker.pending_id)
        if self.suspects:
            log.warning(
                "%d pending transactions were in flight when kms died; each runs alone next", len(self.suspects)
            )

    def quarantine_found(self, journal: SigningJournal) -> list[str]:
        """Journal the ids that took the process down while running alone as poisoned; returns them."""
        done = []
        for marker in list(self.poisoned):
            entry = journal.lookup(marker.pending_id)
            if entry is None or entry.state not in (JournalState.BROADCAST, JournalState.COMPLETED):
                journal.quarantine(marker.pending_id, marker.chain, POISONED_REASON)
                log.error("pending transaction %s quarantined: %s", marker.pending_id, POISONED_REASON)
                done.append(marker.pending_id)
            self._path(marker.pending_id).unlink(missing_ok=True)
            self.poisoned.remove(marker)
        return done

    def drop_finished(self, journal: SigningJournal) -> None:
        """Forget suspects the journal shows signed already: the process died after their parsing and signing (a
        `kill -9` mid-broadcast, most likely), and what is left for them is re-sending journaled bytes, which parses
        nothing the Tatum API sent for them. Without this, every id in flight at a plain kill would run alone."""
        for pending_id in sorted(self.suspects):
            entry = journal.lookup(pending_id)
            if entry is not None and entry.payload is not None:
                with self._lock:
                    self.suspects.discard(pending_id)
                self._path(pending_id).unlink(missing_ok=True)

    def enter(self, pending: PendingTransaction) -> None:
        """Durably mark ``pending`` in flight (a suspect: and wait until it can run alone)."""
        with self._lock:  # the loop never enters one id twice at once (its own in-flight set)
            solo = pending.id in self.suspects
        self._solo.acquire(solo)
        with self._lock:
            self._held[pending.id] = solo
        marker = {
            "pendingId": pending.id,
            "chain": pending.chain,
            "boot": self._boot,
            "alone": solo,
            "pid": os.getpid(),
        }
        try:
            _write_durably(self._path(pending.id), json.dumps(marker).encode())
        except OSError as exc:
            self.leave(pending.id)
            raise QuarantineError(f"cannot mark {pending.id} in flight ({exc.strerror}); not processed") from None

    def leave(self, pending_id: str) -> None:
        """The id's processing ended (any way but a process death). No fsync: only a power loss could bring the
        marker back, and markers from another boot are dropped."""
        with self._lock:
            if pending_id not in self._held:
                return
            solo = self._held.pop(pending_id)
            self.suspects.discard(pending_id)
        with contextlib.suppress(FileNotFoundError):
            self._path(pending_id).unlink()
        self._solo.release(solo)


class NoInFlight:
    """No marker directory configured: no crash quarantine."""

    suspects: set[str] = set()

    def quarantine_found(self, journal: SigningJournal) -> list[str]:
        return []

    def drop_finished(self, journal: SigningJournal) -> None:
        pass

    def enter(self, pending: PendingTransaction) -> None:
        pass

    def leave(self, pending_id: str) -> None:
        pass


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _journal_id(pending_id: str) -> bool:
    try:
        check_pending_id(pending_id)
    except KmsError:
        return False
    return True


def _read_marker(path: Path) -> Marker | None:
    try:
        raw = path.read_bytes()[:_MAX_MARKER_BYTES]
        data = json.loads(raw)
        pid = data.get("pid")
        return Marker(
            str(data["pendingId"]), str(data["chain"]), str(data["boot"]), bool(data["alone"]),
            pid if isinstance(pid, int) else 0,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def inflight_directory(settings: Mapping[str, str] | None, store_path: Path | None) -> Path:
    """TATUM_KMS_INFLIGHT_DIR; else ``<store file>.inflight`` beside the store file; else ~/.tatumrc/inflight."""
    given = (settings or {}).get(INFLIGHT_DIR_SETTING, "").strip()
    if given:
        return Path(given).expanduser()
    if store_path is not None:
        return store_path.with_name(store_path.name + ".inflight")
    return Path.home() / ".tatumrc" / "inflight"


def report_poisoned(journal: SigningJournal, report: object) -> int:
    """Report every poisoned id not reported yet, in one batch call (``report`` is TatumClient.report_errors); each
    is marked reported only after the call succeeded. Returns how many were reported."""
    fresh = journal.unreported_poisoned()
    if not fresh:
        return 0
    errors = [
        {"signatureId": e.pending_id, "error": f"quarantined, not signed: {e.reason or POISONED_REASON}"} for e in fresh
    ]
    report(errors)  # type: ignore[operator]
    for entry in fresh:
        journal.mark_reported(entry.pending_id)
    return len(fresh)
