"""The daemon-side state of a seal: the store, empty until unlocked, emptied (keys wiped) when sealed again.

A daemon starts sealed when its password would come from the prompt backend and there is no terminal (or with
``--sealed``): it serves the unseal socket (kms.seal.gate) and signs nothing until ``kms unlock`` sends a password
that opens the store. ``kms seal`` waits for the running cycle to end, closes the store (wiping its keys) and seals
again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from kms.errors import KmsError, StoreError
from kms.hygiene import SecretBuffer
from kms.metrics import Metrics
from kms.session import open_existing_store
from kms.store import StoredWallet, WalletStore
from kms.store.backend import StoreBackend
from kms.store.database import Database
from kms.store.journal import JournalEntry, SigningJournal

log = logging.getLogger("kms.daemon")

SEALED_MESSAGE = "the daemon is sealed; nothing is signed until 'kms unlock'"
SEAL_WAIT = 120.0


class StoreSlot:
    """Holds the open store (or nothing, while sealed) and forwards the calls the daemon makes. Thread-safe."""

    def __init__(self) -> None:
        self._store: WalletStore | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._store is not None

    def install(self, store: WalletStore) -> None:
        with self._lock:
            previous, self._store = self._store, store
        if previous is not None:
            previous.close()

    def release(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def _current(self) -> WalletStore:
        store = self._store
        if store is None:
            raise StoreError(SEALED_MESSAGE)
        return store

    def get(self, signature_id: str) -> StoredWallet:
        return self._current().get(signature_id)

    def signature_ids(self, chain: str, testnet: bool) -> list[str]:
        return self._current().signature_ids(chain, testnet)

    def counts(self) -> dict[tuple[str, bool], int]:
        return self._current().counts()

    @property
    def database(self) -> Database:
        return self._current().database

    @property
    def journal(self) -> SigningJournal:
        return self._current().journal

    def journal_get(self, pending_id: str) -> str | None:
        return self._current().journal_get(pending_id)

    def journal_put(self, pending_id: str, chain: str, tx_data: str, request_sha256: str = "") -> None:
        self._current().journal_put(pending_id, chain, tx_data, request_sha256)

    def journal_lookup(self, pending_id: str) -> JournalEntry | None:
        return self._current().journal_lookup(pending_id)

    def journal_mark(self, pending_id: str, status: str) -> None:
        self._current().journal_mark(pending_id, status)

    def close(self) -> None:
        self.release()


class SealControl:
    """Joins the gate, the store slot and the daemon: what the loop waits on, what the gate calls."""

    def __init__(
        self,
        slot: StoreSlot,
        path: Path | StoreBackend,
        allow_weak_kdf: bool,
        metrics: Metrics,
    ) -> None:
        self.slot = slot
        self.path = path
        self.allow_weak_kdf = allow_weak_kdf
        self.metrics = metrics
        self._cycle_lock: Callable[[], threading.Lock] | None = None
        self._unsealed = threading.Event()

    def bind_cycle_lock(self, cycle_lock: Callable[[], threading.Lock]) -> None:
        """Sealing takes this lock, so the keys are never dropped under a running cycle."""
        self._cycle_lock = cycle_lock

    # -- what the daemon loop sees (kms.daemon.loop.SealState) -------------------------------------------------------

    @property
    def sealed(self) -> bool:
        return not self.slot.opened

    def wait_unsealed(self, timeout: float) -> bool:
        return self._unsealed.wait(timeout) and self.slot.opened

    # -- what the gate calls -------------------------------------------------------------------------------------

    def verify(self, password: SecretBuffer) -> bool:
        store = open_existing_store(self.path, password, self.allow_weak_kdf)
        self.install(store)
        log.info("unsealed: the store is open; signing resumes")
        return True

    def install(self, store: WalletStore) -> None:
        self.slot.install(store)
        self.metrics.set_sealed(False)
        self._unsealed.set()

    def seal(self) -> None:
        lock = self._cycle_lock() if self._cycle_lock is not None else None
        if lock is not None and not lock.acquire(timeout=SEAL_WAIT):
            raise KmsError("a poll cycle is still running; try again")
        try:
            self._unsealed.clear()
            self.slot.release()
            self.metrics.set_sealed(True)
        finally:
            if lock is not None:
                lock.release()
        log.warning("sealed: the store is closed and its keys wiped; nothing is signed until 'kms unlock'")
