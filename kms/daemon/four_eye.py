"""Four-eye approval: ask an external system before signing (upstream's --externalUrl).

``GET {url}/{id}``, or with method POST the pending transaction as JSON to the same address. Only a 2xx approves.
A 4xx is an explicit refusal (final: reported once, never asked again), except the ones that speak about the request
rather than the transaction (401, 407, 408, 425, 429: authentication, timeout, throttling). Those and everything else
(timeout, no connection, 3xx, 5xx) are "unavailable": not signed now, asked again next cycle. No retries within a
cycle and no redirects followed: the answer must come from the configured address.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from kms.api import PendingTransaction
from kms.daemon.model import DEFAULTS
from kms.http_limits import HttpLimits, LimitedTransport
from kms.tatum.proxy import transport_for

log = logging.getLogger("kms.daemon")

DEFAULT_TIMEOUT = DEFAULTS.four_eye_timeout
"""Seconds for the whole exchange (connecting, asking, the full answer); a slower answer is no answer."""
# Only the status counts; the body is read (to reuse the connection) but never this far.
MAX_ANSWER_BYTES = 64 * 1024
# 4xx answers that say nothing about the transaction: asking again later may get a real verdict.
NOT_A_VERDICT = frozenset({401, 407, 408, 425, 429})


class Verdict(enum.Enum):
    APPROVED = "approved"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    status: int | None = None
    """The approval server's HTTP status, when it answered."""

    @property
    def approved(self) -> bool:
        return self.verdict is Verdict.APPROVED


class FourEye:
    """Thread-safe (one httpx.Client)."""

    def __init__(self, url: str, method: str = "GET", timeout: float = DEFAULT_TIMEOUT, max_connections: int = 32):
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError("the external URL method is GET or POST")
        self.url = url.rstrip("/")
        self.method = method
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            transport=LimitedTransport(transport_for(self.url, limits), HttpLimits(MAX_ANSWER_BYTES, timeout)),
            headers={"accept": "application/json"},
        )

    def check(self, pending: PendingTransaction) -> Decision:
        target = f"{self.url}/{quote(pending.id, safe='')}"
        try:
            if self.method == "POST":
                response = self._http.post(target, json=dict(pending.raw))
            else:
                response = self._http.get(target)
        except httpx.TimeoutException:
            return Decision(Verdict.UNAVAILABLE, "the approval server did not answer in time")
        except httpx.TransportError as exc:
            return Decision(Verdict.UNAVAILABLE, f"the approval server is unreachable ({type(exc).__name__})")
        except httpx.HTTPError as exc:  # too large, compressed, undecodable: no verdict (fail closed)
            return Decision(Verdict.UNAVAILABLE, f"the approval server's answer was unusable ({type(exc).__name__})")
        status = response.status_code
        # The approval server's body is its own business: it goes neither to the Tatum API nor to the audit log.
        detail = f"HTTP {status}"
        if 200 <= status < 300:
            return Decision(Verdict.APPROVED, detail, status)
        if 400 <= status < 500 and status not in NOT_A_VERDICT:
            return Decision(Verdict.REFUSED, detail, status)
        return Decision(Verdict.UNAVAILABLE, detail, status)

    def close(self) -> None:
        self._http.close()
