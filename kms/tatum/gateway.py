"""The NodeGateway (``kms.api``) over httpx: every look-up a signer makes, to the Tatum API, to the node gateways
behind it, and to the few third-party nodes upstream calls directly.

- Tatum paths are relative to the client's base URL; ``{apiKey}`` in a path is filled with the URL-quoted API key
  (Tatum's node gateways take it there). The key is sent as ``x-api-key`` too, with the client-version header and,
  on testnet, ``x-testnet-type`` when one is configured. Errors name the look-up, never the URL or the key.
- Third-party URLs (``external_get`` / ``external_post``, e.g. the Polygon gas station) get none of the client's
  default headers except neutral ones, so a client carrying the key as a default header never hands it over.
- Every answer is read up to ``max_answer_bytes``; every call follows the one retry policy (``kms.retry``): no answer,
  timeouts, 5xx and 429 (with Retry-After) are retried, any other 4xx, a JSON-RPC error or an unreadable answer fail
  at once. Failures are ``TatumApiError``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import RetryError

from kms.bounded_json import loads_bounded
from kms.errors import TatumApiError, UntrustedJsonError
from kms.http_limits import CompressedAnswerError, HttpLimits, ResponseTooLargeError
from kms.retry import RetryPolicy, retry_after_seconds
from kms.tatum.version import CLIENT_VERSION

MAX_ANSWER_BYTES = 4 * 1024 * 1024
DEFAULT_DEADLINE = 60.0
"""Seconds for one look-up, retries included, where the client bounds requests (kms.http_limits)."""
_NEUTRAL_HEADERS = frozenset({"accept", "accept-encoding", "connection", "user-agent"})
_API_KEY_PLACEHOLDER = "{apiKey}"


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _asked_wait(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, _Transient) else None


class TatumGateway:
    """``kms.api.NodeGateway`` over an httpx client whose ``base_url`` is the Tatum API; fixed to one network."""

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        *,
        testnet: bool,
        testnet_type: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self._http = http
        self._api_key = api_key
        self._testnet = bool(testnet)
        self._testnet_type = testnet_type
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._max_answer_bytes = max_answer_bytes
        # A client with kms.http_limits' transport (the daemon's) applies these instead of its own default cap, which
        # is sized for the Tatum API's small answers; node answers may be larger.
        self._limits = HttpLimits(max_answer_bytes, deadline)
        self._rpc_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"TatumGateway(base_url={str(self._http.base_url)!r}, testnet={self._testnet}, api_key=<hidden>)"

    __str__ = __repr__

    @property
    def testnet(self) -> bool:
        return self._testnet

    # -- the NodeGateway protocol ---------------------------------------------------------------------------------

    def tatum_get(self, path: str, *, what: str) -> Any:
        return self._call(what, lambda: self._tatum_request("GET", path, None))

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        return self._call(what, lambda: self._tatum_request("POST", path, body))

    def node_rpc(self, path: str, method: str, params: Sequence[Any] | Mapping[str, Any], *, what: str) -> Any:
        call = {"jsonrpc": "2.0", "id": next(self._rpc_ids), "method": method, "params": params}
        answer = self.tatum_post(path, call, what=what)
        if not isinstance(answer, dict):
            raise TatumApiError(f"{what} answered with something that is not a JSON-RPC response")
        if answer.get("error") is not None:
            raise TatumApiError(f"{what} failed: {_rpc_error_text(answer['error'])}")
        if "result" not in answer:
            raise TatumApiError(f"{what} answered without a result")
        return answer["result"]

    def external_get(self, url: str, *, what: str) -> Any:
        return self._call(what, lambda: self._external_request("GET", url, None))

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        return self._call(what, lambda: self._external_request("POST", url, body))

    # -- requests -------------------------------------------------------------------------------------------------

    def _tatum_request(self, method: str, path: str, body: Any) -> httpx.Request:
        if not path.startswith("/") or path.startswith("//"):
            raise TatumApiError("a Tatum API look-up path must be relative to the API's base URL")
        filled = path.replace(_API_KEY_PLACEHOLDER, quote(self._api_key, safe=""))
        headers = {"x-api-key": self._api_key, "x-ttm-kms-client-version": CLIENT_VERSION}
        if self._testnet and self._testnet_type:
            headers["x-testnet-type"] = self._testnet_type
        return self._http.build_request(
            method, filled, headers=headers, json=body, extensions=self._limits.extensions()
        )

    def _external_request(self, method: str, url: str, body: Any) -> httpx.Request:
        """A request that carries none of the client's default headers (they may hold the Tatum API key)."""
        if not url.startswith(("https://", "http://")) or _API_KEY_PLACEHOLDER in url:
            raise TatumApiError("a third-party look-up needs an absolute http(s) URL")
        request = self._http.build_request(method, url, json=body, extensions=self._limits.extensions())
        for name in list(self._http.headers.keys()):
            if name.lower() not in _NEUTRAL_HEADERS:
                del request.headers[name]
        return request

    # -- transport ------------------------------------------------------------------------------------------------

    def _call(self, what: str, build: Callable[[], httpx.Request]) -> Any:
        retrying = self._retry.retrying(_Transient, sleep=self._sleep, retry_after=_asked_wait)
        try:
            return retrying(self._attempt, what, build)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            attempts = exhausted.last_attempt.attempt_number
            raise TatumApiError(f"{what}: {last} (gave up after {attempts} attempts)") from None

    def _attempt(self, what: str, build: Callable[[], httpx.Request]) -> Any:
        request = build()
        try:
            response = self._http.send(request, stream=True)
            try:
                content = self._read_capped(response, what)
            finally:
                response.close()
        except (ResponseTooLargeError, CompressedAnswerError) as exc:
            raise TatumApiError(f"{what}: {exc}") from None
        except httpx.TimeoutException:
            raise _Transient("the Tatum API timed out") from None
        except httpx.TransportError as exc:
            raise _Transient(f"could not reach the Tatum API ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429:
            raise _Transient("throttled (HTTP 429)", retry_after_seconds(response))
        if status >= 500:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise TatumApiError(f"{what}: the Tatum API refused the request (HTTP {status})")
        try:
            return loads_bounded(content, max_bytes=self._max_answer_bytes, what=what)
        except UntrustedJsonError as exc:
            raise TatumApiError(f"the Tatum API's answer: {exc}") from None

    def _read_capped(self, response: httpx.Response, what: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_answer_bytes:
                raise TatumApiError(f"{what}: the answer is larger than {self._max_answer_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _rpc_error_text(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    text = str(message)[:200]
    return "".join(ch if ch.isprintable() else "?" for ch in text)


__all__ = ["MAX_ANSWER_BYTES", "TatumGateway"]
