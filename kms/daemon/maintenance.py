"""What the daemon does around its cycles rather than in them. At start (once the store is open): quarantine the
pending ids that took the last process down, and hold the ids the audit log shows signed but the journal does not know
(kms.daemon.reconcile). Before every cycle: report poisoned ids not reported yet (once each, through the batch error
endpoint)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kms.daemon.journal import JournalStore
from kms.daemon.quarantine import InFlight, NoInFlight, report_poisoned
from kms.daemon.reconcile import hold_audited
from kms.errors import TatumApiError

log = logging.getLogger("kms.daemon")

ReportErrors = Callable[[Sequence[Mapping[str, str]]], object]


class Maintenance:
    def __init__(
        self,
        store: JournalStore,
        report_errors: ReportErrors,
        inflight: InFlight | NoInFlight | None = None,
        *,
        audit_path: Path | None = None,
    ) -> None:
        self.store = store
        self.audit_path = audit_path
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
        journal = self.store.journal
        self.inflight.quarantine_found(journal)
        if self.audit_path is not None:
            held = hold_audited(journal, self.audit_path)
            if held:
                log.error("%d pending ids held: signed per the audit log, unknown to the journal", len(held))

    def _report_poisoned(self) -> None:
        try:
            count = report_poisoned(self.store.journal, self.report_errors)
        except TatumApiError as exc:
            log.error("could not report quarantined transactions: %s", exc)
            return
        if count:
            log.info("reported %d quarantined pending transactions to /v3/tatum/kms/batch", count)
