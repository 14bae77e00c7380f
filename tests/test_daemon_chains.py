"""ALGO, EGLD, VET, FLOW and ADA through the daemon's cycle: a real store, the Tatum API sandbox on 127.0.0.1 (pending,
broadcast, batch report), the registry's signers, and node gateways that answer with upstream's recorded answers (or,
for ADA, the Cardano Rosetta double over real HTTP). Every public vector must arrive byte for byte at its broadcast
endpoint; bad input and lying gateways cost one line in the batch report, and the cycle goes on. BNB is retired."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms.chains import get_chain
from kms.chains.base import LazySigner, SignerSettings
from kms.chains.flow import FLOW_FACTS
from kms.chains.vet import VET_FACTS
from kms.daemon.loop import Daemon, DaemonConfig, Outcome
from kms.errors import TatumApiError
from kms.hygiene import SecretBuffer
from kms.sandbox import Sandbox, SandboxAdmin
from kms.sandbox.rosetta import RosettaDouble
from kms.signing import flow_cadence
from kms.signing.flow import FlowSigner
from kms.signing.vet import VetSigner, upstream_nonce
from kms.store import KdfParams, WalletStore
from kms.tatum import RetryPolicy, TatumClient
from tests.conftest import load_vectors
from tests.test_daemon_loop import ChainView
from tests.test_sign_ada import API_KEY as ROSETTA_KEY
from tests.test_sign_ada import MNEMONIC, address, check_witnesses, decoded, operations
from tests.test_sign_egld import RecordedGateway
from tests.test_sign_flow import NODE as FLOW_NODE
from tests.test_sign_flow import ReplayGateway
from tests.test_sign_vet import ThorNodeDouble

ALGO_VECTOR = load_vectors("signing-algo.json")[0]
EGLD_VECTOR = load_vectors("signing-egld.json")[0]
VET_VECTOR = load_vectors("signing-vet.json")[0]
FLOW_VECTOR = load_vectors("signing-flow.json")[0]
VET_NODE = "https://vet-node.test/thor"
SETTINGS = SignerSettings({"TATUM_KMS_VET_NODE_URL": VET_NODE, "TATUM_KMS_FLOW_NODE_URL": FLOW_NODE})


# -- the signers as the vectors were made: upstream's nonce draw (VET) and upstream's templates (FLOW) --------------


def recorded_vet_signer(node_url: str | None = None) -> VetSigner:
    draw = VET_VECTOR["input"]["randomNonce"]
    return VetSigner(VET_FACTS, node_url, nonce_source=lambda: upstream_nonce(draw["nowMs"], draw["mathRandom"]))


def upstream_flow_signer(node_url: str | None = None) -> FlowSigner:
    return FlowSigner(
        FLOW_FACTS, node_url, templates=flow_cadence.UPSTREAM_SET, accept_emulator=True, sleep=lambda _: None
    )


VECTOR_SIGNERS = {
    # Built by the daemon with its signer settings, as the chain modules' own LazySigners are.
    "VET": LazySigner(f"{__name__}:recorded_vet_signer", settings={"node_url": "TATUM_KMS_VET_NODE_URL"}),
    "FLOW": LazySigner(f"{__name__}:upstream_flow_signer", settings={"node_url": "TATUM_KMS_FLOW_NODE_URL"}),
}


def registry(code: str) -> Any:
    chain = get_chain(code)
    return ChainView(chain, VECTOR_SIGNERS[chain.code]) if chain.code in VECTOR_SIGNERS else chain


class RoutingGateway:
    """One NodeGateway for several chains' doubles: each call goes to the double whose prefix starts the path/URL."""

    def __init__(self, routes: dict[str, Any], testnet: bool = True) -> None:
        self.routes = routes
        self.testnet = testnet

    def _to(self, where: str) -> Any:
        for prefix, gateway in self.routes.items():
            if where.startswith(prefix):
                return gateway
        raise TatumApiError(f"no double answers {where[:60]}")

    def tatum_get(self, path: str, *, what: str) -> Any:
        return self._to(path).tatum_get(path, what=what)

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        return self._to(path).tatum_post(path, body, what=what)

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        raise TatumApiError("no JSON-RPC here")

    def external_get(self, url: str, *, what: str) -> Any:
        return self._to(url).external_get(url, what=what)

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        return self._to(url).external_post(url, body, what=what)


def vector_gateway(
    egld_answers: list[dict[str, Any]] | None = None,
    vet_answers: list[dict[str, Any]] | None = None,
    flow_exchanges: list[dict[str, Any]] | None = None,
) -> RoutingGateway:
    flow = ReplayGateway(flow_exchanges or copy.deepcopy(FLOW_VECTOR["expected"]["httpExchanges"]))
    return RoutingGateway(
        {
            "/v3/egld/": RecordedGateway(egld_answers or copy.deepcopy(EGLD_VECTOR["input"]["nodeAnswers"])),
            VET_NODE: ThorNodeDouble(vet_answers or copy.deepcopy(VET_VECTOR["input"]["nodeAnswers"]), VET_NODE),
            "/v3/flow/": flow,
            FLOW_NODE: flow,
        }
    )


# -- fixtures ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[SandboxAdmin]:
    with SandboxAdmin(sandbox.url) as a:
        yield a


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with WalletStore.open(
        tmp_path / "w.db", SecretBuffer(b"pw"), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as s:
        yield s


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TatumClient]:
    with TatumClient(sandbox.url, "key", retry=RetryPolicy(attempts=2, initial_wait=0.01, jitter=0.01)) as c:
        yield c


def cycle(store: WalletStore, client: TatumClient, chains: tuple[str, ...], gateway: Any) -> Any:
    config = DaemonConfig(chains=chains, testnet=True, concurrency=4)
    daemon = Daemon(config, store, client, gateway=gateway, registry=registry, signer_settings=SETTINGS)
    try:
        return daemon.run_cycle()
    finally:
        daemon.close()


def enqueue_vector(store: WalletStore, admin: SandboxAdmin, vector: dict[str, Any], **changes: Any) -> str:
    wallet = {k: v for k, v in vector["input"]["wallet"].items() if k in ("privateKey", "secret")}
    signature_id = store.add(vector["chain"], vector["testnet"], wallet)
    admin.enqueue({**vector["input"]["pending"], "hashes": [signature_id], **changes})
    return signature_id


def broadcasts(admin: SandboxAdmin) -> dict[str, dict[str, Any]]:
    return {b["signatureId"]: b for b in admin.state()["broadcasts"]}


def errors(admin: SandboxAdmin) -> dict[str, str]:
    return {e["signatureId"]: e["error"] for e in admin.state()["errors"]}


# -- the public vectors, byte for byte at the broadcast endpoint -----------------------------------------------------


VECTORS = [ALGO_VECTOR, EGLD_VECTOR, VET_VECTOR, FLOW_VECTOR]


def test_every_public_vector_reaches_its_broadcast_endpoint_byte_for_byte(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    for vector in VECTORS:
        enqueue_vector(store, admin, vector)
    report = cycle(store, client, ("ALGO", "EGLD", "VET", "FLOW"), vector_gateway())
    assert report.errors == []
    assert report.outcomes[Outcome.BROADCAST] == 4
    sent = broadcasts(admin)
    for vector in VECTORS:
        broadcast = sent[vector["input"]["pending"]["id"]]
        assert broadcast["path"] == vector["expected"]["broadcastPath"], vector["chain"]
        assert broadcast["txData"] == vector["expected"]["txData"], vector["chain"]
    assert {
        "txData": sent[FLOW_VECTOR["input"]["pending"]["id"]]["txData"],
        "signatureId": FLOW_VECTOR["input"]["pending"]["id"],
    } == FLOW_VECTOR["expected"]["broadcastBody"]


def test_vet_and_flow_signers_use_the_node_urls_from_the_settings(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    gateway = vector_gateway()
    for vector in (VET_VECTOR, FLOW_VECTOR):
        enqueue_vector(store, admin, vector)
    cycle(store, client, ("VET", "FLOW"), gateway)
    vet_node = gateway.routes[VET_NODE]
    assert vet_node.done and all(url.startswith(VET_NODE + "/") for _, url, _ in vet_node.calls)
    flow = gateway.routes[FLOW_NODE]
    assert flow.exchanges == [] and len(broadcasts(admin)) == 2


# -- bad input and lying gateways: one line each, and the cycle goes on ----------------------------------------------


def lying_egld_answers() -> list[dict[str, Any]]:
    answers = copy.deepcopy(EGLD_VECTOR["input"]["nodeAnswers"])
    answers[0]["response"]["data"]["config"]["erd_chain_id"] = "1"  # mainnet, while the daemon signs testnet
    return answers


def lying_vet_answers() -> list[dict[str, Any]]:
    answers = copy.deepcopy(VET_VECTOR["input"]["nodeAnswers"])
    answers[1]["response"]["id"] = VET_FACTS.genesis_ids[False]
    return answers


def failing_flow_exchanges() -> list[dict[str, Any]]:
    exchanges = copy.deepcopy(FLOW_VECTOR["expected"]["httpExchanges"])
    exchanges[1]["response"] = {"chain_id": "flow-mainnet"}  # the access node is on another network
    return exchanges[:2]  # refused before Tatum is asked for (or signs with) its proposal key


def test_lying_gateways_and_bad_input_cost_one_report_line_each_and_the_cycle_goes_on(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    enqueue_vector(store, admin, EGLD_VECTOR)
    enqueue_vector(store, admin, VET_VECTOR)
    enqueue_vector(store, admin, FLOW_VECTOR)
    enqueue_vector(store, admin, ALGO_VECTOR, id="algo-bad", serializedTransaction='{"type": "pay"')
    enqueue_vector(store, admin, ALGO_VECTOR)  # a good one in the same cycle
    gateway = vector_gateway(lying_egld_answers(), lying_vet_answers(), failing_flow_exchanges())
    report = cycle(store, client, ("ALGO", "EGLD", "VET", "FLOW"), gateway)
    reported = errors(admin)
    ids = {v["chain"]: v["input"]["pending"]["id"] for v in VECTORS}
    assert "chain id is not one of MultiversX testnet" in reported[ids["EGLD"]]
    assert "genesis block is not VeChainThor testnet" in reported[ids["VET"]]
    assert "flow-mainnet" in reported[ids["FLOW"]]
    assert "not valid JSON" in reported["algo-bad"]
    assert all("\n" not in line for line in reported.values())
    assert list(broadcasts(admin)) == [ids["ALGO"]]
    assert report.outcomes[Outcome.FAILED] == 4


# -- ADA: the Rosetta double over real HTTP, signatures checked with pycardano ---------------------------------------


@pytest.fixture
def rosetta() -> Iterator[RosettaDouble]:
    with RosettaDouble(ROSETTA_KEY) as double:
        yield double


@pytest.fixture
def rosetta_gateway(rosetta: RosettaDouble) -> Iterator[Any]:
    with TatumClient(rosetta.url, ROSETTA_KEY, retry=RetryPolicy(attempts=1, initial_wait=0.01)) as c:
        yield c.gateway(True)


def body_hash(tx_data: str) -> bytes:
    return hashlib.blake2b(decoded(tx_data).transaction_body.to_cbor(), digest_size=32).digest()


def test_ada_key_wallets_and_an_offchain_withdrawal_from_signatures_through_rosetta(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin, rosetta: RosettaDouble, rosetta_gateway: Any
) -> None:
    ada = get_chain("ADA")
    key_ids = [store.add("ADA", True, {"privateKey": ada.private_key_at(MNEMONIC, i, True)}) for i in (0, 1)]
    mnemonic_id = store.add("ADA", True, ada.wallet_from_mnemonic(MNEMONIC, True))
    stranger_id = store.add("ADA", True, {"privateKey": ada.private_key_at(MNEMONIC, 9, True)})
    ops = json.dumps(operations())
    admin.enqueue(
        [
            {"id": "ada-1", "chain": "ADA", "serializedTransaction": ops, "hashes": key_ids},
            {"id": "ada-wd", "chain": "ADA", "serializedTransaction": ops, "hashes": [stranger_id],
             "withdrawalId": "wd-7",
             "signatures": [{"id": mnemonic_id, "index": 0}, {"id": mnemonic_id, "index": 1}]},
        ]
    )  # fmt: skip
    report = cycle(store, client, ("ADA",), rosetta_gateway)
    assert report.errors == []
    sent = broadcasts(admin)
    assert sent["ada-1"]["path"] == "/v3/ada/broadcast"
    assert sent["ada-wd"]["path"] == "/v3/offchain/withdrawal/broadcast"
    assert (sent["ada-wd"]["currency"], sent["ada-wd"]["withdrawalId"]) == ("ADA", "wd-7")
    for pending_id in ("ada-1", "ada-wd"):
        tx_data = sent[pending_id]["txData"]
        owners = check_witnesses(decoded(tx_data), body_hash(tx_data), True)
        assert owners == {address(0), address(1)}
    assert len(rosetta.verified) == 4  # the double checked every signature it was given
    assert [name for name, _ in rosetta.requests].count("derive") == 4  # the withdrawal ignored its 'hashes' wallet


def test_an_ada_offchain_withdrawal_signs_only_with_mnemonic_wallets_in_signatures(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin, rosetta: RosettaDouble, rosetta_gateway: Any
) -> None:
    ada = get_chain("ADA")
    key_id = store.add("ADA", True, {"privateKey": ada.private_key_at(MNEMONIC, 0, True)})
    admin.enqueue(
        {"id": "ada-wd2", "chain": "ADA", "serializedTransaction": json.dumps(operations()), "hashes": [key_id],
         "withdrawalId": "wd-8", "signatures": [{"id": key_id, "index": 0}]}
    )  # fmt: skip
    cycle(store, client, ("ADA",), rosetta_gateway)
    assert "mnemonic based wallets in 'signatures'" in errors(admin)["ada-wd2"]
    assert broadcasts(admin) == {} and rosetta.requests == []


def test_ada_gateway_that_lies_is_reported_and_nothing_is_broadcast(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin, rosetta: RosettaDouble, rosetta_gateway: Any
) -> None:
    ada = get_chain("ADA")
    key_ids = [store.add("ADA", True, {"privateKey": ada.private_key_at(MNEMONIC, i, True)}) for i in (0, 1)]
    admin.enqueue({"id": "ada-2", "chain": "ADA", "serializedTransaction": json.dumps(operations()), "hashes": key_ids})
    rosetta.lies.add("pay_elsewhere")
    cycle(store, client, ("ADA",), rosetta_gateway)
    assert "not the pending transaction" in errors(admin)["ada-2"]
    assert broadcasts(admin) == {}


# -- BNB: retired --------------------------------------------------------------------------------------------------


def test_a_bnb_pending_transaction_is_answered_with_the_shutdown_and_nothing_is_signed(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    bnb = get_chain("BNB")
    signature_id = store.add("BNB", True, {"privateKey": bnb.generate_private_key(True)["privateKey"]})
    admin.enqueue({"id": "bnb-1", "chain": "BNB", "serializedTransaction": "{}", "hashes": [signature_id]})
    report = cycle(store, client, ("BNB",), vector_gateway())
    assert errors(admin) == {"bnb-1": "BNB Beacon Chain has shut down; nothing signed"}
    assert broadcasts(admin) == {} and report.outcomes[Outcome.FAILED] == 1
    with store.get(signature_id) as wallet:  # the wallet itself stays readable
        assert wallet.fields()["privateKey"]
