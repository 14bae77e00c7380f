"""Bounded retries for every request made to the Tatum API, as an httpx transport.

Retried: no answer (connection refused or reset, timeouts, a broken response) and the statuses that mean "try again
later" (5xx, 429). A 429 or 503 with ``Retry-After`` waits what the server asked for, unless that is longer than the
policy's cap, in which case the answer is returned at once rather than waiting less than asked. Every other status is
the caller's to judge, at once. Retrying at the transport means every caller (the daemon's own calls and the signers'
look-ups through the gateway) gets the same policy, the one of ``kms.retry``. Re-sending is safe for every request the
daemon makes: polling is a read, a broadcast re-sends the same signed payload (the same on-chain transaction), and a
repeated error report is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from tenacity import RetryCallState

from kms import retry
from kms.http_limits import cap_body, remaining
from kms.retry import retry_after_seconds

log = logging.getLogger("kms.tatum")
# A "try again later" answer is read (for the error message) only this far.
ERROR_BODY_CAP = 64 * 1024

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


@dataclass(frozen=True)
class RetryPolicy(retry.RetryPolicy):
    """The Tatum client's defaults of the one policy (``kms.retry``)."""

    attempts: int = 6
    initial_wait: float = 0.25
    max_wait: float = 8.0
    jitter: float = 0.25
    max_total: float = 60.0
    max_retry_after: float = 30.0
    give_up_over_cap: bool = True


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _Retryable(Exception):
    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def _asked_wait(error: BaseException) -> float | None:
    return retry_after_seconds(error.response) if isinstance(error, _RetryableStatus) else None


def _deadline_passed() -> bool:
    """The request's total deadline (kms.http_limits) is spent: no further attempt."""
    left = remaining()
    return left is not None and left <= 0


def _retryable_transport_error(exc: httpx.TransportError) -> bool:
    # Protocol misuse on our side and unsupported schemes will not get better by trying again.
    return not isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.ProxyError)


class RetryingTransport(httpx.BaseTransport):
    """Wraps another transport; see the module docstring. ``cancel`` (when set) stops retrying and cuts waits short:
    the daemon sets it when its shutdown deadline passes."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: retry.RetryPolicy,
        *,
        cancel: threading.Event | None = None,
        redact: Callable[[str], str] = lambda text: text,
        on_retry: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._cancel = cancel or threading.Event()
        self._redact = redact
        self._on_retry = on_retry

    def _sleep(self, seconds: float) -> None:
        left = remaining()  # the request's total deadline (kms.http_limits) cuts the wait short too
        self._cancel.wait(seconds if left is None else max(0.0, min(seconds, left)))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        request: httpx.Request | None = state.args[0] if state.args else None
        target = self._redact(f"{request.method} {request.url.path}") if request is not None else "request"
        wait = state.next_action.sleep if state.next_action else 0.0
        if request is not None and self._on_retry is not None:
            self._on_retry(request)
        log.warning(
            "%s failed (%s), attempt %d of %d; retrying in %.2fs",
            target,
            exc,
            state.attempt_number,
            self._policy.attempts,
            wait,
        )

    def _attempt(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            if _retryable_transport_error(exc):
                raise _Retryable(exc) from exc
            raise
        if response.status_code in RETRY_STATUSES:
            cap_body(response, ERROR_BODY_CAP, request)
            response.read()
            response.close()
            raise _RetryableStatus(response)
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        retrying = self._policy.retrying(
            (_Retryable, _RetryableStatus),
            sleep=self._sleep,
            retry_after=_asked_wait,
            cancel=self._cancel,
            give_up=_deadline_passed,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, request)
        except _RetryableStatus as final:
            return final.response
        except _Retryable as final:
            raise final.cause from None

    def close(self) -> None:
        self._inner.close()
