"""What the daemon does around its cycles rather than in them: at start (once the store is open) it quarantines the
pending ids that took the last process down, and before every cycle it reports poisoned ids that were not reported
yet (once each, through the batch error endpoint)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from kms.daemon.journal import JournalStore
from kms.daemon.quarantine import InFlight, NoInFlight, report_poisoned
from kms.errors import TatumApiError

log = logging.getLogger("kms.daemon")

ReportErrors = Callable[[Sequence[Mapping[str, str]]], object]


class Maintenance:
    def __init__(
        self,
        store: JournalStore,
        report_errors: ReportErrors,
        inflight: InFlight | NoInFlight | None = None,
    ) -> None:
        self.store = store
        self.report_errors = report_errors
        self.inflight = inflight or NoInFlight()
        self.started = False

    def before_cycle(self) -> None:
        """Start-up work once (raises when it cannot be done: no cycle runs then), then the per-cycle work."""
        if not self.started:
            self.start_up()
            self.started = True
        self._report_poisoned()

    def start_up(self) -> None:
        self.inflight.quarantine_found(self.store.journal)

    def _report_poisoned(self) -> None:
        try:
            count = report_poisoned(self.store.journal, self.report_errors)
        except TatumApiError as exc:
            log.error("could not report quarantined transactions: %s", exc)
            return
        if count:
            log.info("reported %d quarantined pending transactions to /v3/tatum/kms/batch", count)
