"""FLOW signing: upstream's vector byte for byte (every Tatum and access-node exchange replayed in order), the
authorizer signature checked by public-key recovery, the Cadence 1.0 templates parsed by Flow's own parser, and bad
input or lying answers refused with nothing signed."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import string
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import coincurve
import pytest

from kms.api import PendingTransaction
from kms.chains.base import loaded_signer
from kms.chains.flow import FLOW, FLOW_FACTS
from kms.errors import KmsError, SigningError, TatumApiError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing import flow_cadence
from kms.signing.flow import TRANSACTION_DOMAIN_TAG, FlowSigner, parse_flow_transaction
from tests.conftest import load_vectors

NODE = "https://access-node.test/flow"
NODE_ORIGIN = "https://access-node.test"
VECTOR = load_vectors("signing-flow.json")[0]
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
CADENCE_PARSER = "@onflow/cadence-parser@1.0.0-preview.50"


class ReplayGateway:
    """A NodeGateway that expects exactly the recorded exchanges, in order, and answers with the recorded answers.
    ``strict_bodies=False`` checks methods and paths only (for keys other than the vector's)."""

    def __init__(self, exchanges: Sequence[Mapping[str, Any]], testnet: bool = True, strict_bodies: bool = True):
        self.exchanges = list(exchanges)
        self.calls: list[tuple[str, str, Any]] = []
        self.strict_bodies = strict_bodies
        self._testnet = testnet
        self.fail_on: str | None = None

    @property
    def testnet(self) -> bool:
        return self._testnet

    def _next(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if self.fail_on and self.fail_on in path:
            raise TatumApiError(f"{method} {path}: HTTP 500")
        assert self.exchanges, f"unexpected call {method} {path}"
        expected = self.exchanges.pop(0)
        assert (expected["method"], expected["path"]) == (method, path)
        if self.strict_bodies and "body" in expected:
            assert body == expected["body"]
        return copy.deepcopy(expected["response"])

    def tatum_get(self, path: str, *, what: str) -> Any:
        return self._next("GET", path)

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        return self._next("POST", path, body)

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        raise AssertionError("FLOW makes no JSON-RPC calls")

    def external_get(self, url: str, *, what: str) -> Any:
        assert url.startswith(NODE_ORIGIN)
        return self._next("GET", url[len(NODE_ORIGIN) :])

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        assert url.startswith(NODE_ORIGIN)
        return self._next("POST", url[len(NODE_ORIGIN) :], body)


def pending_of(vector: Mapping[str, Any], serialized: str | None = None) -> PendingTransaction:
    raw = vector["input"]["pending"]
    return PendingTransaction(
        id=raw["id"],
        chain=raw["chain"],
        serialized_transaction=raw["serializedTransaction"] if serialized is None else serialized,
        hashes=("wallet-1",),
    )


def handle(raw: bytes) -> KeyHandle:
    return KeyHandle("wallet-1", SecretBuffer(bytearray(raw)))


def vector_key() -> bytes:
    return FLOW.decode_private_key(VECTOR["input"]["signingKey"], True)


def exchanges() -> list[dict[str, Any]]:
    return copy.deepcopy(VECTOR["expected"]["httpExchanges"])


def upstream_signer() -> FlowSigner:
    return FlowSigner(FLOW_FACTS, NODE, templates=flow_cadence.UPSTREAM_SET, accept_emulator=True, sleep=lambda _: None)


def recovered_public_keys(signature: bytes, message: bytes) -> set[str]:
    digest = hashlib.sha3_256(message).digest()
    keys = set()
    for recovery_id in (0, 1):
        key = coincurve.PublicKey.from_signature_and_message(signature + bytes([recovery_id]), digest, hasher=None)
        keys.add(key.format(compressed=False)[1:].hex())
    return keys


def payload_message_of(rest_body: Mapping[str, Any]) -> bytes:
    """Rebuild the payload message from the REST body alone (what the access node will verify)."""
    import rlp

    fields = [
        base64.b64decode(rest_body["script"]),
        [base64.b64decode(a) for a in rest_body["arguments"]],
        bytes.fromhex(rest_body["reference_block_id"]),
        int(rest_body["gas_limit"]),
        bytes.fromhex(rest_body["proposal_key"]["address"]),
        int(rest_body["proposal_key"]["key_index"]),
        int(rest_body["proposal_key"]["sequence_number"]),
        bytes.fromhex(rest_body["payer"]),
        [bytes.fromhex(a) for a in rest_body["authorizers"]],
    ]
    return TRANSACTION_DOMAIN_TAG + rlp.encode(fields)


def test_vector_byte_for_byte_with_every_exchange_in_order() -> None:
    gateway = ReplayGateway(exchanges())
    signer = upstream_signer()
    signed = signer.sign(pending_of(VECTOR), [handle(vector_key())], True, gateway)
    assert json.loads(signed.payload) == VECTOR["expected"]["httpExchanges"][7]["body"]
    assert signed.meta["proposalKey"] == 7
    assert [c[1] for c in gateway.calls][-1] == "/v3/flow/sign"  # nothing sent to the node while signing
    tx_id = signer.submit(signed, gateway)
    assert tx_id == VECTOR["expected"]["txData"]
    assert gateway.exchanges == []


def test_authorizer_signature_recovers_to_the_wallet_key_and_fields_match_the_pending_body() -> None:
    signed = upstream_signer().sign(pending_of(VECTOR), [handle(vector_key())], True, ReplayGateway(exchanges()))
    body = json.loads(signed.payload)
    tx = json.loads(VECTOR["input"]["pending"]["serializedTransaction"])["body"]
    assert body["authorizers"] == [tx["account"][2:]]
    arguments = [json.loads(base64.b64decode(a)) for a in body["arguments"]]
    assert arguments == [{"type": "UFix64", "value": "1.50000000"}, {"type": "Address", "value": tx["to"]}]
    mine = [s for s in body["payload_signatures"] if s["address"] == tx["account"][2:]]
    assert len(mine) == 1 and mine[0]["key_index"] == "0"
    signature = base64.b64decode(mine[0]["signature"])
    assert VECTOR["input"]["publicKey"] in recovered_public_keys(signature, payload_message_of(body))


def test_mnemonic_key_signs_as_authorizer() -> None:
    raw = FLOW.decode_private_key(FLOW.private_key_at(MNEMONIC, 1, True), True)
    public_key = FLOW.address_at(FLOW.wallet_from_mnemonic(MNEMONIC, True), 1, True)
    gateway = ReplayGateway(exchanges(), strict_bodies=False)
    signed = upstream_signer().sign(pending_of(VECTOR), [handle(raw)], True, gateway)
    body = json.loads(signed.payload)
    mine = next(s for s in body["payload_signatures"] if s["address"] == "1f2e3d4c5b6a7980")
    assert public_key in recovered_public_keys(base64.b64decode(mine["signature"]), payload_message_of(body))


def test_cadence_1_0_templates_are_the_default_and_sign_the_same_transfer() -> None:
    gateway = ReplayGateway(exchanges(), strict_bodies=False)
    signer = FlowSigner(FLOW_FACTS, NODE, accept_emulator=True)
    signed = signer.sign(pending_of(VECTOR), [handle(vector_key())], True, gateway)
    body = json.loads(signed.payload)
    script = base64.b64decode(body["script"]).decode()
    assert "AuthAccount" not in script and "auth(BorrowValue) &Account" in script
    assert "import FlowToken from 0x7e60df042a9c0868" in script
    proposer_data = next(c[2]["data"] for c in gateway.calls if c[1] == "/v3/flow/sign")
    assert bytes.fromhex(proposer_data) == payload_message_of(body)
    mine = next(s for s in body["payload_signatures"] if s["address"] == "1f2e3d4c5b6a7980")
    signature = base64.b64decode(mine["signature"])
    assert VECTOR["input"]["publicKey"] in recovered_public_keys(signature, payload_message_of(body))


def test_default_node_is_upstreams_public_node_per_network() -> None:
    signer = loaded_signer(FLOW)
    assert isinstance(signer, FlowSigner) and signer.templates == flow_cadence.CADENCE_1_0_SET
    assert signer.access_node(True) == "https://rest-testnet.onflow.org"
    assert signer.access_node(False) == "https://rest-mainnet.onflow.org"
    assert FlowSigner(FLOW_FACTS, "http://127.0.0.1:8888/").access_node(False) == "http://127.0.0.1:8888"
    with pytest.raises(ValueError):
        FlowSigner(FLOW_FACTS, "http://node?apikey=1")


# --- bad input and lying answers -------------------------------------------------------------------------------


def refuse(serialized: str | None = None, mutate: Any = None, signer: FlowSigner | None = None) -> ReplayGateway:
    answers = exchanges()
    if mutate:
        mutate(answers)
    gateway = ReplayGateway(answers, strict_bodies=False)
    with pytest.raises(KmsError) as caught:
        (signer or upstream_signer()).sign(pending_of(VECTOR, serialized), [handle(vector_key())], True, gateway)
    message = str(caught.value)
    assert "\n" not in message and VECTOR["input"]["signingKey"] not in message
    assert not any(c[1] == "/v3/flow/sign" and c[2]["isPayer"] for c in gateway.calls)  # nothing was completed
    return gateway


def body_with(**changes: Any) -> str:
    document = json.loads(VECTOR["input"]["pending"]["serializedTransaction"])
    document["body"].update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    "serialized",
    [
        "{not json",
        "[]",
        json.dumps({"type": 2}),
        json.dumps({"type": "2", "body": {}}),
        body_with(account="1f2e3d4c5b6a7980"),
        body_with(to="0x0a1b"),
        body_with(amount="1.123456789"),
        body_with(amount="-1"),
        body_with(currency="USDT"),
        body_with(privateKey="807daec00be9867968c54a877849b89ed434720ebab6ff11d99643fd8c20bcf2"),
        json.dumps(
            {"type": 8, "body": {"account": "0x1f2e3d4c5b6a7980", "transaction": "x", "args": [{"type": "Foo"}]}}
        ),
    ],
)
def test_malformed_bodies_are_refused_before_any_call(serialized: str) -> None:
    gateway = refuse(serialized)
    assert gateway.calls == []


def test_wrong_network_is_refused() -> None:
    def mainnet(answers: list[dict[str, Any]]) -> None:
        answers[1]["response"]["chain_id"] = "flow-mainnet"

    gateway = refuse(mutate=mainnet)
    assert [c[1] for c in gateway.calls] == ["/v3/flow/proposal/true", "/flow/v1/network/parameters"]
    refuse(signer=FlowSigner(FLOW_FACTS, NODE, templates=flow_cadence.UPSTREAM_SET))  # the emulator is not a testnet


def test_proposal_key_that_the_account_does_not_have_is_refused_and_released() -> None:
    def wrong_key(answers: list[dict[str, Any]]) -> None:
        answers[2]["response"]["keyId"] = 9
        answers.insert(5, {"method": "POST", "path": "/v3/flow/broadcast", "response": {}})

    gateway = refuse(mutate=wrong_key)
    assert gateway.calls[-1] == ("POST", "/v3/flow/broadcast", {"txData": "", "proposalKey": 9})


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [
        (3, None, [{"header": {"id": "zz"}}]),
        (4, "address", "0000000000000001"),
        (5, "signature", "not-a-signature"),
    ],
)
def test_lying_answers_are_refused(index: int, field: str | None, value: Any) -> None:
    def lie(answers: list[dict[str, Any]]) -> None:
        if field is None:
            answers[index]["response"] = value
        else:
            answers[index]["response"][field] = value
        answers.insert(index + 1, {"method": "POST", "path": "/v3/flow/broadcast", "response": {}})

    refuse(mutate=lie)


def test_gateway_failure_is_a_tatum_error_and_nothing_is_signed() -> None:
    gateway = ReplayGateway(exchanges())
    gateway.fail_on = "/v3/flow/proposal/true"
    with pytest.raises(TatumApiError):
        upstream_signer().sign(pending_of(VECTOR), [handle(vector_key())], True, gateway)
    assert len(gateway.calls) == 1


def test_failed_transaction_is_an_error_and_releases_the_proposal_key() -> None:
    answers = exchanges()
    answers[8]["response"].update(status_code=1, error_message="[Error Code: 1101] cadence runtime error\nline 2")
    gateway = ReplayGateway(answers)
    signer = upstream_signer()
    signed = signer.sign(pending_of(VECTOR), [handle(vector_key())], True, gateway)
    with pytest.raises(KmsError, match="failed: \\[Error Code: 1101\\] cadence runtime error line 2"):
        signer.submit(signed, gateway)
    assert gateway.calls[-1][1] == "/v3/flow/broadcast" and gateway.exchanges == []


def test_wrong_chain_and_key_count_are_refused() -> None:
    signer = upstream_signer()
    other = PendingTransaction(id="x", chain="ETH", serialized_transaction="{}")
    with pytest.raises(SigningError):
        signer.sign(other, [handle(vector_key())], True, ReplayGateway([]))
    with pytest.raises(SigningError):
        signer.sign(pending_of(VECTOR), [], True, ReplayGateway([]))
    with pytest.raises(SigningError, match="needs the Tatum API"):
        signer.sign(pending_of(VECTOR), [handle(vector_key())], True, None)


# --- templates -------------------------------------------------------------------------------------------------

ACCOUNT = "0x1f2e3d4c5b6a7980"
PUBLIC_KEY = VECTOR["input"]["publicKey"]
BODIES = {
    0: {"account": ACCOUNT, "publicKey": PUBLIC_KEY},
    1: {"account": ACCOUNT, "publicKey": PUBLIC_KEY},
    2: {"account": ACCOUNT, "to": "0x0a1b2c3d4e5f6071", "amount": "2", "currency": "FUSD"},
    4: {"account": ACCOUNT, "to": "0x0a1b2c3d4e5f6071", "url": "ipfs://x", "contractAddress": "t1"},
    5: {"account": ACCOUNT, "to": ["0x0a1b2c3d4e5f6071"] * 2, "url": ["a", "b"], "contractAddress": "t1"},
    6: {"account": ACCOUNT, "tokenId": "12", "contractAddress": "t1"},
    7: {"account": ACCOUNT, "to": "0x0a1b2c3d4e5f6071", "tokenId": 12},
    8: {
        "account": ACCOUNT,
        "transaction": "transaction(a: [UInt64]) { prepare(s: &Account) {} }",
        "args": [{"type": "Array", "subType": "UInt64", "value": ["1", "007"]}],
    },
}


@pytest.mark.parametrize("template_set", [flow_cadence.UPSTREAM_SET, flow_cadence.CADENCE_1_0_SET])
@pytest.mark.parametrize("tx_type", sorted(BODIES))
def test_every_transaction_type_renders(template_set: str, tx_type: int) -> None:
    script = parse_flow_transaction(
        json.dumps({"type": tx_type, "body": BODIES[tx_type]}), template_set, FLOW_FACTS.contract_addresses[False]
    )
    assert "$" not in script.code and script.authorizer == ACCOUNT
    assert all(set(arg) == {"type", "value"} for arg in script.arguments)
    if tx_type == 8:
        assert script.arguments[0]["value"] == [{"type": "UInt64", "value": "1"}, {"type": "UInt64", "value": "7"}]
    if tx_type == 0 and template_set == flow_cadence.UPSTREAM_SET:
        # util-encode-key: RLP([publicKey, ECDSA_secp256k1=2, SHA3_256=3, weight 1000])
        assert script.arguments[0]["value"] == "f847b840" + PUBLIC_KEY + "0203" + "8203e8"


def rendered_cadence_1_0() -> dict[str, str]:
    rendered = {}
    for testnet in (True, False):
        names = dict(FLOW_FACTS.contract_addresses[testnet])
        names.update(tokenName="FlowToken", tokenAddress=names["FlowToken"], tokenStorage="flowToken")
        for name, template in flow_cadence.CADENCE_1_0.items():
            rendered[f"{name}-{testnet}"] = string.Template(template).substitute(names)
    return rendered


def test_cadence_1_0_templates_use_none_of_the_removed_apis() -> None:
    for name, code in rendered_cadence_1_0().items():
        for removed in ("AuthAccount", "pub ", ".link<", "addPublicKey", "getCapability"):
            assert removed not in code, (name, removed)
    assert set(flow_cadence.CADENCE_1_0) == set(flow_cadence.UPSTREAM)


PARSE_SCRIPT = """
const fs = require('fs'), path = require('path');
const {CadenceParser} = require('@onflow/cadence-parser');
(async () => {
  const wasm = fs.readFileSync(path.join('node_modules', '@onflow/cadence-parser/dist/cadence-parser.wasm'));
  const parser = await CadenceParser.create(wasm);
  const out = {};
  for (const [name, code] of Object.entries(JSON.parse(fs.readFileSync(0, 'utf8')))) {
    const result = parser.parse(code);
    out[name] = result.error ? JSON.stringify(result.error) : null;
  }
  process.stdout.write('\\n@@' + JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(2); });
"""


@pytest.fixture(scope="session")
def cadence_parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("npm/node are not installed: the Cadence 1.0 parser cannot run")
    directory = tmp_path_factory.mktemp("cadence-parser")
    (directory / "package.json").write_text('{"name": "cadence-parse", "private": true}')
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", CADENCE_PARSER],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"npm could not install {CADENCE_PARSER} (no registry?)")
    (directory / "parse.js").write_text(PARSE_SCRIPT)
    yield directory


def parse_with_cadence_parser(directory: Path, sources: Mapping[str, str]) -> dict[str, str | None]:
    result = subprocess.run(
        ["node", "parse.js"],
        cwd=directory,
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.rsplit("\n@@", 1)[1])


def test_cadence_1_0_templates_parse_with_the_cadence_1_0_parser(cadence_parser: Path) -> None:
    sources = rendered_cadence_1_0()
    sources["pre-1.0 control"] = "pub fun main(): Int { return 1 }"
    errors = parse_with_cadence_parser(cadence_parser, sources)
    assert errors.pop("pre-1.0 control") is not None  # the parser does refuse pre-1.0 syntax
    assert errors == dict.fromkeys(errors)
    assert len(errors) == 2 * len(flow_cadence.CADENCE_1_0)


def test_proposer_key_that_is_the_payer_key_signs_only_the_envelope() -> None:
    answers = exchanges()
    answers[2]["response"]["keyId"] = 0
    del answers[5]  # no separate proposer signature: fcl lets the payer's envelope signature cover the proposal
    gateway = ReplayGateway(answers, strict_bodies=False)
    signed = upstream_signer().sign(pending_of(VECTOR), [handle(vector_key())], True, gateway)
    body = json.loads(signed.payload)
    assert body["proposal_key"] == {"address": "955cd3f17b2fd8ad", "key_index": "0", "sequence_number": "40"}
    assert [s["address"] for s in body["payload_signatures"]] == ["1f2e3d4c5b6a7980"]
    assert [c[2]["isPayer"] for c in gateway.calls if c[1] == "/v3/flow/sign"] == [True]


def test_signatures_match_an_independent_rfc6979_implementation_high_s_included() -> None:
    """elliptic (upstream) signs with an RFC 6979 nonce and leaves S high half the time; so must we."""
    ecdsa = pytest.importorskip("ecdsa")
    from kms.signing.flow import sign_flow_message

    secp256k1_order = ecdsa.SECP256k1.order
    high_s = 0
    for i in range(24):
        raw = hashlib.sha256(b"flow key %d" % i).digest()
        message = TRANSACTION_DOMAIN_TAG + b"payload %d" % i
        reference = ecdsa.SigningKey.from_string(raw, curve=ecdsa.SECP256k1).sign_digest_deterministic(
            hashlib.sha3_256(message).digest(), hashfunc=hashlib.sha256, sigencode=ecdsa.util.sigencode_string
        )
        assert sign_flow_message(raw, message) == reference
        high_s += int.from_bytes(reference[32:], "big") > secp256k1_order // 2
    assert high_s > 0
