"""Prometheus metrics of the daemon.

Labels are only chain codes and error kinds, both checked against a strict shape and capped in number, so that no
signatureId, address, pending id or secret can ever become a label value (anything else is counted as "other").
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

OTHER = "other"
_CHAIN_SHAPE = re.compile(r"[A-Z][A-Z0-9_]{0,11}")
_KIND_SHAPE = re.compile(r"[a-z][a-z_]{0,31}")  # no digits: a hex string cannot pass as a kind
MAX_CHAINS = 64
MAX_KINDS = 32
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

METRIC_NAMES: tuple[str, ...] = (
    "kms_up",
    "kms_sealed",
    "kms_cycles_total",
    "kms_pending_seen_total",
    "kms_signed_total",
    "kms_broadcast_total",
    "kms_four_eye_rejections_total",
    "kms_errors_total",
    "kms_cycle_duration_seconds",
    "kms_last_cycle_timestamp_seconds",
    "kms_wallets",
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
    def set_wallet_counts(self, counts: Mapping[str, int]) -> None: ...
    def set_sealed(self, sealed: bool) -> None: ...
    def set_up(self, up: bool) -> None: ...


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
        self._duration = Histogram(
            "kms_cycle_duration_seconds", "Duration of a poll cycle.", buckets=CYCLE_BUCKETS, registry=r
        )
        self._last_cycle = Gauge(
            "kms_last_cycle_timestamp_seconds", "Unix time at which the last poll cycle ended.", registry=r
        )
        self._wallets = Gauge("kms_wallets", "Wallets (signatureIds) in the store per chain.", ["chain"], registry=r)
        self._wallet_chains: set[str] = set()
        self._up.set(1)

    def cycle_started(self) -> None:
        self._cycles.inc()

    def observe_cycle(self, seconds: float) -> None:
        self._duration.observe(max(0.0, float(seconds)))
        self._last_cycle.set(time.time())

    def pending_seen(self, chain: str, n: int = 1) -> None:
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
        self._errors.labels(kind=self._kind(kind), chain=chain_label).inc()

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

    def set_wallet_counts(self, counts: Mapping[str, int]) -> None:
        pass

    def set_sealed(self, sealed: bool) -> None:
        pass

    def set_up(self, up: bool) -> None:
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
