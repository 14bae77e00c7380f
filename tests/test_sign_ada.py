"""ADA signing: the whole Rosetta construction exchange over real HTTP against the sandbox's Cardano Rosetta double
(which verifies every signature it is given), every witness checked again with pycardano, and bad input or a lying
gateway refused with a one-line error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import cbor2
import httpx
import pytest
from pycardano import Address, Network, Transaction, VerificationKey
from pycardano.crypto.bip32 import BIP32ED25519PublicKey

from kms.api import PendingTransaction
from kms.chains.ada import ADA, ADA_FACTS
from kms.errors import KmsError, SigningError, TatumApiError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.sandbox.rosetta import RosettaDouble
from kms.signing.ada import AdaSigner

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
API_KEY = "rosetta-test-key"
TX_A = "a1" * 32
TX_B = "b2" * 32


class HttpxGateway:
    """The part of NodeGateway ADA uses, over real HTTP (kms.tatum's gateway is not this module's business)."""

    def __init__(self, base_url: str, api_key: str, testnet: bool) -> None:
        self.base_url, self.api_key, self._testnet = base_url, api_key, testnet

    @property
    def testnet(self) -> bool:
        return self._testnet

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        response = httpx.post(self.base_url + path.replace("{apiKey}", self.api_key), json=body, timeout=30)
        if response.status_code >= 400:
            raise TatumApiError(f"{what}: HTTP {response.status_code}")
        return response.json()

    def tatum_get(self, path: str, *, what: str) -> Any:
        raise AssertionError("ADA makes no GET calls")

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        raise AssertionError("ADA makes no JSON-RPC calls")

    def external_get(self, url: str, *, what: str) -> Any:
        raise AssertionError("ADA calls no third-party node")

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        raise AssertionError("ADA calls no third-party node")


def raw_key(index: int) -> bytes:
    return bytes.fromhex(ADA.private_key_at(MNEMONIC, index, True))


def handle(raw: bytes, signature_id: str = "wallet-1") -> KeyHandle:
    return KeyHandle(signature_id, SecretBuffer(bytearray(raw)))


def address(index: int, testnet: bool = True) -> str:
    return ADA.address_from_private_key(raw_key(index).hex(), testnet)


def operation(kind: str, index: int, where: str, value: int, coin: str | None = None) -> dict[str, Any]:
    """One Rosetta operation exactly as @tatumio/cardano's prepareSignedTransaction writes it."""
    op: dict[str, Any] = {
        "operation_identifier": {"index": index, "network_index": 0},
        "related_operations": [],
        "type": kind,
        "status": "success",
        "account": {"address": where, "metadata": {}},
        "amount": {"value": str(value), "currency": {"symbol": "ADA", "decimals": 6}},
        "metadata": {},
    }
    if coin:
        op["coin_change"] = {"coin_identifier": {"identifier": coin}, "coin_action": "coin_created"}
    else:
        op["amount"]["metadata"] = {}
    return op


def operations(testnet: bool = True) -> list[dict[str, Any]]:
    recipient = address(5, testnet)
    return [
        operation("input", 0, address(0, testnet), -3_000_000, f"{TX_A}:0"),
        operation("input", 1, address(1, testnet), -2_500_000, f"{TX_B}:3"),
        operation("output", 2, recipient, 4_000_000),
        operation("output", 3, address(0, testnet), 1_330_000),
    ]


def pending(ops: Any) -> PendingTransaction:
    serialized = ops if isinstance(ops, str) else json.dumps(ops)
    return PendingTransaction(id="p-1", chain="ADA", serialized_transaction=serialized, hashes=("wallet-1", "wallet-2"))


@pytest.fixture
def rosetta() -> Iterator[RosettaDouble]:
    with RosettaDouble(API_KEY) as double:
        yield double


def sign(rosetta: RosettaDouble, ops: Any, keys: list[bytes] | None = None, testnet: bool = True) -> str:
    gateway = HttpxGateway(rosetta.url, API_KEY, testnet)
    handles = [handle(k, f"wallet-{i}") for i, k in enumerate(keys or [raw_key(0), raw_key(1)])]
    return AdaSigner(ADA_FACTS).sign(pending(ops), handles, testnet, gateway).payload


def decoded(signed: str) -> Transaction:
    inner = cbor2.loads(bytes.fromhex(signed))[0]
    return Transaction.from_cbor(bytes.fromhex(inner))


def check_witnesses(transaction: Transaction, body_hash: bytes, testnet: bool) -> set[str]:
    """Every witness verified with pycardano; the addresses the witnessing keys own."""
    owners = set()
    for witness in transaction.transaction_witness_set.vkey_witnesses:
        public_key = bytes(witness.vkey.payload)
        BIP32ED25519PublicKey(public_key, bytes(32)).verify(bytes(witness.signature), body_hash)  # raises if bad
        network = Network.TESTNET if testnet else Network.MAINNET
        owners.add(str(Address(payment_part=VerificationKey(public_key).hash(), network=network)))
    return owners


@pytest.mark.parametrize("testnet", [True, False])
def test_whole_rosetta_exchange_and_every_signature_checks_out(rosetta: RosettaDouble, testnet: bool) -> None:
    ops = operations(testnet)
    signed = sign(rosetta, ops, testnet=testnet)
    assert [name for name, _ in rosetta.requests] == [
        "derive",
        "derive",
        "preprocess",
        "metadata",
        "payloads",
        "combine",
    ]
    network = "preprod" if testnet else "mainnet"
    assert all(r["network_identifier"] == {"blockchain": "cardano", "network": network} for _, r in rosetta.requests)
    assert rosetta.requests[2][1]["metadata"] == {"relative_ttl": 1000}
    assert rosetta.requests[2][1]["operations"] == ops
    assert {a for a, _ in rosetta.verified} == {address(0, testnet), address(1, testnet)}
    transaction = decoded(signed)
    body = transaction.transaction_body
    assert {(bytes(i.transaction_id).hex(), i.index) for i in body.inputs} == {(TX_A, 0), (TX_B, 3)}
    assert [(str(o.address), o.amount) for o in body.outputs] == [
        (address(5, testnet), 4_000_000),
        (address(0, testnet), 1_330_000),
    ]
    assert body.fee == 170_000
    body_hash = hashlib.blake2b(body.to_cbor(), digest_size=32).digest()
    assert check_witnesses(transaction, body_hash, testnet) == {address(0, testnet), address(1, testnet)}


def test_a_96_byte_key_with_chain_code_signs_like_the_64_byte_key(rosetta: RosettaDouble) -> None:
    ops = [operation("input", 0, address(0), -3_000_000, f"{TX_A}:0"), operation("output", 1, address(5), 2_000_000)]
    first = sign(rosetta, ops, [raw_key(0)])
    second = sign(rosetta, ops, [raw_key(0) + bytes(range(32))])
    assert decoded(first).transaction_witness_set == decoded(second).transaction_witness_set


def test_a_key_no_input_needs_is_derived_but_signs_nothing(rosetta: RosettaDouble) -> None:
    ops = [operation("input", 0, address(0), -3_000_000, f"{TX_A}:0"), operation("output", 1, address(5), 2_000_000)]
    signed = sign(rosetta, ops, [raw_key(0), raw_key(1)])
    assert len(decoded(signed).transaction_witness_set.vkey_witnesses) == 1


def expect_refusal(
    rosetta: RosettaDouble, ops: Any, keys: list[bytes] | None = None, error: type = SigningError
) -> str:
    with pytest.raises(error) as caught:
        sign(rosetta, ops, keys)
    message = str(caught.value)
    assert "\n" not in message and API_KEY not in message
    assert "combine" not in [name for name, _ in rosetta.requests]
    return message


def mutated(change: Any) -> list[dict[str, Any]]:
    ops = operations()
    change(ops)
    return ops


@pytest.mark.parametrize(
    "ops",
    [
        "{not json",
        "{}",
        "[]",
        mutated(lambda o: o[0]["account"].update(address=address(7))),  # an input the keys do not own
        mutated(lambda o: o[2]["account"].update(address=address(5, testnet=False))),  # output on mainnet
        mutated(lambda o: o[2]["amount"].update(value="5500000")),  # no fee left
        mutated(lambda o: o[1]["coin_change"]["coin_identifier"].update(identifier=f"{TX_A}:0")),  # coin spent twice
        mutated(lambda o: o[2]["amount"].update(metadata={"tokenBundle": [{}]})),
        mutated(lambda o: o[2]["amount"]["currency"].update(decimals=0)),
        mutated(lambda o: o[0].update(type="stakeKeyRegistration")),
        mutated(lambda o: o[0]["coin_change"].update(coin_action="coin_spent")),
    ],
)
def test_bad_operations_are_refused_before_the_gateway_is_asked(rosetta: RosettaDouble, ops: Any) -> None:
    expect_refusal(rosetta, ops)
    assert rosetta.requests == []


@pytest.mark.parametrize(
    ("lie", "reason"),
    [
        ("derive_address", "derive"),
        ("payload_address", "none of the signing keys owns"),
        ("payload_hash", "not the hash of the unsigned transaction"),
        ("pay_elsewhere", "not the pending transaction"),
    ],
)
def test_a_lying_gateway_gets_no_signature(rosetta: RosettaDouble, lie: str, reason: str) -> None:
    rosetta.lies.add(lie)
    assert reason in expect_refusal(rosetta, operations())
    assert rosetta.verified == []


def test_a_combined_transaction_with_another_body_is_refused(rosetta: RosettaDouble) -> None:
    rosetta.lies.add("combine_other_body")
    with pytest.raises(SigningError, match="not the transaction that was signed"):
        sign(rosetta, operations())


def test_gateway_errors_are_tatum_errors(rosetta: RosettaDouble) -> None:
    gateway = HttpxGateway(rosetta.url, "wrong-key", True)
    with pytest.raises(TatumApiError) as caught:
        AdaSigner(ADA_FACTS).sign(pending(operations()), [handle(raw_key(0)), handle(raw_key(1))], True, gateway)
    assert "wrong-key" not in str(caught.value)


def test_the_double_refuses_a_bad_signature(rosetta: RosettaDouble) -> None:
    sign(rosetta, operations())
    combine = dict(rosetta.requests[-1][1])
    signature = dict(combine["signatures"][0])
    signature["hex_bytes"] = ("00" if signature["hex_bytes"][:2] != "00" else "11") + signature["hex_bytes"][2:]
    combine["signatures"] = [signature, *combine["signatures"][1:]]
    url = f"{rosetta.url}/v3/blockchain/node/cardano-preprod/{API_KEY}/construction/combine"
    response = httpx.post(url, json=combine, timeout=30)
    assert response.status_code == 500 and response.json()["message"] == "invalid signature"


@pytest.mark.parametrize("bad", [bytes([8]) * 32, b"\x07" * 64])
def test_keys_that_are_not_extended_ed25519_keys_are_refused(rosetta: RosettaDouble, bad: bytes) -> None:
    expect_refusal(rosetta, operations(), [bad, raw_key(1)])


def test_wrong_chain_no_keys_and_no_gateway_are_refused() -> None:
    signer = AdaSigner(ADA_FACTS)
    with pytest.raises(SigningError):
        signer.sign(PendingTransaction(id="x", chain="FLOW", serialized_transaction="[]"), [], True, None)
    with pytest.raises(SigningError):
        signer.sign(pending(operations()), [], True, None)
    with pytest.raises(SigningError, match="needs the Cardano Rosetta gateway"):
        signer.sign(pending(operations()), [handle(raw_key(0))], True, None)


def test_every_refusal_is_a_kms_error() -> None:
    assert issubclass(SigningError, KmsError) and issubclass(TatumApiError, KmsError)
