"""End to end on a real EVM node: anvil (Foundry) from the npm registry, on 127.0.0.1.

A node account funds a KMS-managed address; kms signs upstream-shaped pending transactions; the node accepts them,
mines them and the balances move. Run for every chain id kms signs for (a fresh anvil started with that chain id).
CELO's pre-L2 transaction layout is not an Ethereum transaction, so no Ethereum node can run it; it is checked
against celo-ethers-wrapper's own bytes in test_sign_evm_upstream_libs.py instead.

The node binary comes from the npm package ``@foundry-rs/anvil-<platform>`` (it ships the prebuilt binary). The test
installs it when missing, into ``$KMS_TEST_NODE_PREFIX`` (default ``$XDG_CACHE_HOME/kms-tests/node``); ``$KMS_ANVIL``
may name a binary instead. It is skipped only when npm itself is missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from kms.chains.evm import EVM_FACTS, evm_signer
from kms.retry import RetryPolicy
from kms.tatum.gateway import TatumGateway
from tests.servers.base import Request, Response
from tests.test_sign_evm import decode_legacy, decode_typed, derivation_keys, key, pending_for
from tests.test_sign_evm_lookups import API_KEY, FakeTatum, RpcFailure

ANVIL_VERSION = "1.7.1"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
ETHER = 10**18
# Runtime: store calldata word 0 (after the 4-byte selector) in slot 0. Init code copies it out and returns it.
STORE_ARG_INIT_CODE = "0x6007600c60003960076000f3" + "60043560005500"


def _platform_package() -> str | None:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    return f"@foundry-rs/anvil-{system}-{machine}" if system and machine else None


def _node_prefix() -> Path:
    configured = os.environ.get("KMS_TEST_NODE_PREFIX")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kms-tests" / "node"


def anvil_binary() -> Path:
    explicit = os.environ.get("KMS_ANVIL")
    if explicit:
        return Path(explicit)
    package = _platform_package()
    if package is None:
        pytest.skip(f"no anvil npm package for {platform.system()} {platform.machine()}")
    prefix = _node_prefix()
    binary = prefix / "node_modules" / package / "bin" / "anvil"
    if binary.is_file():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so the anvil node cannot be installed from the npm registry")
    prefix.mkdir(parents=True, exist_ok=True)
    install = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix)]
    subprocess.run([*install, f"{package}@{ANVIL_VERSION}"], check=True, timeout=600, capture_output=True)
    assert binary.is_file(), f"npm installed {package} but {binary} is missing"
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Node:
    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=10.0)
        self._ids = iter(range(1, 1_000_000))

    def call(self, method: str, *params: Any) -> Any:
        answer = self._http.post(
            self.url, json={"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        document = answer.json()
        if document.get("error"):
            raise RpcFailure(document["error"])
        return document["result"]

    def balance(self, address: str) -> int:
        return int(self.call("eth_getBalance", address, "latest"), 16)

    def fund(self, address: str, wei: int) -> None:
        source = self.call("eth_accounts")[0]
        tx_hash = self.call("eth_sendTransaction", {"from": source, "to": address, "value": hex(wei)})
        assert self.receipt(tx_hash)["status"] == "0x1"

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        for _ in range(100):
            receipt = self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return receipt
            time.sleep(0.05)
        raise AssertionError(f"transaction {tx_hash} was not mined")

    def send_raw(self, tx_data: str) -> dict[str, Any]:
        return self.receipt(self.call("eth_sendRawTransaction", tx_data))

    def close(self) -> None:
        self._http.close()


class Anvil:
    """One anvil at a time, restarted when a test needs another chain id: anvil_setChainId does not change the
    chain id its dev accounts sign with, so funding through eth_sendTransaction needs a node started with the id."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.chain_id: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.node: Node | None = None

    def on_chain(self, chain_id: int) -> Node:
        if self.node is not None and self.chain_id == chain_id:
            return self.node
        self.stop()
        port = _free_port()
        command = [str(self.binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
        self.process = subprocess.Popen([*command, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.node = Node(f"http://127.0.0.1:{port}")
        self.chain_id = chain_id
        for _ in range(200):
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace")[:500] if self.process.stderr else ""
                raise AssertionError(f"anvil exited: {stderr}")
            try:
                assert int(self.node.call("eth_chainId"), 16) == chain_id
                return self.node
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("anvil did not start listening")

    def stop(self) -> None:
        if self.node is not None:
            self.node.close()
            self.node = None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    nodes = Anvil(anvil_binary())
    try:
        yield nodes
    finally:
        nodes.stop()


def managed_key(chain: str, testnet: bool, index: str = "1") -> tuple[str, str]:
    _, private_keys, _ = derivation_keys("ETH" if chain == "KCS" else chain, testnet)
    private_key = private_keys[index]
    return private_key, Account.from_key(private_key).address


def spend(
    node: Node, chain: str, testnet: bool, tx: dict[str, Any], private_key: str, lookups: Any = None
) -> tuple[str, dict[str, Any]]:
    tx_data = evm_signer(chain).sign(pending_for(chain, tx), key(private_key), testnet, lookups).payload
    return tx_data, node.send_raw(tx_data)


@pytest.mark.parametrize("testnet", [False, True], ids=["mainnet", "testnet"])
@pytest.mark.parametrize("chain", [c for c in EVM_FACTS if c != "CELO"])
def test_native_transfer_is_mined_and_moves_balances(anvil: Anvil, chain: str, testnet: bool) -> None:
    chain_id = EVM_FACTS[chain].ids(testnet)[0]
    node = anvil.on_chain(chain_id)
    private_key, address = managed_key(chain, testnet)
    node.fund(address, 2 * ETHER)
    before_sender, before_recipient = node.balance(address), node.balance(RECIPIENT)
    nonce = int(node.call("eth_getTransactionCount", address, "latest"), 16)
    gas_price = 2 * int(node.call("eth_gasPrice"), 16)
    recipient = "xdc" + RECIPIENT[2:] if chain == "XDC" else RECIPIENT
    tx = {
        "from": 0,
        "to": recipient,
        "value": str(ETHER // 4),
        "gas": "21000",
        "gasPrice": str(gas_price),
        "nonce": nonce,
        "chainId": chain_id,
    }
    tx_data, receipt = spend(node, chain, testnet, tx, private_key)
    assert receipt["status"] == "0x1"
    assert receipt["from"].lower() == address.lower()
    fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert node.balance(RECIPIENT) == before_recipient + ETHER // 4
    assert node.balance(address) == before_sender - ETHER // 4 - fee
    assert decode_legacy(tx_data)["chainId"] == chain_id


def test_contract_deploy_and_token_style_call(anvil: Anvil) -> None:
    node = anvil.on_chain(11155111)
    private_key, address = managed_key("ETH", True, "2")
    node.fund(address, ETHER)
    gas_price = str(2 * int(node.call("eth_gasPrice"), 16))
    deploy = {"data": STORE_ARG_INIT_CODE, "gas": 100_000, "gasPrice": gas_price, "nonce": 0, "chainId": 11155111}
    _, deployed = spend(node, "ETH", True, deploy, private_key)
    assert deployed["status"] == "0x1" and deployed["contractAddress"]
    contract = deployed["contractAddress"]
    transfer = "0xa9059cbb" + RECIPIENT[2:].rjust(64, "0") + hex(10**18)[2:].rjust(64, "0")
    call = {"to": contract, "data": transfer, "gas": 60_000, "gasPrice": gas_price, "nonce": 1, "chainId": 11155111}
    _, called = spend(node, "ETH", True, call, private_key)
    assert called["status"] == "0x1"
    stored = node.call("eth_getStorageAt", contract, "0x0", "latest")
    assert int(stored, 16) == int(RECIPIENT, 16)


def test_xdc_eip1559_is_mined(anvil: Anvil) -> None:
    node = anvil.on_chain(51)
    private_key, address = managed_key("XDC", True)
    node.fund(address, ETHER)
    base_fee = int(node.call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    tx = {
        "to": RECIPIENT,
        "value": "7",
        "gas": 21000,
        "nonce": int(node.call("eth_getTransactionCount", address, "latest"), 16),
        "chainId": 51,
    }
    tx |= {"maxFeePerGas": str(3 * base_fee + 10), "maxPriorityFeePerGas": "1"}
    tx_data, receipt = spend(node, "XDC", True, tx, private_key)
    assert receipt["status"] == "0x1"
    assert receipt["type"] == "0x2"
    assert decode_typed(tx_data)["from"] == address


class TatumOverAnvil(FakeTatum):
    """The Tatum routes the look-ups use, answered by the real node: REST nonce and fee estimate from the node, and
    the JSON-RPC gateway passed through (caver's klay_ methods mapped to eth_)."""

    def __init__(self, node: Node) -> None:
        super().__init__(rpc=self._forward)
        self.node = node

    def _forward(self, method: str, params: list[Any]) -> Any:
        if method == "klay_chainID":
            method = "eth_chainId"
        return self.node.call(method.replace("klay_", "eth_", 1), *params)

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path.startswith("/v3/") and "/transaction/count/" in request.path:
            address = request.path.rsplit("/", 1)[1]
            return Response.json(200, int(self.node.call("eth_getTransactionCount", address, "pending"), 16))
        if request.path == "/v3/blockchain/fee/ETH":
            return Response.json(
                200, {"slow": "1", "medium": str(2 * int(self.node.call("eth_gasPrice"), 16)), "fast": "3"}
            )
        return super().handle(request)


@pytest.mark.parametrize(("chain", "testnet"), [("ETH", True), ("XDC", False), ("KLAY", True), ("ONE", False)])
def test_missing_fields_filled_through_tatum_routes_backed_by_the_node(anvil: Anvil, chain: str, testnet: bool) -> None:
    chain_id = EVM_FACTS[chain].ids(testnet)[0]
    node = anvil.on_chain(chain_id)
    private_key, address = managed_key(chain, testnet, "7")
    node.fund(address, ETHER)
    before = node.balance(RECIPIENT)
    with TatumOverAnvil(node) as tatum, httpx.Client(base_url=tatum.url, timeout=10.0) as http:
        lookups = TatumGateway(http, API_KEY, testnet=testnet, retry=RetryPolicy.none())
        tx = {"from": address, "to": RECIPIENT, "value": "12345"}
        if chain != "ETH":
            tx["gasPrice"] = str(2 * int(node.call("eth_gasPrice"), 16))  # these chains' prices come from elsewhere
        tx_data, receipt = spend(node, chain, testnet, tx, private_key, lookups)
        asked = [json.loads(r.body)["method"] for r in tatum.requests if r.method == "POST"]
    assert receipt["status"] == "0x1"
    assert node.balance(RECIPIENT) == before + 12345
    decoded = decode_legacy(tx_data)
    assert decoded["chainId"] == chain_id
    assert decoded["gas"] == 21_000
    assert any(method.endswith("estimateGas") for method in asked)
    assert any(method.lower().endswith("chainid") for method in asked)
