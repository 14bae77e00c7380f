"""Prometheus metrics of the daemon.

Labels are only chain codes and error kinds (and the fixed sets of four-eye verdicts and journal states), checked
against a strict shape and capped in number, so that no signatureId, address, pending id or secret can ever become a
label value (anything else is counted as "other").

The shipped alerts and dashboard (ops/monitoring/) read these families; tests/ops/test_monitoring.py checks that every
name they use is exported here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from kms.tatum.client import MAX_SIGNATURE_IDS

OTHER = "other"
_CHAIN_SHAPE = re.compile(r"[A-Z][A-Z0-9_]{0,11}")
_KIND_SHAPE = re.compile(r"[a-z][a-z_]{0,31}")  # no digits: a hex string cannot pass as a kind
MAX_CHAINS = 64
MAX_KINDS = 32
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FOUR_EYE_VERDICTS = ("approved", "refused", "unavailable")
JOURNAL_STATES = ("signed", "broadcast", "completed", "failed", "refused", "poisoned", "held")

METRIC_NAMES: tuple[str, ...] = (
    "kms_up",
    "kms_sealed",
    "kms_cycles_total",
    "kms_pending_seen_total",
    "kms_signed_total",
    "kms_broadcast_total",
    "kms_four_eye_rejections_total",
    "kms_errors_total",
    "kms_nonce_gaps_total",
    "kms_cycle_duration_seconds",
    "kms_last_cycle_timestamp_seconds",
    "kms_wallets",
    "kms_wallet_limit",
    "kms_last_successful_cycle_timestamp_seconds",
    "kms_tatum_api_reachable",
    "kms_tatum_request_duration_seconds",
    "kms_tatum_retries_total",
    "kms_four_eye_request_duration_seconds",
    "kms_four_eye_verdicts_total",
    "kms_journal_entries",
    "kms_audit_write_failures_total",
    "kms_audit_log_broken",
    "kms_unlock_failures_total",
)
"""Every metric family this module exports (as they appear in the exposition text)."""


class Metrics(Protocol):
    """What the daemon calls; DaemonMetrics records, NullMetrics ignores."""

    def cycle_started(self) -> None: ...
    def observe_cycle(self, seconds: float) -> None: ...
    def pending_seen(self, chain: str, n: int = 1) -> None: ...
    def signed(self, chain: str) -> None: ...
    def broadcast(self, chain: str) -> None: ...
    def four_eye_rejected(self, chain: str) -> None: ...
    def error(self, kind: str, chain: str = "") -> None: ...
    def nonce_gap(self, chain: str) -> None: ...
    def set_wallet_counts(self, counts: Mapping[str, int]) -> None: ...
    def set_sealed(self, sealed: bool) -> None: ...
    def set_up(self, up: bool) -> None: ...
    def four_eye_checked(self, verdict: str, seconds: float) -> None: ...
    def tatum_request(self, operation: str, seconds: float) -> None: ...
    def tatum_retry(self, operation: str) -> None: ...
    def set_journal_counts(self, counts: Mapping[str, int]) -> None: ...
    def audit_write_failed(self) -> None: ...
    def unlock_failed(self) -> None: ...


class _LabelGuard:
    """Admits label values of one shape, at most ``limit`` distinct ones; everything else becomes "other"."""

    def __init__(self, shape: re.Pattern[str], limit: int, normalise: str) -> None:
        self._shape = shape
        self._limit = limit
        self._upper = normalise == "upper"
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        if not isinstance(value, str):
            return OTHER
        text = value.strip().upper() if self._upper else value.strip().lower()
        if not self._shape.fullmatch(text):
            return OTHER
        if text not in self._seen:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
        return text


class DaemonMetrics:
    """The daemon's metrics in their own registry (served by kms.health's /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            # Process figures (memory, CPU, open fds) are useful and carry nothing sensitive.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.registry = registry
        self._chain = _LabelGuard(_CHAIN_SHAPE, MAX_CHAINS, "upper")
        self._kind = _LabelGuard(_KIND_SHAPE, MAX_KINDS, "lower")
        r = registry
        self._up = Gauge("kms_up", "1 while the kms daemon runs.", registry=r)
        self._sealed = Gauge("kms_sealed", "1 while the store is sealed; nothing is signed.", registry=r)
        self._cycles = Counter("kms_cycles", "Poll cycles started.", registry=r)
        self._pending = Counter(
            "kms_pending_seen", "Pending transactions fetched from the Tatum API.", ["chain"], registry=r
        )
        self._signed = Counter("kms_signed", "Pending transactions signed.", ["chain"], registry=r)
        self._broadcast = Counter("kms_broadcast", "Signed transactions broadcast successfully.", ["chain"], registry=r)
        self._rejected = Counter(
            "kms_four_eye_rejections", "Transactions the four-eye approval server refused.", ["chain"], registry=r
        )
        self._errors = Counter("kms_errors", "Errors by kind and chain.", ["kind", "chain"], registry=r)
        self._nonce_gaps = Counter(
            "kms_nonce_gaps",
            "Nonce gaps: a broadcast with a nonce the daemon handed out failed, so that sender's later nonces wait.",
            ["chain"],
            registry=r,
        )
        self._duration = Histogram(
            "kms_cycle_duration_seconds", "Duration of a poll cycle.", buckets=CYCLE_BUCKETS, registry=r
        )
        self._last_cycle = Gauge(
            "kms_last_cycle_timestamp_seconds", "Unix time at which the last poll cycle ended.", registry=r
        )
        self._wallets = Gauge("kms_wallets", "Wallets (signatureIds) in the store per chain.", ["chain"], registry=r)
        self._unlock_failures = Counter(
            "kms_unlock_failures", "Wrong passwords sent to the unseal socket ('kms unlock').", registry=r
        )
        self._wallet_chains: set[str] = set()
        self._up.set(1)
        self._add_operations_metrics(r)

    def _add_operations_metrics(self, r: CollectorRegistry) -> None:
        """What the shipped alerts and dashboard need beyond the counters above."""
        self._wallet_limit = Gauge(
            "kms_wallet_limit", "Most signatureIds the Tatum API accepts per chain in one poll.", registry=r
        )
        self._wallet_limit.set(MAX_SIGNATURE_IDS)
        self._last_success = Gauge(
            "kms_last_successful_cycle_timestamp_seconds",
            "Unix time at which the last poll cycle that reached the Tatum API ended (0: none yet).",
            registry=r,
        )
        self._reachable = Gauge(
            "kms_tatum_api_reachable", "1 when the last cycle's polls reached the Tatum API (or none was needed).",
            registry=r,
        )  # fmt: skip
        self._tatum_seconds = Histogram(
            "kms_tatum_request_duration_seconds", "Tatum API request latency, retries included, by operation.",
            ["operation"], buckets=REQUEST_BUCKETS, registry=r,
        )  # fmt: skip
        self._tatum_retries = Counter(
            "kms_tatum_retries", "Tatum API requests retried, by operation.", ["operation"], registry=r
        )
        self._four_eye_seconds = Histogram(
            "kms_four_eye_request_duration_seconds", "Four-eye approval server latency.", buckets=REQUEST_BUCKETS,
            registry=r,
        )  # fmt: skip
        self._verdicts = Counter("kms_four_eye_verdicts", "Four-eye answers by verdict.", ["verdict"], registry=r)
        self._journal = Gauge("kms_journal_entries", "Entries of the signing journal by state.", ["state"], registry=r)
        self._audit_failures = Counter(
            "kms_audit_write_failures", "Audit records that could not be written.", registry=r
        )
        self._audit_broken = Gauge(
            "kms_audit_log_broken", "1 once the audit log could not be written: signing stopped until a restart.",
            registry=r,
        )  # fmt: skip
        self._operation = _LabelGuard(_KIND_SHAPE, MAX_KINDS, "lower")
        for verdict in FOUR_EYE_VERDICTS:
            self._verdicts.labels(verdict=verdict)
        self._polls_lock = threading.Lock()
        self._polls_answered = self._polls_failed = 0

    def cycle_started(self) -> None:
        self._cycles.inc()
        with self._polls_lock:
            self._polls_answered = self._polls_failed = 0

    def observe_cycle(self, seconds: float) -> None:
        """The end of a cycle. Whether it reached the Tatum API follows from the calls the loop made during it:
        ``pending_seen`` after every answered poll, ``error("poll")`` after every failed one (the loop's own rule:
        some poll answered, or none was needed)."""
        now = time.time()
        self._duration.observe(max(0.0, float(seconds)))
        self._last_cycle.set(now)
        with self._polls_lock:
            reached = self._polls_answered > 0 or self._polls_failed == 0
        self._reachable.set(1 if reached else 0)
        if reached:
            self._last_success.set(now)

    def pending_seen(self, chain: str, n: int = 1) -> None:
        with self._polls_lock:
            self._polls_answered += 1
        if n > 0:
            self._pending.labels(chain=self._chain(chain)).inc(n)

    def signed(self, chain: str) -> None:
        self._signed.labels(chain=self._chain(chain)).inc()

    def broadcast(self, chain: str) -> None:
        self._broadcast.labels(chain=self._chain(chain)).inc()

    def four_eye_rejected(self, chain: str) -> None:
        self._rejected.labels(chain=self._chain(chain)).inc()

    def error(self, kind: str, chain: str = "") -> None:
        """Count an error; ``chain`` empty for errors outside any chain (e.g. "store", "config")."""
        chain_label = self._chain(chain) if chain else "none"
        label = self._kind(kind)
        self._errors.labels(kind=label, chain=chain_label).inc()
        if label == "poll":
            with self._polls_lock:
                self._polls_failed += 1
        elif label == "audit":  # the loop counts this only once the audit log is broken: signing has stopped
            self._audit_broken.set(1)

    def nonce_gap(self, chain: str) -> None:
        self._nonce_gaps.labels(chain=self._chain(chain)).inc()

    def set_wallet_counts(self, counts: Mapping[str, int]) -> None:
        """The store's wallet count per chain; chains no longer present drop to 0."""
        current: dict[str, int] = {}
        for chain, count in counts.items():
            label = self._chain(chain)
            current[label] = current.get(label, 0) + max(0, int(count))
        for label in self._wallet_chains - current.keys():
            self._wallets.labels(chain=label).set(0)
        for label, count in current.items():
            self._wallets.labels(chain=label).set(count)
        self._wallet_chains |= current.keys()

    def set_sealed(self, sealed: bool) -> None:
        self._sealed.set(1 if sealed else 0)

    def set_up(self, up: bool) -> None:
        self._up.set(1 if up else 0)

    def four_eye_checked(self, verdict: str, seconds: float) -> None:
        """One answer (or none: "unavailable") of the four-eye server and how long it took."""
        label = verdict if verdict in FOUR_EYE_VERDICTS else OTHER
        self._verdicts.labels(verdict=label).inc()
        self._four_eye_seconds.observe(max(0.0, float(seconds)))

    def tatum_request(self, operation: str, seconds: float) -> None:
        """One Tatum API call (``operation`` a fixed word such as "pending", "broadcast", "report")."""
        self._tatum_seconds.labels(operation=self._operation(operation)).observe(max(0.0, float(seconds)))

    def tatum_retry(self, operation: str) -> None:
        self._tatum_retries.labels(operation=self._operation(operation)).inc()

    def set_journal_counts(self, counts: Mapping[str, int]) -> None:
        """The journal's entries per state ("signed", "broadcast", "refused"); states not given are 0."""
        for state in JOURNAL_STATES:
            self._journal.labels(state=state).set(max(0, int(counts.get(state, 0))))

    def audit_write_failed(self) -> None:
        self._audit_failures.inc()
        self._audit_broken.set(1)

    def unlock_failed(self) -> None:
        self._unlock_failures.inc()


class NullMetrics:
    """Metrics off: every call does nothing."""

    registry: CollectorRegistry | None = None

    def cycle_started(self) -> None:
        pass

    def observe_cycle(self, seconds: float) -> None:
        pass

    def pending_seen(self, chain: str, n: int = 1) -> None:
        pass

    def signed(self, chain: str) -> None:
        pass

    def broadcast(self, chain: str) -> None:
        pass

    def four_eye_rejected(self, chain: str) -> None:
        pass

    def error(self, kind: str, chain: str = "") -> None:
        pass

    def nonce_gap(self, chain: str) -> None:
        pass

    def set_wallet_counts(self, counts: Mapping[str, int]) -> None:
        pass

    def set_sealed(self, sealed: bool) -> None:
        pass

    def set_up(self, up: bool) -> None:
        pass

    def four_eye_checked(self, verdict: str, seconds: float) -> None:
        pass

    def tatum_request(self, operation: str, seconds: float) -> None:
        pass

    def tatum_retry(self, operation: str) -> None:
        pass

    def set_journal_counts(self, counts: Mapping[str, int]) -> None:
        pass

    def audit_write_failed(self) -> None:
        pass

    def unlock_failed(self) -> None:
        pass


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PolicyInfo:
    """``kms_policy_info{sha256}`` = 1 for the local policy file in force (registered only when one is configured);
    after a reload the old hash's series is removed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauge = Gauge(
            "kms_policy_info", "The local policy file in force (its SHA-256).", ["sha256"], registry=registry
        )
        self._current: str | None = None

    def set(self, sha256: str) -> None:
        if not _SHA256_HEX.fullmatch(sha256):
            raise ValueError("a policy hash is 64 lower-case hex digits")
        if self._current is not None and self._current != sha256:
            self._gauge.remove(self._current)
        self._gauge.labels(sha256=sha256).set(1)
        self._current = sha256


__all__ = ["METRIC_NAMES", "OTHER", "DaemonMetrics", "Metrics", "NullMetrics", "PolicyInfo"]
