"""Bounds on every outbound HTTP request: a total deadline and a cap on the answer's size.

httpx's timeouts apply to each socket operation, so a server that sends one byte every few seconds never trips them.
Here a request gets one deadline for everything it does (connecting, sending, every retry, the headers and the body):

- ``LimitedTransport`` (the outermost transport of a client) starts the deadline, caps the body while it streams in,
  and asks for an uncompressed answer (a compressed one could inflate past any cap);
- ``deadline_aware_transport`` builds the network transport whose every socket operation waits at most until the
  deadline of the request running on the calling thread.

Per request, ``HttpLimits(...).extensions()`` passed as httpx's ``extensions`` overrides the client's limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

EXTENSION = "kms.limits"
_local = threading.local()


@dataclass(frozen=True)
class HttpLimits:
    max_bytes: int
    """The most body bytes accepted (as sent, uncompressed)."""
    seconds: float
    """The total deadline of the request, retries and body included."""

    def extensions(self) -> dict[str, Any]:
        return {EXTENSION: self}


class ResponseTooLargeError(httpx.RequestError):
    """The answer is larger than the request's cap (not retried: it would be as large again)."""


class DeadlineExceededError(httpx.TimeoutException):
    """The request's total deadline passed."""


class CompressedAnswerError(httpx.RequestError):
    """The server compressed an answer that was asked for uncompressed."""


def remaining() -> float | None:
    """Seconds left before the deadline of the request running on this thread; None outside any request."""
    deadline: float | None = getattr(_local, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


@contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Run the block under ``deadline`` (a ``time.monotonic`` value); an enclosing, earlier deadline still holds."""
    previous: float | None = getattr(_local, "deadline", None)
    _local.deadline = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _local.deadline = previous


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        clamped = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, clamped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        clamped = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, clamped, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        clamped = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, clamped, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_aware_transport(limits: httpx.Limits, proxy: httpx.Proxy | None = None) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` whose socket operations end by the deadline of the request on the calling thread."""
    transport = httpx.HTTPTransport(limits=limits, proxy=proxy)
    # httpcore's pools take a network backend, but httpx does not pass one through: wrap the pool's own.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if pool is None or backend is None:
        raise RuntimeError("this httpx/httpcore release does not expose the network backend; cannot bound requests")
    pool._network_backend = _DeadlineBackend(backend)
    return transport


class _LimitedBody(httpx.SyncByteStream):
    def __init__(self, inner: Any, max_bytes: int, deadline: float, request: httpx.Request | None) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._deadline = deadline
        self._request = request
        self._active: Generator[bytes, None, None] | None = None

    def __iter__(self) -> Generator[bytes, None, None]:
        self._active = self._chunks()
        return self._active

    def _chunks(self) -> Generator[bytes, None, None]:
        received = 0
        chunks = iter(self._inner)
        try:
            while True:
                with deadline_scope(self._deadline):
                    if time.monotonic() >= self._deadline:
                        raise DeadlineExceededError("the answer did not arrive in time", request=self._request)
                    chunk = next(chunks, None)
                if chunk is None:
                    return
                received += len(chunk)
                if received > self._max_bytes:
                    raise ResponseTooLargeError(f"answer larger than {self._max_bytes} bytes", request=self._request)
                yield chunk
        finally:
            # Finish httpcore's body generator now: left to the garbage collector, its cleanup takes the connection
            # pool's lock at whatever moment the collector runs, possibly inside the pool holding that same lock.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        if self._active is not None:  # a reader that stopped early: finish the generators here, not in the collector
            self._active.close()
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def cap_body(response: httpx.Response, max_bytes: int, request: httpx.Request | None = None) -> None:
    """Bound the not yet read body of ``response`` (an answer to ``request``) to ``max_bytes`` and to the deadline of
    the request running on this thread, if any."""
    left = remaining()
    deadline = time.monotonic() + (left if left is not None else 365 * 86400.0)
    response.stream = _LimitedBody(response.stream, max_bytes, deadline, request)


class LimitedTransport(httpx.BaseTransport):
    """The outermost transport of a client: every request within ``default`` (or its own ``HttpLimits``)."""

    def __init__(self, inner: httpx.BaseTransport, default: HttpLimits) -> None:
        self._inner = inner
        self._default = default

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        limits = request.extensions.get(EXTENSION, self._default)
        deadline = time.monotonic() + limits.seconds
        request.headers["accept-encoding"] = "identity"
        with deadline_scope(deadline):
            response = self._inner.handle_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        declared = response.headers.get("content-length", "").strip()
        if encoding not in ("", "identity"):
            response.close()
            raise CompressedAnswerError("compressed answer", request=request)
        if declared.isdigit() and int(declared) > limits.max_bytes:
            response.close()
            raise ResponseTooLargeError(f"answer larger than {limits.max_bytes} bytes", request=request)
        response.stream = _LimitedBody(response.stream, limits.max_bytes, deadline, request)
        return response

    def close(self) -> None:
        self._inner.close()


__all__ = [
    "EXTENSION",
    "CompressedAnswerError",
    "DeadlineExceededError",
    "HttpLimits",
    "LimitedTransport",
    "ResponseTooLargeError",
    "cap_body",
    "deadline_aware_transport",
    "deadline_scope",
    "remaining",
]
