"""TRON signing: byte-identical to upstream (tronweb 5.3.5 through @tatumio/tron 2.2.100), the signer recovered with
tronpy, upstream's three refusals in order, and bad input refused with one line."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tronpy.keys import PrivateKey as TronpyPrivateKey
from tronpy.keys import Signature, to_base58check_address, to_hex_address
from tronpy.proto.transaction import calculate_txid_from_raw_data

from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.signing.tron import ALREADY_SIGNED, INVALID, NOT_OWNER, TronSigner
from kms.signing.tron_protobuf import encode_raw_data
from tests.conftest import load_vectors
from tests.signing_fakes import handle, pending_of, raw_key

VECTORS = load_vectors("signing-tron.json")
SIGNED = [v for v in VECTORS if "txData" in v["expected"]]
REFUSED = [v for v in VECTORS if "error" in v["expected"]]
DERIVATION = next(
    v for v in load_vectors("derivation.json") if v["chain"] == "TRON" and v["input"]["mnemonic"].startswith("abandon")
)


def sign(vector: dict[str, Any], serialized: str | None = None, key_hex: str | None = None, **extra: Any) -> str:
    key = raw_key("TRON", key_hex or vector["input"]["wallet"]["privateKey"])
    return (
        TronSigner("TRON").sign(pending_of(vector, serialized, **extra), [handle(key)], vector["testnet"], None).payload
    )


def tx_of(vector: dict[str, Any]) -> dict[str, Any]:
    return json.loads(vector["input"]["pending"]["serializedTransaction"])


def recovered_owner(signed: dict[str, Any]) -> str:
    """The address tronpy recovers from the signature over the txID bytes."""
    signature = Signature(bytes.fromhex(signed["signature"][0]))
    public_key = signature.recover_public_key_from_msg_hash(bytes.fromhex(signed["txID"]))
    return public_key.to_hex_address()


@pytest.mark.parametrize("vector", SIGNED, ids=lambda v: v["description"])
def test_upstream_vector_is_reproduced_byte_for_byte(vector: dict[str, Any]) -> None:
    assert sign(vector) == vector["expected"]["txData"]


@pytest.mark.parametrize("vector", SIGNED, ids=lambda v: v["description"])
def test_signature_recovers_to_the_owner_and_nothing_else_changed(vector: dict[str, Any]) -> None:
    signed = json.loads(sign(vector))
    unsigned = tx_of(vector)
    owner = unsigned["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"]
    assert recovered_owner(signed) == owner
    assert list(signed) == [*unsigned, "signature"]
    assert {k: v for k, v in signed.items() if k != "signature"} == unsigned
    v_hex = signed["signature"][0][128:]
    assert v_hex in ("1B", "1C")
    # tronpy's own protobuf definitions agree that the txID is the hash of raw_data
    assert calculate_txid_from_raw_data(unsigned["raw_data"]) == unsigned["txID"]


@pytest.mark.parametrize("vector", REFUSED, ids=lambda v: v["description"])
def test_upstream_refusal_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(SigningError) as refused:
        sign(vector)
    assert str(refused.value) == vector["expected"]["error"]


def _transfer_for(owner_hex: str, amount: int) -> str:
    """A TransferContract owned by ``owner_hex`` whose raw_data_hex and txID come from tronpy's encoder."""
    tx = tx_of(SIGNED[0])
    tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] = owner_hex
    tx["raw_data"]["contract"][0]["parameter"]["value"]["amount"] = amount
    txid = calculate_txid_from_raw_data(tx["raw_data"])
    tx["txID"] = txid
    tx["raw_data_hex"] = encode_raw_data(tx["raw_data"]).hex()
    assert hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest() == txid
    return json.dumps(tx, separators=(",", ":"))


def test_mnemonic_wallet_signs_with_the_key_at_the_pending_index() -> None:
    key_hex = DERIVATION["expected"]["privateKeys"]["2"]
    owner = to_hex_address(DERIVATION["expected"]["addresses"]["2"])
    serialized = _transfer_for(owner, 42)
    pending = replace(pending_of(SIGNED[0], serialized), index=2)
    signed = TronSigner("TRON").sign(pending, [handle(raw_key("TRON", key_hex), index=2)], True, None)
    assert recovered_owner(json.loads(signed.payload)) == owner
    assert to_base58check_address(owner) == DERIVATION["expected"]["addresses"]["2"]
    # same bytes as tronpy's own signer would make over the txID (RFC 6979, low-S)
    expected = TronpyPrivateKey(bytes.fromhex(key_hex)).sign_msg_hash(bytes.fromhex(json.loads(serialized)["txID"]))
    assert json.loads(signed.payload)["signature"][0][:128] == expected.hex()[:128]
    with pytest.raises(SigningError, match="another index"):
        TronSigner("TRON").sign(pending, [handle(raw_key("TRON", key_hex), index=3)], True, None)


def test_base58_owner_address_is_read_like_tronweb() -> None:
    vector = SIGNED[0]
    tx = tx_of(vector)
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    value["owner_address"] = to_base58check_address(value["owner_address"])
    signed = json.loads(sign(vector, json.dumps(tx)))
    assert signed["signature"] == json.loads(vector["expected"]["txData"])["signature"]


# --- upstream's refusals, in upstream's order --------------------------------------------------------------------


def test_already_signed_is_refused_before_anything_else() -> None:
    signed_tx = REFUSED[0]["input"]["pending"]["serializedTransaction"]
    tx = json.loads(signed_tx)
    tx["signature"] = []
    with pytest.raises(SigningError) as refused:
        sign(REFUSED[0], json.dumps(tx))  # the wrong key too, but "already signed" is checked first
    assert str(refused.value) == ALREADY_SIGNED
    with pytest.raises(SigningError, match=f"^{ALREADY_SIGNED}$"):
        sign(SIGNED[0], SIGNED[0]["expected"]["txData"])


def test_owner_mismatch_is_refused_before_the_encoding_check() -> None:
    tx = tx_of(REFUSED[0])
    tx["raw_data_hex"] = "00"
    with pytest.raises(SigningError) as refused:
        sign(REFUSED[0], json.dumps(tx))
    assert str(refused.value) == NOT_OWNER


@pytest.mark.parametrize(
    "tamper",
    [
        lambda tx: tx["raw_data"]["contract"][0]["parameter"]["value"].update(amount=1),
        lambda tx: tx["raw_data"].update(expiration=tx["raw_data"]["expiration"] + 1),
        lambda tx: tx["raw_data"].update(fee_limit=1),
        lambda tx: tx["raw_data"]["contract"][0]["parameter"].update(type_url="type.googleapis.com/protocol.Other"),
        lambda tx: tx.update(txID="00" * 32),
        lambda tx: tx.update(raw_data_hex=tx["raw_data_hex"] + "00"),
    ],
    ids=["amount", "expiration", "fee_limit", "type_url-is-ignored", "txID", "raw_data_hex"],
)
def test_raw_data_that_does_not_match_raw_data_hex_or_txid_is_refused(tamper: Any) -> None:
    tx = tx_of(SIGNED[0])
    tamper(tx)
    if tx["raw_data"]["contract"][0]["parameter"]["type_url"].endswith("Other"):
        # tronweb takes the type URL from the contract type, not from the JSON: still the same bytes, still signed
        assert json.loads(sign(SIGNED[0], json.dumps(tx)))["signature"]
        return
    with pytest.raises(SigningError) as refused:
        sign(SIGNED[0], json.dumps(tx))
    assert str(refused.value) == INVALID


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serialized", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "not a JSON object"),
        ('{"a":1,"a":2}', "duplicate key"),
        ('{"raw_data":{"expiration":1.5}}', "non-integer number"),
        ('{"raw_data":{"expiration":9007199254740993}}', "beyond 2"),
        ('{"raw_data":{}}', "owner_address is missing"),
        ("", "no serializedTransaction"),
    ],
)
def test_malformed_json_is_refused_in_one_line(serialized: str, message: str) -> None:
    with pytest.raises(SigningError, match=message) as refused:
        sign(SIGNED[0], serialized)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda tx: tx["raw_data"]["contract"].append(copy.deepcopy(tx["raw_data"]["contract"][0])), "more than one"),
        (lambda tx: tx["raw_data"].update(ref_block_num=5), "raw_data.ref_block_num is not covered"),
    ],
    ids=["second-contract", "ref_block_num"],
)
def test_raw_data_upstream_would_not_check_is_refused(tamper: Any, message: str) -> None:
    """tronweb re-encodes only contract[0] and six fields; beyond upstream, JSON the signature does not cover is
    refused (the node would build its transaction from that JSON)."""
    tx = tx_of(SIGNED[0])
    tamper(tx)
    with pytest.raises(SigningError, match=message):
        sign(SIGNED[0], json.dumps(tx))


def test_unsupported_contract_type_is_refused() -> None:
    tx = tx_of(SIGNED[0])
    tx["raw_data"]["contract"][0]["type"] = "VoteWitnessContract"
    with pytest.raises(SigningError, match=r"^Unsupported transaction type: VoteWitnessContract$"):
        sign(SIGNED[0], json.dumps(tx))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("owner_address", "41zz", NOT_OWNER),
        ("to_address", "TNotAnAddress", "to_address is not a TRON address"),
        ("amount", "1500000", "amount is not an integer"),
    ],
)
def test_malformed_contract_fields_are_refused(field: str, value: Any, message: str) -> None:
    tx = tx_of(SIGNED[0])
    tx["raw_data"]["contract"][0]["parameter"]["value"][field] = value
    with pytest.raises(SigningError, match=message):
        sign(SIGNED[0], json.dumps(tx))


def test_other_chain_and_key_count_are_refused() -> None:
    key = handle(raw_key("TRON", SIGNED[0]["input"]["wallet"]["privateKey"]))
    with pytest.raises(SigningError, match="not a TRON transaction"):
        TronSigner("TRON").sign(replace(pending_of(SIGNED[0]), chain="ETH"), [key], True, None)
    with pytest.raises(SigningError, match="exactly one key, got 2"):
        TronSigner("TRON").sign(pending_of(SIGNED[0]), [key, key], True, None)


@pytest.mark.parametrize("text", ["", "0x" + "11" * 32, "11" * 31, "zz" * 32, "11" * 33])
def test_malformed_private_key_text_is_refused_without_echo(text: str) -> None:
    with pytest.raises(SigningError) as refused:
        raw_key("TRON", text)
    assert text not in str(refused.value) or not text


def test_a_key_that_is_not_a_secp256k1_scalar_is_refused() -> None:
    with pytest.raises(SigningError, match="not a valid secp256k1 private key"):  # the chain refuses to decode it
        sign(SIGNED[0], key_hex="FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141")  # the curve order
    other_kind = handle(SecretBuffer(bytes(range(1, 65))))  # 64 bytes: a key of another kind reaching this signer
    with pytest.raises(SigningError, match="not a secp256k1 key"):
        TronSigner("TRON").sign(pending_of(SIGNED[0]), [other_kind], True, None)


UPSTREAM_CASES = json.loads(Path(__file__).with_name("test_sign_tron_upstream_cases.json").read_text())
UPSTREAM_CASES_KEY = "b5a4cea271ff424d7c31dc12a3e43e401df7a40d7412a15750f3f0b6b5449a28"


@pytest.mark.parametrize("case", UPSTREAM_CASES, ids=lambda c: c["type"])
def test_every_contract_type_as_tronweb_encodes_and_signs_it(case: dict[str, Any]) -> None:
    """Cases computed by tronweb 5.3.5 itself (``utils.transaction.txJsonToPb`` for raw_data_hex and txID, then
    ``trx.sign``): every contract type kms re-encodes, with and without optional fields, memo data and fee_limit."""
    pending = replace(pending_of(SIGNED[0]), serialized_transaction=case["serializedTransaction"])
    signed = TronSigner("TRON").sign(pending, [handle(raw_key("TRON", UPSTREAM_CASES_KEY))], True, None)
    assert signed.payload == case["txData"]
    tx = json.loads(case["serializedTransaction"])
    assert hashlib.sha256(encode_raw_data(tx["raw_data"])).hexdigest() == tx["txID"]
