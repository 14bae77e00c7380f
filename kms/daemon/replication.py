"""This daemon as one replica of several on a shared store: its share of the signatureIds and its claims.

The loop asks ``signature_ids(chain, testnet)`` where a lone daemon asks the store, and gets only the ids whose
rendezvous owner among the live replicas is this one (kms.store.replicas); it takes a claim on a pending id before
anything is signed and gives it up when done (kms.store.claims). A heartbeat thread keeps this replica live; when the
database cannot be reached the replica reports not ready and polls nothing (it could not claim anything anyway).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

from kms.errors import KmsError, UsageError
from kms.store.backend import StoreBackend
from kms.store.claims import DEFAULT_LEASE_S, Claims
from kms.store.database import Database
from kms.store.journal import JournalState, SigningJournal
from kms.store.lock import acquire_daemon_lock
from kms.store.replicas import Membership, share

log = logging.getLogger("kms.daemon")

MIN_TTL_S = 2.0
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
            self._shares[chain] = (len(mine), len(everything))
            self._polled_at[chain.strip().upper()] = time.time()  # the poll follows at once
        return mine

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
            self._live = live
        self._beat_at = time.monotonic()
        return live

    def start(self) -> None:
        """Heartbeat every third of the time-to-live from a background thread, until stop()."""
        self._thread = threading.Thread(target=self._beat, name="kms-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.ttl_s / 3):
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
