"""The Tatum API client against the sandbox (a real HTTP server on 127.0.0.1): shapes, retries, malformed bodies."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from kms.chains.evm import EVM_FACTS
from kms.sandbox import Sandbox, SandboxAdmin
from kms.signing.evm_lookups import EvmNodeLookups
from kms.tatum import MalformedResponseError, RetryPolicy, TatumClient, TatumHttpError, TatumUnavailableError
from kms.tatum.pending import parse_pending_list
from kms.tatum.retry import retry_after_seconds
from kms.tatum.version import CLIENT_VERSION, VersionWatch, semver_greater

FAST = RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.05, jitter=0.01)
API_KEY = "sandbox-key-123456"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.state.api_key = API_KEY
        yield sb


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[SandboxAdmin]:
    with SandboxAdmin(sandbox.url) as a:
        yield a


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TatumClient]:
    with TatumClient(sandbox.url, API_KEY, retry=FAST) as c:
        yield c


def _pending(pid: str, wallet: str = "w1", chain: str = "ETH") -> dict[str, object]:
    return {"id": pid, "chain": chain, "serializedTransaction": "{}", "hashes": [wallet]}


def test_pending_sends_signature_ids_and_headers(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.enqueue([_pending("p1"), _pending("p2", wallet="other"), _pending("p3", chain="BTC")])
    batch = client.pending("eth", ["w1"])
    assert [p.id for p in batch.transactions] == ["p1"]
    assert batch.transactions[0].chain == "ETH"
    assert batch.rejected == []
    poll = admin.state()["polls"][0]
    assert poll == {"chain": "ETH", "count": 1, "clientVersion": CLIENT_VERSION}


def test_wrong_api_key_is_an_http_error_not_retried(sandbox: Sandbox, admin: SandboxAdmin) -> None:
    with TatumClient(sandbox.url, "wrong-key", retry=FAST) as bad:
        with pytest.raises(TatumHttpError) as caught:
            bad.pending("ETH", ["w1"])
    assert caught.value.status == 401
    assert admin.state()["requests"] == {}  # refused before counting: exactly one request reached the server


@pytest.mark.parametrize(
    "faults",
    [
        [{"kind": "status", "status": 503, "times": 2}],
        [{"kind": "status", "status": 500, "times": 1}, {"kind": "status", "status": 502, "times": 1}],
        [{"kind": "status", "status": 429, "retryAfter": 0, "times": 2}],
        [{"kind": "reset", "times": 2}],
    ],
    ids=["503x2", "500-502", "429x2", "reset-x2"],
)
def test_transient_failures_are_retried_then_succeed(
    admin: SandboxAdmin, client: TatumClient, faults: list[dict[str, object]]
) -> None:
    admin.enqueue(_pending("p1"))
    admin.configure(faults=faults)
    batch = client.pending("ETH", ["w1"])
    assert [p.id for p in batch.transactions] == ["p1"]
    state = admin.state()
    assert state["requests"]["POST /v3/kms/pending/ETH"] == 3
    assert all(rule["times"] == 0 for rule in state["faults"])


def test_retry_after_is_honoured_as_the_wait(sandbox: Sandbox, admin: SandboxAdmin) -> None:
    waits: list[float] = []
    with TatumClient(sandbox.url, API_KEY, retry=FAST) as c:
        transport = c.http._transport._inner  # type: ignore[attr-defined]  # under kms.http_limits.LimitedTransport
        transport._sleep = waits.append  # type: ignore[attr-defined, method-assign]
        admin.configure(faults=[{"kind": "status", "status": 429, "retryAfter": 7, "times": 1}])
        c.pending("ETH", ["w1"])
    assert waits == [7.0]


def test_retry_after_beyond_the_cap_is_not_waited_for(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(faults=[{"kind": "status", "status": 429, "retryAfter": 3600, "times": 1}])
    with pytest.raises(TatumHttpError) as caught:
        client.pending("ETH", ["w1"])
    assert caught.value.status == 429
    assert admin.state()["requests"]["POST /v3/kms/pending/ETH"] == 1


def test_retries_are_bounded(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(faults=[{"kind": "status", "status": 503, "times": -1}])
    with pytest.raises(TatumHttpError) as caught:
        client.pending("ETH", ["w1"])
    assert caught.value.status == 503
    assert admin.state()["requests"]["POST /v3/kms/pending/ETH"] == FAST.attempts


def test_resets_exhaust_into_unavailable(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(faults=[{"kind": "reset", "times": -1}])
    with pytest.raises(TatumUnavailableError):
        client.pending("ETH", ["w1"])
    assert admin.state()["requests"]["POST /v3/kms/pending/ETH"] == FAST.attempts


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_4xx_are_never_retried(admin: SandboxAdmin, client: TatumClient, status: int) -> None:
    admin.configure(faults=[{"kind": "status", "status": status, "times": 1}])
    with pytest.raises(TatumHttpError) as caught:
        client.broadcast("ethereum", "0xabc", "p1")
    assert caught.value.status == status
    assert admin.state()["requests"]["POST /v3/ethereum/broadcast"] == 1


def test_malformed_and_wrong_shape_bodies(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(faults=[{"kind": "malformed", "times": 1}, {"kind": "wrongshape", "times": 1}])
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        client.pending("ETH", ["w1"])
    with pytest.raises(MalformedResponseError, match="expected a list"):
        client.pending("ETH", ["w1"])


def test_bad_items_are_rejected_one_by_one() -> None:
    body = [
        {"id": "ok", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"]},
        {"id": "no-tx", "chain": "ETH", "hashes": ["w"]},
        {"id": "other-chain", "chain": "BTC", "serializedTransaction": "{}", "hashes": ["w"]},
        {"id": "bad-index", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"], "index": -1},
        {"id": "bool-index", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"], "index": True},
        {"id": "sig-no-index", "chain": "ETH", "serializedTransaction": "{}", "signatures": [{"id": "m"}]},
        {"id": "no-wallet", "chain": "ETH", "serializedTransaction": "{}"},
        {"chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"]},
        "not an object",
        {"id": "ok", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"]},
    ]
    usable, rejected = parse_pending_list(body, "ETH")
    assert [p.id for p in usable] == ["ok"]
    assert [r.pending_id for r in rejected] == [
        "no-tx", "other-chain", "bad-index", "bool-index", "sig-no-index", "no-wallet", None, None,
    ]  # fmt: skip
    reasons = {r.pending_id: r.reason for r in rejected}
    assert reasons["sig-no-index"] == "Wrong usage of mnemonic-based signature id. No index provided for m."


def test_whole_float_index_is_accepted() -> None:
    usable, _ = parse_pending_list(
        [{"id": "a", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"], "index": 3.0}], "ETH"
    )
    assert usable[0].index == 3


def test_broadcast_completes_the_pending_transaction(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.enqueue(_pending("p1"))
    result = client.broadcast("ethereum", "0xdeadbeef", "p1")
    assert result.tx_id
    state = admin.state()
    assert state["pending"] == []
    assert state["broadcasts"][0]["txData"] == "0xdeadbeef"
    assert state["broadcasts"][0]["signatureId"] == "p1"


def test_offchain_broadcast_and_batch_report(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.enqueue({**_pending("w-1"), "withdrawalId": "wd-9"})
    client.offchain_broadcast("ETH", "w-1", "wd-9", "0x01")
    client.report_errors([{"signatureId": "x", "error": "boom"}])
    state = admin.state()
    assert state["broadcasts"][0]["path"] == "/v3/offchain/withdrawal/broadcast"
    assert state["broadcasts"][0]["withdrawalId"] == "wd-9"
    assert state["broadcasts"][0]["currency"] == "ETH"
    assert state["errors"] == [{"signatureId": "x", "error": "boom"}]


def test_get_and_delete_pending(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.enqueue(_pending("p1"))
    assert client.get_pending_transaction("p1", "ETH").id == "p1"  # type: ignore[union-attr]
    client.delete_pending_transaction("p1")
    with pytest.raises(TatumHttpError) as caught:
        client.get_pending_transaction("p1")
    assert caught.value.status == 404


def test_broadcast_reported_failed_is_an_error(sandbox: Sandbox, client: TatumClient) -> None:
    def failed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"txId": None, "failed": True})

    with TatumClient("http://tatum.invalid", API_KEY, transport=httpx.MockTransport(failed)) as mocked:
        with pytest.raises(TatumHttpError, match="failed"):
            mocked.broadcast("ethereum", "0x01", "p1")


class ClientLookups:
    """The EVM look-ups through the client's own gateway (its connection pool and retrying transport)."""

    def __init__(self, client: TatumClient) -> None:
        self._client = client

    def _for(self, chain: str, testnet: bool) -> EvmNodeLookups:
        return EvmNodeLookups(self._client.gateway(testnet), chain, EVM_FACTS[chain].route)

    def transaction_count(self, chain: str, address: str, testnet: bool) -> int:
        return self._for(chain, testnet).transaction_count(address)

    def gas_price(self, chain: str, testnet: bool) -> int:
        return self._for(chain, testnet).gas_price()

    def estimate_gas(self, chain: str, tx: dict[str, str], testnet: bool) -> int:
        return self._for(chain, testnet).estimate_gas(tx)

    def chain_id(self, chain: str, testnet: bool) -> int:
        return self._for(chain, testnet).chain_id()


def lookups(client: TatumClient) -> ClientLookups:
    return ClientLookups(client)


def test_evm_lookups_through_the_sandbox(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(
        nonces={"0xAbC": 41}, fee={"medium": "123"}, estimateGas=50000, chainIds={"ethereum": 11155111, "KLAY": 1001}
    )
    evm = lookups(client)
    assert evm.transaction_count("ETH", "0xabc", True) == 41
    assert evm.gas_price("ETH", True) == 123
    assert evm.estimate_gas("ETH", {"to": "0x00"}, True) == 50000
    assert evm.chain_id("ETH", True) == 11155111
    assert evm.chain_id("KLAY", True) == 1001  # the node gateway, klay_chainID
    assert evm.transaction_count("KLAY", "0xabc", True) == 41
    requests = admin.state()["requests"]
    assert requests["POST /v3/ethereum/web3"] == 2 and requests["POST /v3/blockchain/node/KLAY"] == 2


def test_lookups_share_the_client_retries(admin: SandboxAdmin, client: TatumClient) -> None:
    admin.configure(faults=[{"kind": "status", "status": 503, "path": "/v3/blockchain/fee/", "times": 2}])
    assert lookups(client).gas_price("ETH", True) == 20000000000
    assert admin.state()["requests"]["GET /v3/blockchain/fee/ETH"] == 3


def test_api_key_never_appears_in_retry_logs(
    admin: SandboxAdmin, client: TatumClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin.configure(faults=[{"kind": "status", "status": 503, "path": "/v3/ethereum/web3", "times": 1}])
    with caplog.at_level(logging.DEBUG):
        lookups(client).chain_id("ETH", True)
    assert "retrying" in caplog.text
    assert API_KEY not in caplog.text


def test_latest_version_header_is_reported(
    admin: SandboxAdmin, client: TatumClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin.configure(latestVersion="99.0.0;ERROR;Please upgrade your KMS")
    with caplog.at_level(logging.INFO, logger="kms.tatum"):
        client.pending("ETH", ["w1"])
        client.versions.tick()
        client.versions.tick()  # at most once per 30 s
    lines = [r for r in caplog.records if "Latest version" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.ERROR
    assert lines[0].getMessage() == (
        f"ERROR: Please upgrade your KMS. Current version: {CLIENT_VERSION}. Latest version: 99.0.0"
    )


def test_version_watch_ignores_older_and_incomplete_headers() -> None:
    clock = [0.0]
    watch = VersionWatch("8.0.1", clock=lambda: clock[0])
    watch.observe("8.0.0;WARN;old")
    assert watch.notice is None
    clock[0] += 61
    watch.observe("9.0.0;WARN")
    assert watch.notice is None
    watch.observe("9.0.0;WARN;new")  # within the minute of the last check: not read
    assert watch.notice is None
    clock[0] += 61
    watch.observe("9.0.0;warn;new")
    assert watch.notice is not None and watch.notice.level == "WARN"


@pytest.mark.parametrize(
    ("a", "b", "greater"),
    [("8.0.2", "8.0.1", True), ("8.0.1", "8.0.1", False), ("8.1.0-rc.1", "8.0.9", True), ("8.1.0-rc.1", "8.1.0", False),
     ("8.1.0", "8.1.0-rc.1", True), ("10.0.0", "9.9.9", True), ("garbage", "1.0.0", False)],
)  # fmt: skip
def test_semver_greater(a: str, b: str, greater: bool) -> None:
    assert semver_greater(a, b) is greater


def test_retry_after_http_date() -> None:
    response = httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"})
    assert retry_after_seconds(response, now=1445412480.0) == pytest.approx(10.0)
    assert retry_after_seconds(httpx.Response(429, headers={"retry-after": "soon"})) is None
