"""What a daemon run is configured with (and its defaults, written once), and what one cycle did."""

from __future__ import annotations

import enum
import threading
from collections import Counter
from dataclasses import dataclass, field

MAX_ERROR_TEXT = 1000


@dataclass(frozen=True)
class DaemonDefaults:
    """Every default and bound of a daemon run. ``kms daemon``'s argparse defaults and help, the reading of the
    settings (environment / env file) and ``DaemonConfig`` all take them from ``DEFAULTS``."""

    period: float = 5.0
    min_period: float = 0.05
    concurrency: int = 16
    """Worker threads: transactions worked on (and requests made) at once."""
    max_concurrency: int = 256
    max_in_flight: int = 256
    """Transactions admitted to the workers at once, over all senders (--max-in-flight)."""
    max_in_flight_per_sender: int = 64
    """Of those, at most this many of one sender (--max-in-flight-per-sender): how far one sender's signing may run
    ahead of its broadcasts, so at most this many are held back by a nonce gap."""
    max_in_flight_bound: int = 100_000
    external_url_method: str = "GET"
    four_eye_timeout: float = 10.0
    """TATUM_KMS_EXTERNAL_URL_TIMEOUT, seconds."""
    shutdown_timeout: float = 20.0
    cycle_deadline: float = 60.0
    """TATUM_KMS_CYCLE_DEADLINE, seconds: a cycle stops waiting for its transactions then (they go on in the
    background, each bounded by its own request deadlines; what did not start waits for the next cycle)."""
    metrics_address: str = "127.0.0.1"
    approval: str = "v1"
    """--approval: v1 is upstream's four-eye check (--externalUrl); v2 the signed protocol (kms.approval.v2)."""
    log_format: str = "text"
    log_level: str = "INFO"
    """TATUM_KMS_LOG_LEVEL (TATUM_KMS_DEBUG_MODE=1 means DEBUG)."""


DEFAULTS = DaemonDefaults()


@dataclass(frozen=True)
class DaemonConfig:
    chains: tuple[str, ...]
    testnet: bool
    period: float = DEFAULTS.period
    concurrency: int = DEFAULTS.concurrency
    max_in_flight: int = DEFAULTS.max_in_flight
    max_in_flight_per_sender: int = DEFAULTS.max_in_flight_per_sender
    run_once: bool = False
    wallets: tuple[str, ...] | None = None
    """runOnce only: poll with these signatureIds (sent to every chain, as upstream) instead of the store's."""
    transaction_ids: frozenset[str] | None = None
    """runOnce only: process only these pending ids."""
    cycle_deadline: float = DEFAULTS.cycle_deadline


class Outcome(enum.Enum):
    BROADCAST = "broadcast"
    REBROADCAST = "rebroadcast"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    SKIPPED = "skipped"
    HELD = "held"
    """Signed and journaled, not broadcast this cycle: a nonce gap of its sender holds it back."""


@dataclass
class CycleReport:
    pending: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    chain_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    deadline: float | None = None
    """time.monotonic() after which no further transaction of this cycle is started."""
    abandoned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def error(self, pending_id: str, message: str) -> None:
        text = " ".join(message.split())[:MAX_ERROR_TEXT]
        with self._lock:
            self.errors.append({"signatureId": pending_id, "error": text})

    def chain_error(self, chain: str, message: str) -> None:
        with self._lock:
            self.chain_errors[chain] = message

    def summary(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            **{o.value: self.outcomes.get(o, 0) for o in Outcome},
            "reported": len(self.errors),
            "abandoned": self.abandoned,
            "chainErrors": dict(self.chain_errors),
            "seconds": round(self.seconds, 3),
        }
