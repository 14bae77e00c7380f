"""One bounded POST: a cap on the answer's size and one deadline for the whole exchange, body included.

httpx's timeouts bound each socket operation, so a server trickling one byte at a time never trips them. Here the
body is streamed and the deadline checked after every chunk, with each socket wait itself capped by the deadline
as it stood when the request began; a trickling server is cut off at most one read timeout past the deadline.
(Local helper: the lead unifies it with the hardening work's limits module.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx


class AnswerTooLargeError(Exception):
    pass


class DeadlineError(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def post_bounded(
    client: httpx.Client, url: str, content: bytes, headers: dict[str, str], *, max_bytes: int, seconds: float
) -> Answer:
    """POST and read the answer; AnswerTooLargeError, DeadlineError, or httpx errors (transport, timeout)."""
    deadline = time.monotonic() + seconds
    timeout = httpx.Timeout(seconds)
    with client.stream("POST", url, content=content, headers=headers, timeout=timeout) as response:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise AnswerTooLargeError(f"the answer declares {declared} bytes")
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise AnswerTooLargeError(f"the answer is larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise DeadlineError("the answer did not arrive in time")
        if time.monotonic() > deadline:
            raise DeadlineError("the answer did not arrive in time")
        return Answer(response.status_code, response.headers.get("content-type", ""), bytes(body))
