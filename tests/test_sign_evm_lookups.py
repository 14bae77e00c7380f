"""The EVM look-ups through the real TatumGateway against a local fake of the Tatum API (real sockets on 127.0.0.1):
routes, retries, refusals, and what the gateway sends where."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from eth_account import Account

from kms.chains.evm import EVM_FACTS, GWEI, PolygonGasStation, evm_signer
from kms.errors import TatumApiError
from kms.retry import RetryPolicy
from kms.signing.evm_lookups import EvmNodeLookups
from kms.tatum.gateway import TatumGateway
from tests.servers.base import FakeServer, Request, Response
from tests.test_sign_evm import decode_celo, decode_legacy, key, pending_for

API_KEY = "SECRET-API-KEY-123"
PK = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"
ADDRESS = Account.from_key(PK).address
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
RPC_PATH = re.compile(r"/v3/(?:(?P<segment>[a-z]+)/web3|blockchain/node/(?P<chain>[A-Z]+))/(?P<key>[^/]+)")
COUNT_PATH = re.compile(r"/v3/(?P<segment>[a-z]+)/transaction/count/(?P<address>[^/]+)")

RpcHandler = Callable[[str, list[Any]], Any]


def default_rpc(method: str, params: list[Any]) -> Any:
    answers = {
        "chainId": hex(11155111),
        "chainID": hex(1001),
        "gasPrice": hex(15 * GWEI) if not params else hex(2 * GWEI),
        "estimateGas": hex(21_000),
        "getTransactionCount": hex(4),
    }
    return answers[method.split("_", 1)[1]]


class FakeTatum(FakeServer):
    """The Tatum routes the EVM look-ups use. JSON-RPC calls go to ``rpc(method, params)``."""

    def __init__(self, rpc: RpcHandler = default_rpc, fee: Any = None, gas_station: Any = None) -> None:
        super().__init__()
        self.rpc = rpc
        self.fee = fee if fee is not None else {"slow": 1, "medium": "20000000000", "fast": 3}
        self.gas_station = gas_station if gas_station is not None else {"fast": {"maxFee": 31.2}}
        self.nonces: dict[str, int] = {}

    def handle(self, request: Request) -> Response:
        if request.path == "/gasstation":
            return Response.json(200, self.gas_station)
        if request.headers.get("x-api-key") != API_KEY:
            return Response.json(401, {"message": "no api key"})
        if request.method == "GET" and request.path == "/v3/blockchain/fee/ETH":
            return Response.json(200, self.fee)
        if request.method == "GET" and (match := COUNT_PATH.fullmatch(request.path)):
            return Response.json(200, self.nonces.get(match["address"], 0))
        if request.method == "POST" and (match := RPC_PATH.fullmatch(request.path)):
            if match["key"] != API_KEY:
                return Response.json(403, {"message": "bad key"})
            call = request.json()
            try:
                result = self.rpc(call["method"], call["params"])
            except RpcFailure as failure:
                return Response.json(200, {"jsonrpc": "2.0", "id": call["id"], "error": failure.error})
            return Response.json(200, {"jsonrpc": "2.0", "id": call["id"], "result": result})
        return Response.json(404, {"message": f"no route {request.method} {request.path}"})

    def rpc_methods(self) -> list[str]:
        return [r.json()["method"] for r in self.requests if r.method == "POST"]


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


@pytest.fixture
def tatum() -> Iterator[FakeTatum]:
    with FakeTatum() as server:
        yield server


@pytest.fixture
def client(tatum: FakeTatum) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tatum.url, timeout=5.0) as http:
        yield http


_UNSET = object()


class Lookups:
    """The EVM look-ups of any chain and network, each an EvmNodeLookups over a real TatumGateway with the chain's
    own routes (the Polygon gas station moved to ``gas_station``, the local fake's)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = lambda _: None,
        testnet_type: str | None = None,
        gas_station: Any = _UNSET,
    ) -> None:
        self.gateways = {
            net: TatumGateway(http, API_KEY, testnet=net, testnet_type=testnet_type, retry=retry, sleep=sleep)
            for net in (False, True)
        }
        self._gas_station = gas_station

    def __repr__(self) -> str:
        return f"Lookups({self.gateways!r})"

    def _for(self, chain: str, testnet: bool) -> EvmNodeLookups:
        facts = EVM_FACTS.get(chain)
        route = facts.route if facts is not None else None
        if route is not None and isinstance(route.gas_price, PolygonGasStation) and self._gas_station is not _UNSET:
            route = replace(route, gas_price=PolygonGasStation(url=self._gas_station))
        return EvmNodeLookups(self.gateways[testnet], chain, route)

    def transaction_count(self, chain: str, address: str, testnet: bool) -> int:
        return self._for(chain, testnet).transaction_count(address)

    def gas_price(self, chain: str, testnet: bool) -> int:
        return self._for(chain, testnet).gas_price()

    def fee_currency_gas_price(self, chain: str, currency: str, testnet: bool) -> int:
        return self._for(chain, testnet).fee_currency_gas_price(currency)

    def estimate_gas(self, chain: str, tx: dict[str, Any], testnet: bool) -> int:
        return self._for(chain, testnet).estimate_gas(tx)

    def chain_id(self, chain: str, testnet: bool) -> int:
        return self._for(chain, testnet).chain_id()


def lookups_for(client: httpx.Client, tatum: FakeTatum, **kwargs: Any) -> tuple[Lookups, list[float]]:
    waits: list[float] = []
    kwargs.setdefault("gas_station", tatum.url + "/gasstation")
    return Lookups(client, sleep=waits.append, **kwargs), waits


# -- routes -------------------------------------------------------------------------------------------------------


def test_eth_routes_are_the_ones_upstream_calls(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    tatum.nonces[ADDRESS] = 12
    assert lookups.transaction_count("ETH", ADDRESS, True) == 12
    assert lookups.gas_price("ETH", True) == 20 * GWEI
    assert lookups.chain_id("ETH", True) == 11155111
    assert lookups.estimate_gas("ETH", {"from": ADDRESS, "to": RECIPIENT}, True) == 21_000
    paths = [(r.method, r.path.replace(API_KEY, "{key}")) for r in tatum.requests]
    assert paths == [
        ("GET", f"/v3/ethereum/transaction/count/{ADDRESS}"),
        ("GET", "/v3/blockchain/fee/ETH"),
        ("POST", "/v3/ethereum/web3/{key}"),
        ("POST", "/v3/ethereum/web3/{key}"),
    ]
    assert tatum.rpc_methods() == ["eth_chainId", "eth_estimateGas"]
    assert tatum.requests[3].json()["params"] == [{"from": ADDRESS, "to": RECIPIENT}]
    assert all(r.headers["x-ttm-kms-client-version"] == "8.0.1" for r in tatum.requests)
    assert all("x-testnet-type" not in r.headers for r in tatum.requests)


@pytest.mark.parametrize(
    ("chain", "rpc_path", "nonce_method"),
    [
        ("MATIC", "/v3/polygon/web3/{key}", "eth_getTransactionCount"),
        ("ONE", "/v3/one/web3/{key}", "eth_getTransactionCount"),
        ("CELO", "/v3/blockchain/node/CELO/{key}", "eth_getTransactionCount"),
        ("KCS", "/v3/blockchain/node/KCS/{key}", "eth_getTransactionCount"),
        ("KLAY", "/v3/blockchain/node/KLAY/{key}", "klay_getTransactionCount"),
    ],
)
def test_node_nonce_routes(
    client: httpx.Client, tatum: FakeTatum, chain: str, rpc_path: str, nonce_method: str
) -> None:
    lookups, _ = lookups_for(client, tatum)
    assert lookups.transaction_count(chain, ADDRESS, False) == 4
    request = tatum.requests[-1]
    assert request.path.replace(API_KEY, "{key}") == rpc_path
    assert request.json()["method"] == nonce_method
    assert request.json()["params"] == [ADDRESS, "pending"]  # counts transactions not yet mined


@pytest.mark.parametrize(("chain", "segment"), [("BSC", "bsc"), ("XDC", "xdc")])
def test_rest_nonce_routes(client: httpx.Client, tatum: FakeTatum, chain: str, segment: str) -> None:
    lookups, _ = lookups_for(client, tatum)
    tatum.nonces[ADDRESS] = 3
    assert lookups.transaction_count(chain, ADDRESS, False) == 3
    assert tatum.requests[-1].path == f"/v3/{segment}/transaction/count/{ADDRESS}"


def test_gas_prices_per_chain(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    assert lookups.gas_price("BSC", False) == 10 * GWEI
    assert lookups.gas_price("KCS", False) == 1 * GWEI
    assert tatum.requests == []  # upstream hard-codes these two
    assert lookups.gas_price("KLAY", False) == 15 * GWEI
    assert lookups.gas_price("ONE", False) == 15 * GWEI
    assert lookups.gas_price("XDC", False) == 15 * GWEI
    assert lookups.fee_currency_gas_price("CELO", RECIPIENT, False) == 2 * GWEI
    assert tatum.rpc_methods() == ["klay_gasPrice", "eth_gasPrice", "eth_gasPrice", "eth_gasPrice"]
    assert tatum.requests[-1].json()["params"] == [RECIPIENT]


def test_klay_chain_id_uses_caver_method(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    assert lookups.chain_id("KLAY", True) == 1001
    assert tatum.rpc_methods() == ["klay_chainID"]


@pytest.mark.parametrize(("max_fee", "expected_gwei"), [(31.2, 32), (12, 30), (None, 30)])
def test_polygon_gas_station(max_fee: float | None, expected_gwei: int) -> None:
    answer = {"fast": {"maxFee": max_fee}} if max_fee is not None else {"standard": {}}
    headers = {"x-api-key": API_KEY, "x-testnet-type": "ethereum-sepolia"}  # as the daemon's client carries them
    with FakeTatum(gas_station=answer) as station, httpx.Client(base_url=station.url, headers=headers) as keyed:
        lookups, _ = lookups_for(keyed, station)
        assert lookups.gas_price("MATIC", True) == expected_gwei * GWEI
        assert [r.path for r in station.requests] == ["/gasstation"]
        sent = {name.lower(): value for name, value in station.requests[0].headers.items()}
        assert "x-api-key" not in sent and "x-testnet-type" not in sent  # the Tatum key never goes to a third party
        assert API_KEY not in json.dumps(sent)


def test_polygon_without_gas_station_asks_the_node(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum, gas_station=None)
    assert lookups.gas_price("MATIC", True) == 15 * GWEI
    assert tatum.rpc_methods() == ["eth_gasPrice"]


def test_testnet_type_header_when_configured_on_testnet(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum, testnet_type="ethereum-sepolia")
    lookups.gas_price("ETH", True)
    lookups.gas_price("ETH", False)
    assert tatum.requests[0].headers["x-testnet-type"] == "ethereum-sepolia"
    assert "x-testnet-type" not in tatum.requests[1].headers


def test_unknown_chain(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    with pytest.raises(TatumApiError, match="no Tatum look-up routes"):
        lookups.gas_price("DOGE", False)


# -- retries and refusals -----------------------------------------------------------------------------------------


def test_5xx_is_retried_then_succeeds(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, waits = lookups_for(client, tatum)
    tatum.fail_next(2, Response.json(503, {"message": "busy"}))
    assert lookups.gas_price("ETH", False) == 20 * GWEI
    assert tatum.count() == 3
    assert waits == [0.5, 1.0]


def test_429_honours_retry_after_capped(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, waits = lookups_for(client, tatum)
    tatum.fail_next(1, Response.json(429, {}, {"Retry-After": "2"}))
    tatum.fail_next(1, Response.json(429, {}, {"Retry-After": "3600"}))
    assert lookups.chain_id("ETH", False) == 11155111
    assert waits == [2.0, 30.0]


def test_retries_are_bounded(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, waits = lookups_for(client, tatum)
    tatum.fail_next(100, Response.json(500, {}))
    with pytest.raises(TatumApiError, match="gave up after 4 attempts") as info:
        lookups.transaction_count("ETH", ADDRESS, False)
    assert tatum.count() == 4
    assert len(waits) == 3
    assert API_KEY not in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_fail_at_once(client: httpx.Client, tatum: FakeTatum, status: int) -> None:
    lookups, waits = lookups_for(client, tatum)
    tatum.fail_next(1, Response.json(status, {"message": "no"}))
    with pytest.raises(TatumApiError, match=f"HTTP {status}"):
        lookups.estimate_gas("ETH", {"to": RECIPIENT}, False)
    assert tatum.count() == 1
    assert waits == []


def test_dropped_connection_is_retried(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    tatum.fail_next(1, None)
    assert lookups.gas_price("ETH", False) == 20 * GWEI
    assert tatum.count() == 2


def test_connection_refused_is_retried_and_reported_without_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as http:
        lookups = Lookups(http, retry=RetryPolicy(attempts=3), sleep=waits.append)
        with pytest.raises(TatumApiError, match="could not reach the Tatum API") as info:
            lookups.chain_id("ETH", False)
    assert len(waits) == 2
    assert API_KEY not in str(info.value) and "127.0.0.1" not in str(info.value)


def test_timeout_is_retried() -> None:
    class Slow(FakeTatum):
        def handle(self, request: Request) -> Response:
            if self.count() == 1:
                time.sleep(1.0)
            return super().handle(request)

    with Slow() as slow, httpx.Client(base_url=slow.url, timeout=0.2) as http:
        lookups = Lookups(http, retry=RetryPolicy(attempts=2))
        assert lookups.gas_price("ETH", False) == 20 * GWEI
        assert slow.count() == 2


def test_json_rpc_error_is_not_retried(client: httpx.Client) -> None:
    def reverting(method: str, params: list[Any]) -> Any:
        raise RpcFailure({"code": -32000, "message": "execution reverted: ERC20: transfer amount exceeds balance"})

    with FakeTatum(rpc=reverting) as server, httpx.Client(base_url=server.url) as http:
        lookups = Lookups(http)
        with pytest.raises(TatumApiError, match="eth_estimateGas on the ETH node failed: execution reverted"):
            lookups.estimate_gas("ETH", {"to": RECIPIENT}, False)
        assert server.count() == 1


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (Response(200, b"<html>", {"Content-Type": "text/html"}), "not valid JSON"),
        (Response.json(200, {"slow": 1}), "no 'medium' field"),
        (Response.json(200, {"medium": "lots"}), "not a number"),
        (Response.json(200, {"medium": -5}), "negative"),
        (Response.json(200, {"medium": True}), "not a number"),
    ],
)
def test_unreadable_answers(client: httpx.Client, tatum: FakeTatum, answer: Response, match: str) -> None:
    lookups, _ = lookups_for(client, tatum)
    tatum.fail_next(1, answer)
    with pytest.raises(TatumApiError, match=match):
        lookups.gas_price("ETH", False)


def test_repr_hides_the_key(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    assert API_KEY not in repr(lookups)


# -- the signer with the real look-ups ------------------------------------------------------------------------------


def test_eth_signer_fills_everything_through_tatum(client: httpx.Client, tatum: FakeTatum) -> None:
    lookups, _ = lookups_for(client, tatum)
    tatum.nonces[ADDRESS] = 9
    pending = pending_for("ETH", {"from": 0, "to": RECIPIENT, "value": "1000"})
    decoded = decode_legacy(evm_signer("ETH").sign(pending, key(PK), True, lookups.gateways[True]))
    assert (decoded["nonce"], decoded["gasPrice"], decoded["gas"], decoded["chainId"]) == (
        9,
        20 * GWEI,
        21_000,
        11155111,
    )
    assert decoded["from"] == ADDRESS
    assert [(r.method, r.path.split("/")[2]) for r in tatum.requests] == [
        ("GET", "ethereum"),
        ("GET", "blockchain"),
        ("POST", "ethereum"),
        ("POST", "ethereum"),
    ]
    assert tatum.rpc_methods() == ["eth_chainId", "eth_estimateGas"]


def test_celo_signer_through_tatum(client: httpx.Client) -> None:
    def celo_rpc(method: str, params: list[Any]) -> Any:
        return {"eth_chainId": hex(44787), "eth_estimateGas": hex(30_000), "eth_getTransactionCount": "0x2"}.get(
            method, hex(5 * GWEI)
        )

    with FakeTatum(rpc=celo_rpc) as server, httpx.Client(base_url=server.url) as http:
        gateway = Lookups(http).gateways[True]
        pending = pending_for("CELO", {"to": RECIPIENT, "value": "0x1"})
        decoded = decode_celo(evm_signer("CELO").sign(pending, key(PK), True, gateway))
    assert (decoded["nonce"], decoded["gasPrice"], decoded["gas"], decoded["chainId"]) == (2, 5 * GWEI, 130_000, 44787)
    estimate = next(json.loads(r.body) for r in server.requests if b"eth_estimateGas" in r.body)
    assert estimate["params"][0]["from"] == ADDRESS


# -- the gateway itself ---------------------------------------------------------------------------------------------


def test_gateway_fills_the_api_key_and_keeps_it_out_of_errors(client: httpx.Client, tatum: FakeTatum) -> None:
    gateway = TatumGateway(client, API_KEY, testnet=False, sleep=lambda _: None)
    assert gateway.testnet is False
    assert gateway.node_rpc("/v3/bsc/web3/{apiKey}", "eth_chainId", [], what="BSC chain id") == hex(11155111)
    assert tatum.requests[-1].path == f"/v3/bsc/web3/{API_KEY}"
    tatum.fail_next(1, Response.json(404, {"message": f"no such path /v3/bsc/web3/{API_KEY}"}))
    with pytest.raises(TatumApiError) as info:
        gateway.node_rpc("/v3/bsc/web3/{apiKey}", "eth_chainId", [], what="BSC chain id")
    assert API_KEY not in str(info.value) and "BSC chain id" in str(info.value)
    assert API_KEY not in repr(gateway) and API_KEY not in str(gateway)


def test_gateway_posts_json_to_tatum_and_refuses_absolute_paths(client: httpx.Client, tatum: FakeTatum) -> None:
    gateway = TatumGateway(client, API_KEY, testnet=True, sleep=lambda _: None)
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_estimateGas", "params": [{}]}
    assert gateway.tatum_post("/v3/blockchain/node/CELO/{apiKey}", call, what="estimate")["result"] == hex(21_000)
    with pytest.raises(TatumApiError, match="relative"):
        gateway.tatum_get("https://elsewhere.example/v3/blockchain/fee/ETH", what="fee")
    with pytest.raises(TatumApiError, match="absolute"):
        gateway.external_get("/gasstation", what="station")
    assert tatum.count() == 1


def test_gateway_external_post_carries_no_tatum_headers(tatum: FakeTatum) -> None:
    with httpx.Client(base_url=tatum.url, headers={"x-api-key": API_KEY}) as keyed:
        gateway = TatumGateway(keyed, API_KEY, testnet=True, testnet_type="ethereum-sepolia")
        gateway.external_post(tatum.url + "/gasstation", {"q": 1}, what="third party")
    sent = {name.lower() for name in tatum.requests[-1].headers}
    assert not sent & {"x-api-key", "x-testnet-type", "x-ttm-kms-client-version"}


def test_gateway_caps_the_answer_size(client: httpx.Client, tatum: FakeTatum) -> None:
    gateway = TatumGateway(client, API_KEY, testnet=False, max_answer_bytes=1000, sleep=lambda _: None)
    tatum.fail_next(1, Response.json(200, {"medium": "1" * 5000}))
    with pytest.raises(TatumApiError, match="larger than 1000 bytes"):
        gateway.tatum_get("/v3/blockchain/fee/ETH", what="fee estimate")
    assert tatum.count() == 1
