"""The one retry policy: the password backends, the Tatum client's transport and the node gateway all use it.

Retried is what a caller marks transient (no answer, timeouts, 5xx, 429); everything else fails at once. Attempts
are bounded in number and in total time and spaced by exponential backoff with additive jitter. A ``Retry-After``
the server sends is honoured up to ``max_retry_after``; beyond that the policy either waits the cap or, with
``give_up_over_cap``, stops at once rather than waiting less than asked.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.0
    max_total: float = 60.0
    max_retry_after: float = 30.0
    give_up_over_cap: bool = False

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(attempts=1)

    def backoff(self, attempt_number: int) -> float:
        exponential = self.initial_wait * 2 ** max(0, attempt_number - 1)
        return min(self.max_wait, exponential) + (random.uniform(0, self.jitter) if self.jitter else 0.0)

    def retrying(
        self,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_after: Callable[[BaseException], float | None] = lambda _: None,
        cancel: threading.Event | None = None,
        give_up: Callable[[], bool] | None = None,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        reraise: bool = False,
    ) -> Retrying:
        """A tenacity ``Retrying`` for this policy. ``retry_after`` reads the seconds a failure asks to wait;
        ``give_up`` (a caller's deadline) ends the attempts when it says so."""

        def asked(state: RetryCallState) -> float | None:
            error = state.outcome.exception() if state.outcome is not None else None
            return retry_after(error) if error is not None else None

        def wait(state: RetryCallState) -> float:
            seconds = asked(state)
            if seconds is not None:
                return min(seconds, self.max_retry_after)
            return self.backoff(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if (cancel is not None and cancel.is_set()) or (give_up is not None and give_up()):
                return True
            if (stop_after_attempt(self.attempts) | stop_after_delay(self.max_total))(state):
                return True
            seconds = asked(state)
            return self.give_up_over_cap and seconds is not None and seconds > self.max_retry_after

        return Retrying(
            stop=stop,
            wait=wait,
            sleep=sleep,
            retry=retry_if_exception_type(retry_on),
            before_sleep=before_sleep,
            reraise=reraise,
        )


def retry_after_seconds(response: Any, now: float | None = None) -> float | None:
    """``Retry-After`` of an HTTP response (anything with ``headers``) as seconds, from delta-seconds or an HTTP
    date; None when absent or unreadable."""
    headers: Mapping[str, str] = response.headers
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


__all__ = ["RetryPolicy", "retry_after_seconds"]
