"""What the daemon does around its cycles rather than in them (kms.daemon.quarantine, kms.daemon.reconcile).

At start, once the store is open and before the first cycle: quarantine the pending ids that took the last process
down; hold the ids the audit log shows signed but the journal does not know; reconcile the entries stuck at `signed`
with the Tatum API; prune `broadcast`/`completed` entries older than the retention. Before every cycle: report poisoned
ids not reported yet (once each, through the batch error endpoint), and prune again once a day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from kms.daemon.journal import JournalStore
from kms.daemon.quarantine import InFlight, NoInFlight, report_poisoned
from kms.daemon.reconcile import hold_audited, reconcile_stuck
from kms.errors import KmsError, TatumApiError
from kms.store.journal import DEFAULT_RETENTION_DAYS

log = logging.getLogger("kms.daemon")

PRUNE_EVERY_S = 86_400.0


class TatumSide(Protocol):
    def report_errors(self, errors: Sequence[Mapping[str, str]]) -> None: ...
    def get_pending_transaction(self, pending_id: str, chain: str | None = None) -> Any: ...


class Maintenance:
    def __init__(
        self,
        store: JournalStore,
        client: TatumSide,
        inflight: InFlight | NoInFlight | None = None,
        *,
        audit_path: Path | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.client = client
        self.inflight = inflight or NoInFlight()
        self.audit_path = audit_path
        self.retention_days = retention_days
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._last_prune: float | None = None
        self.started = False

    def before_cycle(self) -> None:
        """Start-up work once (raises when it cannot be done: no cycle runs then), then the per-cycle work."""
        if not self.started:
            self.start_up()
            self.started = True
        elif self._last_prune is None or self._monotonic() - self._last_prune >= PRUNE_EVERY_S:
            self._prune()
        self._report_poisoned()

    def start_up(self) -> None:
        journal = self.store.journal
        self.inflight.quarantine_found(journal)
        if self.audit_path is not None:
            held = hold_audited(journal, self.audit_path)
            if held:
                log.error("%d pending ids held: signed per the audit log, unknown to the journal", len(held))
        reconciled = reconcile_stuck(journal, self.client.get_pending_transaction)
        if reconciled:
            log.info("journal: %d entries stuck at signed reconciled with the Tatum API", reconciled)
        self.inflight.drop_finished(journal)
        self._prune()

    def _prune(self) -> None:
        self._last_prune = self._monotonic()
        try:
            pruned = self.store.journal.prune(self.retention_days, now=self._wall_clock())
        except KmsError as exc:
            log.error("could not prune the journal: %s", exc)
            return
        if pruned:
            log.info("journal: pruned %d finished entries older than %d days", pruned, self.retention_days)

    def _report_poisoned(self) -> None:
        try:
            count = report_poisoned(self.store.journal, self.client.report_errors)
        except TatumApiError as exc:
            log.error("could not report quarantined transactions: %s", exc)
            return
        if count:
            log.info("reported %d quarantined pending transactions to /v3/tatum/kms/batch", count)
