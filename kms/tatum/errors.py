"""Errors of the Tatum API client. Messages are one line, never carry the API key, and quote at most a short,
sanitised excerpt of what the server said."""

from __future__ import annotations

from kms.errors import TatumApiError

_EXCERPT = 300


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A printable one-line excerpt of a server's answer."""
    flat = " ".join(text.split())
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class TatumHttpError(TatumApiError):
    """The API answered with a status that is not 2xx (after any retries)."""

    def __init__(self, operation: str, status: int, body: str) -> None:
        detail = f": {excerpt(body)}" if body.strip() else ""
        super().__init__(f"{operation}: HTTP {status}{detail}")
        self.operation = operation
        self.status = status
        self.body = excerpt(body, 2000)


class TatumUnavailableError(TatumApiError):
    """No answer at all: connection refused or reset, timeout (after the retries)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: no answer from the Tatum API ({reason})")
        self.operation = operation


class MalformedResponseError(TatumApiError):
    """A 2xx answer whose body is not JSON or not of the documented shape."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: malformed response ({reason})")
        self.operation = operation
