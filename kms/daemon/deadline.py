"""The cycle deadline (issue 15, item 2): one stuck transaction or chain must not stop the others.

Python cannot stop a thread, and a transaction must never be cut off between its journal write and its broadcast, so
the deadline does not interrupt anything: at the deadline the cycle stops waiting and reports; a transaction still
running goes on in the background (every outbound request has its own total deadline) and stays marked in flight, so
the next cycle skips it instead of processing it twice; a transaction not yet started when the deadline passed is not
started (it is polled again next cycle, and a journaled one re-sends its journaled bytes then)."""

from __future__ import annotations

import logging
import time
from collections.abc import Set
from concurrent.futures import Future
from typing import Any

from kms.daemon.model import CycleReport
from kms.metrics import Metrics

log = logging.getLogger("kms.daemon")

DEADLINE_SETTING = "TATUM_KMS_CYCLE_DEADLINE"


def cycle_left(report: CycleReport) -> float | None:
    """Seconds until the cycle's deadline (0 once past it; None: no deadline)."""
    if report.deadline is None:
        return None
    return max(0.0, report.deadline - time.monotonic())


def past_deadline(report: CycleReport) -> bool:
    return report.deadline is not None and time.monotonic() > report.deadline


def abandon_late(report: CycleReport, late: Set[Future[Any]], metrics: Metrics) -> None:
    """The cycle ends without the transactions of ``late``; say so (they finish or are skipped in the background)."""
    if not late:
        return
    with report._lock:
        report.abandoned = len(late)
    log.warning(
        "cycle deadline passed with %d senders' transactions unfinished; they go on in the background or wait for"
        " the next cycle",
        len(late),
    )
    metrics.error("cycle_deadline")
