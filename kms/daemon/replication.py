"""This daemon as one replica of several on a shared store: its share of the signatureIds and its claims.

The loop asks ``signature_ids(chain, testnet)`` where a lone daemon asks the store, and gets only the ids whose
rendezvous owner among the live replicas is this one (kms.store.replicas); it takes a claim on a pending id before
anything is signed and gives it up when done (kms.store.claims). A heartbeat thread keeps this replica live; when the
database cannot be reached the replica reports not ready and polls nothing (it could not claim anything anyway).

Shares move without a gap longer than one poll period: the time-to-live is half the period (at least 2 s) and
heartbeats come four times per time-to-live, so a dead peer is seen gone within 1.25 time-to-lives of its death (5/8
of a period from a 4 s period, 2.5 s below: within one period for any period from 2.5 s); the heartbeat that sees it
gone wakes the loop for a takeover cycle that polls only the ids this replica newly owns (``taking_over``), not its
whole share, so in steady state the Tatum API sees no extra load. A peer that joins takes its share at its own first
poll; until the others see it, the overlap is harmless (the claim lets one replica sign).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager

from kms.errors import KmsError, UsageError
from kms.store.backend import StoreBackend
from kms.store.claims import DEFAULT_LEASE_S, Claims
from kms.store.database import Database
from kms.store.journal import JournalState, SigningJournal
from kms.store.lock import acquire_daemon_lock
from kms.store.replicas import Membership, owner, share

log = logging.getLogger("kms.daemon")

MIN_TTL_S = 2.0  # below this, a heartbeat delayed by a busy process or database would make peers flap
BEATS_PER_TTL = 4


def ttl_for(period_s: float) -> float:
    """Half the poll period, at least MIN_TTL_S: a dead peer is seen gone within 1.25 time-to-lives."""
    return max(period_s / 2, MIN_TTL_S)


LEASE_SETTING = "TATUM_KMS_CLAIM_LEASE_S"
"""How long a claim lasts without renewal (seconds, default 60): the longest a dead replica's in-flight ids wait."""


def exclusive_lock(backend: StoreBackend) -> AbstractContextManager[object]:
    """A store file allows one daemon (kms.store.lock); a replicated store any number (claims keep them apart)."""
    if backend.replicated or backend.path is None:
        return contextlib.nullcontext()
    return acquire_daemon_lock(backend.path)


def lease_from(settings: Mapping[str, str]) -> float:
    text = settings.get(LEASE_SETTING, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        lease = float(text)
    except ValueError:
        lease = 0.0
    if not 1 <= lease <= 3600:
        raise UsageError(f"{LEASE_SETTING} must be a number of seconds from 1 to 3600")
    return lease


class Replication:
    def __init__(
        self,
        database: Callable[[], Database],
        ids: Callable[[str, bool], list[str]],
        replica_id: str,
        *,
        ttl_s: float,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self._database = database
        self._ids = ids
        self.replica_id = replica_id
        self.ttl_s = max(float(ttl_s), MIN_TTL_S)
        self.lease_s = lease_s
        self._live: list[str] = [replica_id]
        self._beat_at: float | None = None  # monotonic time of the last heartbeat that reached the database
        self._shares: dict[str, tuple[int, int]] = {}
        self._polled_at: dict[str, float] = {}  # chain -> wall-clock time of this replica's last pending poll
        # chain -> the live replicas before a peer left, until this replica polls the chain again
        self._moved_from: dict[str, list[str]] = {}
        self._moved = threading.Event()  # a peer left: the loop runs a takeover cycle
        self._targeted = False  # within taking_over(): polls list only the newly owned ids
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the loop asks -----------------------------------------------------------------------------------------

    def signature_ids(self, chain: str, testnet: bool) -> list[str]:
        """This replica's share of the chain's signatureIds, against the live replicas as of now."""
        everything = self._ids(chain, testnet)
        live = self.heartbeat()
        mine = share(everything, self.replica_id, live)
        with self._lock:
            before = self._moved_from.pop(chain, None)  # a poll of the chain covers what moved to us
            if self._targeted:
                mine = [] if before is None else self._newly_mine(mine, before)
            else:
                self._shares[chain] = (len(mine), len(everything))
            self._polled_at[chain.strip().upper()] = time.time()  # the poll follows at once
        return mine

    def _newly_mine(self, mine: list[str], before: list[str]) -> list[str]:
        previous = sorted({*before, self.replica_id})
        return [sid for sid in mine if owner(sid, previous) != self.replica_id]

    def wait_moved(self, timeout: float) -> bool:
        """Whether a peer left (within `timeout`) and ids moved to this replica that it has not polled yet."""
        return self._moved.wait(timeout)

    @contextlib.contextmanager
    def taking_over(self) -> Iterator[None]:
        """A takeover cycle: while inside, each chain's poll lists only the ids that moved to this replica since its
        last poll of that chain (none for a chain where nothing moved, so no request at all)."""
        with self._lock:
            self._moved.clear()
            self._targeted = True
        try:
            yield
        finally:
            with self._lock:
                self._targeted = False

    def acquire(self, pending_id: str) -> bool:
        """Claim `pending_id`, unless another replica broadcast it after our poll listed it (while shares move, two
        replicas may list the same id): re-sending those same bytes would be harmless, but it is load for nothing.
        The next poll, made after that broadcast, says whether it is still pending."""
        claims = self._claims()
        if not claims.acquire(pending_id):
            return False
        entry = SigningJournal(self._database()).lookup(pending_id)
        if entry is not None and entry.state in (JournalState.BROADCAST, JournalState.COMPLETED):
            with self._lock:
                polled_at = self._polled_at.get(entry.chain)
            if polled_at is not None and entry.updated_at >= int(polled_at):
                claims.release(pending_id)
                return False
        return True

    def confirm(self, pending_id: str) -> None:
        self._claims().confirm(pending_id)

    def release(self, pending_id: str) -> None:
        try:
            self._claims().release(pending_id)
        except KmsError as exc:  # the lease runs out by itself
            log.warning("could not release the claim on %s (%s)", pending_id, exc)

    @property
    def ready(self) -> bool:
        """The last heartbeat reached the database within the time-to-live."""
        beat = self._beat_at
        return beat is not None and time.monotonic() - beat <= self.ttl_s

    def status(self) -> str:
        """One line for /readyz: this replica, the live replicas, and its share of each chain's signatureIds."""
        with self._lock:
            live, shares = list(self._live), dict(self._shares)
        parts = [f"{chain} {mine}/{total}" for chain, (mine, total) in sorted(shares.items())]
        return f"replica {self.replica_id}; {len(live)} live; share: {', '.join(parts) or 'none yet'}"

    # -- heartbeats -------------------------------------------------------------------------------------------------

    def heartbeat(self) -> list[str]:
        try:
            live = Membership(self._database(), self.replica_id, self.ttl_s).heartbeat()
        except KmsError:
            self._beat_at = None
            raise
        with self._lock:
            if live != self._live:
                log.info("replicas now %d: %s", len(live), ", ".join(live), extra={"replicas": live})
            if set(self._live) - set(live):  # a peer left: its ids are ours or another survivor's now
                for chain in self._shares:
                    self._moved_from.setdefault(chain, self._live)
                self._moved.set()
            self._live = live
        self._beat_at = time.monotonic()
        return live

    def start(self) -> None:
        """Heartbeat BEATS_PER_TTL times per time-to-live from a background thread, until stop()."""
        self._thread = threading.Thread(target=self._beat, name="kms-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.ttl_s / BEATS_PER_TTL):
            try:
                self.heartbeat()
            except KmsError as exc:
                if not failing:  # once per outage (or while sealed), not every beat
                    log.warning("heartbeat failed (%s); not ready until the database answers", exc)
                failing = True
                continue
            if failing:
                log.info("heartbeat reaches the database again")
            failing = False

    def stop(self) -> None:
        """Stop the heartbeats and leave, so the others take this share at their next poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            Membership(self._database(), self.replica_id, self.ttl_s).leave()
        except KmsError:
            pass  # the time-to-live removes this replica anyway

    def _claims(self) -> Claims:
        return Claims(self._database(), self.replica_id, self.lease_s)
