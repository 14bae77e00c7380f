"""The retry policy every network provider uses: ``kms.retry``'s, with the providers' defaults and settings.

Only ``TransientProviderError`` is retried (timeouts, connection errors, 5xx, throttling); anything else (4xx, a missing
secret, a missing key) fails at once. Attempts are bounded and spaced by exponential backoff with jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryError

from backends.base import Settings, float_setting, setting
from kms import retry
from kms.errors import TransientProviderError, UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy(retry.RetryPolicy):
    """The password providers' defaults of the one policy (``kms.retry``)."""

    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """TATUM_KMS_RETRY_ATTEMPTS (1-10), TATUM_KMS_RETRY_WAIT and TATUM_KMS_RETRY_MAX_WAIT (seconds)."""
        raw_attempts = setting(settings, "TATUM_KMS_RETRY_ATTEMPTS")
        attempts = cls.attempts
        if raw_attempts is not None:
            if not raw_attempts.isdigit() or not 1 <= int(raw_attempts) <= 10:
                raise UsageError("TATUM_KMS_RETRY_ATTEMPTS must be a whole number from 1 to 10")
            attempts = int(raw_attempts)
        initial = float_setting(settings, "TATUM_KMS_RETRY_WAIT", cls.initial_wait)
        maximum = float_setting(settings, "TATUM_KMS_RETRY_MAX_WAIT", max(cls.max_wait, initial))
        return cls(attempts=attempts, initial_wait=initial, max_wait=maximum, jitter=min(cls.jitter, initial))

    def run(self, provider: str, operation: Callable[[], T]) -> T:
        """Call ``operation`` until it succeeds, raises a non-transient error, or the attempts run out."""
        retrying = self.retrying(TransientProviderError)
        try:
            return retrying(operation)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            raise TransientProviderError(f"{last} (gave up after {self.attempts} attempts)") from None


def default_timeout(settings: Settings) -> float:
    """Seconds to wait for a provider's service to connect or answer (TATUM_KMS_PROVIDER_TIMEOUT, default 10)."""
    return float_setting(settings, "TATUM_KMS_PROVIDER_TIMEOUT", 10.0) or 10.0


__all__ = ["RetryPolicy", "default_timeout"]
