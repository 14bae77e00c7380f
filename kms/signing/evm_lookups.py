"""The EVM look-ups (nonce, gas price, gas limit, chain id) served the way upstream fetches them through the Tatum API.

Routes per chain follow the SDK upstream runs: a Tatum REST call where the SDK makes one (ETH, BSC, XDC nonces; the ETH
fee estimate), otherwise JSON-RPC through Tatum's node gateway (the web3 / caver / ethers client the SDK builds), and
the fixed prices the SDK hard-codes (BSC 10 gwei, KCS 1 gwei). MATIC asks the Polygon gas station, as upstream does.

Retries: connection errors, timeouts, 5xx and 429 (honouring Retry-After, capped) are retried a bounded number of
times with exponential backoff; any other 4xx, a JSON-RPC error or an unreadable answer fails at once. Errors never
carry the URL (the web3 gateway path holds the API key) and are raised as TatumApiError.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from kms.bounded_json import loads_bounded
from kms.errors import TatumApiError, UntrustedJsonError
from kms.tatum.retry import retry_after_seconds

GWEI = 10**9
POLYGON_GAS_STATION = "https://gasstation.polygon.technology/v2"
KMS_CLIENT_VERSION = "8.0.1"
# A look-up answer is a number or a small object; the daemon's client also caps it while streaming (kms.http_limits).
MAX_ANSWER_BYTES = 1024 * 1024
_NEUTRAL_HEADERS = frozenset({"accept", "accept-encoding", "connection", "user-agent"})


@dataclass(frozen=True)
class TatumFee:
    """``GET /v3/blockchain/fee/{currency}``, field ``medium`` (wei)."""

    currency: str


@dataclass(frozen=True)
class FixedPrice:
    wei: int


@dataclass(frozen=True)
class NodePrice:
    """``{namespace}_gasPrice`` on the chain's node gateway."""


@dataclass(frozen=True)
class PolygonGasStation:
    """``fast.maxFee`` (gwei) from the Polygon gas station, at least ``minimum_gwei``, rounded up to whole gwei."""

    minimum_gwei: int = 30


GasPriceSource = TatumFee | FixedPrice | NodePrice | PolygonGasStation


@dataclass(frozen=True)
class EvmRoute:
    rest: str
    """Path segment of the chain's Tatum REST routes (``/v3/{rest}/transaction/count/{address}``)."""
    rpc: str
    """Path of the JSON-RPC gateway; ``{key}`` stands for the API key."""
    gas_price: GasPriceSource
    nonce_via_rest: bool = False
    namespace: str = "eth"
    chain_id_method: str = "eth_chainId"


EVM_ROUTES: Mapping[str, EvmRoute] = MappingProxyType(
    {
        "ETH": EvmRoute("ethereum", "/v3/ethereum/web3/{key}", TatumFee("ETH"), nonce_via_rest=True),
        "BSC": EvmRoute("bsc", "/v3/bsc/web3/{key}", FixedPrice(10 * GWEI), nonce_via_rest=True),
        "MATIC": EvmRoute("polygon", "/v3/polygon/web3/{key}", PolygonGasStation()),
        "KLAY": EvmRoute(
            "klaytn", "/v3/blockchain/node/KLAY/{key}", NodePrice(), namespace="klay", chain_id_method="klay_chainID"
        ),
        "XDC": EvmRoute("xdc", "/v3/xdc/web3/{key}", NodePrice(), nonce_via_rest=True),
        "ONE": EvmRoute("one", "/v3/one/web3/{key}", NodePrice()),
        "CELO": EvmRoute("celo", "/v3/blockchain/node/CELO/{key}", NodePrice()),
        "KCS": EvmRoute("kcs", "/v3/blockchain/node/KCS/{key}", FixedPrice(1 * GWEI)),
    }
)


@dataclass(frozen=True)
class LookupRetry:
    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class TatumEvmLookups:
    """ChainLookups for the EVM chains, over an httpx client whose base_url is the Tatum API.

    The API key is sent per request (``x-api-key``, and in the node-gateway path as the SDK does). The request to the
    Polygon gas station drops every default header of the client, so a client that carries the key as a default
    header (as the daemon's does) never hands it to that third party."""

    def __init__(
        self,
        client: httpx.Client,
        api_key: str,
        *,
        retry: LookupRetry | None = None,
        testnet_type: str | None = None,
        polygon_gas_station_url: str | None = POLYGON_GAS_STATION,
        routes: Mapping[str, EvmRoute] = EVM_ROUTES,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self._client = client
        self._api_key = api_key
        self._retry = retry or LookupRetry()
        self._testnet_type = testnet_type
        self._gas_station = polygon_gas_station_url
        self._routes = routes
        self._rpc_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"TatumEvmLookups(base_url={str(self._client.base_url)!r}, api_key=<hidden>)"

    # -- the ChainLookups protocol --------------------------------------------------------------------------------

    def transaction_count(self, chain: str, address: str, testnet: bool) -> int:
        route = self._route(chain)
        if route.nonce_via_rest:
            answer = self._get_json(f"/v3/{route.rest}/transaction/count/{quote(address, safe='')}", testnet, "nonce")
            return _as_int(answer, f"{chain} transaction count")
        return self._rpc_int(route, f"{route.namespace}_getTransactionCount", [address, "pending"], testnet, chain)

    def gas_price(self, chain: str, testnet: bool) -> int:
        route = self._route(chain)
        source = route.gas_price
        if isinstance(source, FixedPrice):
            return source.wei
        if isinstance(source, TatumFee):
            answer = self._get_json(f"/v3/blockchain/fee/{source.currency}", testnet, "fee estimate")
            if not isinstance(answer, dict) or "medium" not in answer:
                raise TatumApiError(f"the {chain} fee estimate has no 'medium' field")
            return _as_int(answer["medium"], f"{chain} fee estimate")
        if isinstance(source, PolygonGasStation) and self._gas_station is not None:
            return self._polygon_gas_station(source)
        return self._rpc_int(route, f"{route.namespace}_gasPrice", [], testnet, chain)

    def fee_currency_gas_price(self, chain: str, fee_currency: str, testnet: bool) -> int:
        """CELO: the gas price in a fee currency (celo-ethers-wrapper's ``eth_gasPrice [feeCurrency]``)."""
        route = self._route(chain)
        return self._rpc_int(route, f"{route.namespace}_gasPrice", [fee_currency], testnet, chain)

    def estimate_gas(self, chain: str, tx: Mapping[str, Any], testnet: bool) -> int:
        route = self._route(chain)
        return self._rpc_int(route, f"{route.namespace}_estimateGas", [dict(tx)], testnet, chain)

    def chain_id(self, chain: str, testnet: bool) -> int:
        route = self._route(chain)
        return self._rpc_int(route, route.chain_id_method, [], testnet, chain)

    # -- transport ------------------------------------------------------------------------------------------------

    def _route(self, chain: str) -> EvmRoute:
        route = self._routes.get(chain.upper())
        if route is None:
            raise TatumApiError(f"no Tatum look-up routes for chain {chain!r}")
        return route

    def _headers(self, testnet: bool) -> dict[str, str]:
        headers = {"x-api-key": self._api_key, "x-ttm-kms-client-version": KMS_CLIENT_VERSION}
        if testnet and self._testnet_type:
            headers["x-testnet-type"] = self._testnet_type
        return headers

    def _get_json(self, path: str, testnet: bool, what: str) -> Any:
        return self._call(what, lambda: self._client.get(path, headers=self._headers(testnet)))

    def _rpc_int(self, route: EvmRoute, method: str, params: list[Any], testnet: bool, chain: str) -> int:
        body = {"jsonrpc": "2.0", "id": next(self._rpc_ids), "method": method, "params": params}
        path = route.rpc.format(key=quote(self._api_key, safe=""))
        answer = self._call(method, lambda: self._client.post(path, json=body, headers=self._headers(testnet)))
        if not isinstance(answer, dict):
            raise TatumApiError(f"{method} answered with something that is not a JSON-RPC response")
        if answer.get("error") is not None:
            raise TatumApiError(f"{method} failed on the {chain} node: {_rpc_error_text(answer['error'])}")
        if "result" not in answer:
            raise TatumApiError(f"{method} answered without a result")
        return _as_int(answer["result"], f"{chain} {method} result")

    def _polygon_gas_station(self, source: PolygonGasStation) -> int:
        assert self._gas_station is not None
        url = self._gas_station
        answer = self._call("Polygon gas station", lambda: self._client.send(self._third_party_request(url)))
        fast = answer.get("fast") if isinstance(answer, dict) else None
        raw = fast.get("maxFee") if isinstance(fast, dict) else None
        gwei = Decimal(source.minimum_gwei)
        if raw is not None:
            try:
                gwei = max(gwei, Decimal(str(raw)))
            except InvalidOperation:
                raise TatumApiError("the Polygon gas station answered with an unreadable maxFee") from None
            if not gwei.is_finite() or gwei > 10**12:
                raise TatumApiError("the Polygon gas station answered with an unusable maxFee")
        return math.ceil(gwei) * GWEI

    def _third_party_request(self, url: str) -> httpx.Request:
        """A GET that carries none of the client's default headers (they may hold the Tatum API key)."""
        request = self._client.build_request("GET", url)
        for name in list(self._client.headers.keys()):
            if name.lower() not in _NEUTRAL_HEADERS:
                del request.headers[name]
        return request

    def _call(self, what: str, send: Callable[[], httpx.Response]) -> Any:
        policy = self._retry
        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=policy.sleep,
            reraise=False,
        )
        try:
            return retrying(self._attempt, what, send)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            raise TatumApiError(f"{what}: {last} (gave up after {policy.attempts} attempts)") from None

    @staticmethod
    def _attempt(what: str, send: Callable[[], httpx.Response]) -> Any:
        try:
            response = send()
        except httpx.TimeoutException:
            raise _Transient("the Tatum API timed out") from None
        except httpx.TransportError as exc:
            raise _Transient(f"could not reach the Tatum API ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # too large, compressed, undecodable (kms.http_limits): not worth retrying
            raise TatumApiError(f"{what}: unusable answer from the Tatum API ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429:
            raise _Transient("throttled (HTTP 429)", retry_after_seconds(response))
        if status >= 500:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise TatumApiError(f"{what}: the Tatum API refused the request (HTTP {status})")
        try:
            return loads_bounded(response.content, max_bytes=MAX_ANSWER_BYTES)
        except UntrustedJsonError as exc:
            raise TatumApiError(f"{what}: the Tatum API's {exc}") from None

    def _wait(self, state: RetryCallState) -> float:
        policy = self._retry
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            return min(error.retry_after, policy.max_retry_after)
        return min(policy.initial_wait * 2 ** (state.attempt_number - 1), policy.max_wait)


def _as_int(raw: object, what: str) -> int:
    if isinstance(raw, bool):
        raise TatumApiError(f"the {what} is not a number")
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    elif isinstance(raw, str) and len(raw) <= 80:
        text = raw.strip()
        try:
            number = int(text[2:], 16) if text[:2].lower() == "0x" else int(text, 10)
        except ValueError:
            raise TatumApiError(f"the {what} is not a number") from None
    else:
        raise TatumApiError(f"the {what} is not a number")
    if number < 0:
        raise TatumApiError(f"the {what} is negative")
    return number


def _rpc_error_text(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    text = str(message)[:200]
    return "".join(ch if ch.isprintable() else "?" for ch in text)


__all__ = [
    "EVM_ROUTES",
    "GWEI",
    "POLYGON_GAS_STATION",
    "EvmRoute",
    "FixedPrice",
    "LookupRetry",
    "NodePrice",
    "PolygonGasStation",
    "TatumEvmLookups",
    "TatumFee",
]
