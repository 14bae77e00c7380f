"""The Tatum API as the daemon uses it (httpx, thread-safe, one connection pool shared by all workers).

Endpoints (tatum-kms 8.0.1 and its SDK): ``POST /v3/kms/pending/{chain}`` ``{signatureIds}`` -> pending transactions;
``POST /v3/{route}/broadcast`` ``{txData, signatureId}`` (the pending transaction's id: the API completes it);
``POST /v3/offchain/withdrawal/broadcast`` ``{currency, signatureId, withdrawalId, txData}``;
``POST /v3/tatum/kms/batch`` ``{errors: [{signatureId, error}]}``; ``GET /v3/kms/{id}``; ``DELETE /v3/kms/{id}``.
Upstream's daemon never calls the last two (a broadcast with ``signatureId`` is what completes a pending
transaction); they are here for operators and tests.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from kms import __version__
from kms.api import PendingTransaction
from kms.bounded_json import loads_bounded
from kms.errors import MalformedResponseError, TatumHttpError, TatumUnavailableError, UntrustedJsonError
from kms.http_limits import CompressedAnswerError, HttpLimits, LimitedTransport, ResponseTooLargeError
from kms.tatum.gateway import TatumGateway
from kms.tatum.pending import Rejected, parse_pending, parse_pending_list
from kms.tatum.proxy import transport_for
from kms.tatum.retry import RetryingTransport, RetryPolicy
from kms.tatum.version import CLIENT_VERSION, VersionWatch
from kms.tatum.version import HEADER as LATEST_VERSION_HEADER

log = logging.getLogger("kms.tatum")

DEFAULT_API_URL = "https://api.tatum.io"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=60.0)
# Upstream's KMS_CONSTANTS.SIGNATURE_IDS: the API takes at most this many signatureIds per chain and request.
MAX_SIGNATURE_IDS = 25_000
# Every request, retries and body included, ends within this many seconds (httpx's timeouts are per socket read).
DEFAULT_DEADLINE = 60.0
# Answers other than the pending list (broadcast results, look-ups, GET /v3/kms/{id}) are small.
MAX_ANSWER_BYTES = 1024 * 1024
# The pending list for 25,000 signatureIds: about 2.6 KB per pending transaction (TATUM_KMS_MAX_PENDING_BYTES).
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024

# httpx logs every request URL at INFO; some Tatum URLs carry the API key in their path (web3 RPC).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


@dataclass(frozen=True)
class PendingBatch:
    transactions: list[PendingTransaction]
    rejected: list[Rejected]


@dataclass(frozen=True)
class BroadcastResult:
    tx_id: str | None
    body: Mapping[str, Any]


class RequestObserver(Protocol):
    """Told about every Tatum API request (the daemon's metrics): ``operation`` is a fixed word (``operation_of``)."""

    def tatum_request(self, operation: str, seconds: float) -> None: ...

    def tatum_retry(self, operation: str) -> None: ...


def operation_of(method: str, path: str) -> str:
    """The fixed word a request is counted under: pending, broadcast, report, lookup, delete or node."""
    if path.startswith("/v3/kms/pending/"):
        return "pending"
    if path.endswith("/broadcast"):
        return "broadcast"
    if path.startswith("/v3/tatum/kms/batch"):
        return "report"
    if path.startswith("/v3/kms/"):
        return "delete" if method == "DELETE" else "lookup"
    return "node"


class TatumClient:
    """Thread-safe; share one per process. ``cancel`` stops retries (shutdown deadline); ``observer`` (the daemon's
    metrics) is told each request's duration and each retry."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 32,
        testnet_type: str | None = None,
        cancel: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
        deadline: float = DEFAULT_DEADLINE,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        observer: RequestObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._observer = observer
        self.deadline = deadline
        self.max_pending_bytes = max_pending_bytes
        self._api_key = api_key or ""
        self._testnet_type = testnet_type
        self.cancel = cancel or threading.Event()
        self.versions = VersionWatch(CLIENT_VERSION)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        inner = transport or transport_for(self.base_url, limits)
        headers = {
            "x-ttm-kms-client-version": CLIENT_VERSION,
            "user-agent": f"kms/{__version__}",
            "accept": "application/json",
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        if testnet_type:
            headers["x-testnet-type"] = testnet_type
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # proxies from the environment are applied by transport_for, never for loopback
            transport=LimitedTransport(
                RetryingTransport(
                    inner, retry or RetryPolicy(), cancel=self.cancel, redact=self.redact, on_retry=self._retried
                ),
                HttpLimits(MAX_ANSWER_BYTES, deadline),
            ),
        )

    @property
    def api_key(self) -> str:
        return self._api_key

    def gateway(self, testnet: bool) -> TatumGateway:
        """The signers' NodeGateway for one network, over this client's connection pool and retrying transport (so
        the gateway itself does not retry again)."""
        return TatumGateway(
            self.http,
            self._api_key,
            testnet=testnet,
            testnet_type=self._testnet_type,
            retry=RetryPolicy.none(),
            deadline=self.deadline,
        )

    def redact(self, text: str) -> str:
        """Hide the API key where it is a URL path segment (web3 RPC URLs) or a whole word of ``text``."""
        if not self._api_key:
            return text
        return re.sub(r"(?<![^/\s=])" + re.escape(self._api_key) + r"(?![^/\s?&])", "***", text)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _retried(self, request: httpx.Request) -> None:
        if self._observer is not None:
            self._observer.tatum_retry(operation_of(request.method, request.url.path))

    def _send(
        self, method: str, path: str, operation: str, body: Any = None, limits: HttpLimits | None = None
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            return self._send_once(method, path, operation, body, limits)
        finally:
            if self._observer is not None:
                self._observer.tatum_request(operation_of(method, path), time.monotonic() - started)

    def _send_once(
        self, method: str, path: str, operation: str, body: Any, limits: HttpLimits | None
    ) -> httpx.Response:
        extensions = limits.extensions() if limits is not None else None
        try:
            response = (
                self.http.request(method, path, json=body, extensions=extensions)
                if body is not None
                else self.http.request(method, path, extensions=extensions)
            )
        except httpx.TransportError as exc:
            raise TatumUnavailableError(operation, type(exc).__name__) from None
        except (ResponseTooLargeError, CompressedAnswerError) as exc:
            raise MalformedResponseError(operation, str(exc)) from None
        except httpx.HTTPError as exc:  # e.g. a body that cannot be decoded: a bad answer, not a crash
            raise MalformedResponseError(operation, type(exc).__name__) from None
        if not response.is_success:
            raise TatumHttpError(operation, response.status_code, self.redact(_text(response)))
        return response

    @staticmethod
    def _json(response: httpx.Response, operation: str, max_bytes: int = MAX_ANSWER_BYTES) -> Any:
        try:
            return loads_bounded(response.content, max_bytes=max_bytes)
        except UntrustedJsonError as exc:
            raise MalformedResponseError(operation, str(exc)) from None

    # -- endpoints --------------------------------------------------------------------------------------------------

    def pending(self, chain: str, signature_ids: Sequence[str]) -> PendingBatch:
        """Pending transactions of ``chain`` for ``signature_ids``. Raises MalformedResponseError when the body is not
        a list; individual bad items come back in ``rejected``."""
        code = chain.upper()
        operation = f"POST /v3/kms/pending/{code}"
        if len(signature_ids) > MAX_SIGNATURE_IDS:
            raise ValueError(f"more than {MAX_SIGNATURE_IDS} signatureIds for one request")
        limits = HttpLimits(self.max_pending_bytes, self.deadline)
        response = self._send(
            "POST", f"/v3/kms/pending/{code}", operation, {"signatureIds": list(signature_ids)}, limits
        )
        self.versions.observe(response.headers.get(LATEST_VERSION_HEADER))
        body = self._json(response, operation, self.max_pending_bytes)
        try:
            transactions, rejected = parse_pending_list(body, code)
        except ValueError as exc:
            raise MalformedResponseError(operation, str(exc)) from None
        return PendingBatch(transactions=transactions, rejected=rejected)

    def _broadcast_result(self, response: httpx.Response, operation: str) -> BroadcastResult:
        body = self._json(response, operation)
        if not isinstance(body, dict):
            raise MalformedResponseError(operation, "expected an object")
        if body.get("failed") is True:
            raise TatumHttpError(operation, response.status_code, "broadcast reported failed: " + json.dumps(body))
        tx_id = body.get("txId")
        return BroadcastResult(tx_id=tx_id if isinstance(tx_id, str) else None, body=body)

    def broadcast(self, route: str, tx_data: str, pending_id: str) -> BroadcastResult:
        operation = f"POST /v3/{route}/broadcast"
        response = self._send(
            "POST", f"/v3/{route}/broadcast", operation, {"txData": tx_data, "signatureId": pending_id}
        )
        return self._broadcast_result(response, operation)

    def offchain_broadcast(self, currency: str, pending_id: str, withdrawal_id: str, tx_data: str) -> BroadcastResult:
        operation = "POST /v3/offchain/withdrawal/broadcast"
        body = {"currency": currency, "signatureId": pending_id, "withdrawalId": withdrawal_id, "txData": tx_data}
        response = self._send("POST", "/v3/offchain/withdrawal/broadcast", operation, body)
        return self._broadcast_result(response, operation)

    def report_errors(self, errors: Sequence[Mapping[str, str]]) -> None:
        """Upstream's one batch call per cycle: ``{"errors": [{"signatureId", "error"}]}``."""
        if not errors:
            return
        payload = [{"signatureId": e["signatureId"], "error": e["error"]} for e in errors]
        self._send("POST", "/v3/tatum/kms/batch", "POST /v3/tatum/kms/batch", {"errors": payload})

    def get_pending_transaction(self, pending_id: str, chain: str | None = None) -> PendingTransaction | dict[str, Any]:
        """``GET /v3/kms/{id}``: parsed when ``chain`` is given, the raw object otherwise."""
        operation = f"GET /v3/kms/{pending_id}"
        body = self._json(self._send("GET", f"/v3/kms/{pending_id}", operation), operation)
        if not isinstance(body, dict):
            raise MalformedResponseError(operation, "expected an object")
        if chain is None:
            return body
        try:
            return parse_pending(body, chain)
        except ValueError as exc:
            raise MalformedResponseError(operation, str(exc)) from None

    def delete_pending_transaction(self, pending_id: str, revert: bool = True) -> None:
        """``DELETE /v3/kms/{id}?revert=...`` (the SDK's deleteTransactionKMS)."""
        query = "true" if revert else "false"
        self._send("DELETE", f"/v3/kms/{pending_id}?revert={query}", f"DELETE /v3/kms/{pending_id}")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TatumClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(response: httpx.Response) -> str:
    try:
        return response.content.decode("utf-8", errors="replace")
    except httpx.ResponseNotRead:
        return ""
