"""XRP signing: byte-identical to upstream (xrpl.js 2.14 through @tatumio/xrp 2.2.100), blobs decoded and their
signatures verified with xrpl-py, and bad input refused with one line."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
from xrpl import CryptoAlgorithm
from xrpl.core.addresscodec import encode_seed
from xrpl.core.binarycodec import decode, encode_for_signing
from xrpl.core.keypairs import derive_classic_address, derive_keypair, is_valid_message
from xrpl.models.transactions.transaction import Transaction
from xrpl.transaction import sign as xrpl_sign
from xrpl.wallet import Wallet

from kms.errors import SigningError
from kms.signing.xrp import XrpSigner
from tests.conftest import load_vectors
from tests.signing_fakes import handle, pending_of, raw_key

VECTORS = load_vectors("signing-xrp.json")
SECP256K1_SEED = encode_seed(bytes(range(1, 17)), CryptoAlgorithm.SECP256K1)


def sign(vector: dict[str, Any], serialized: str | None = None, secret: str | None = None) -> str:
    key = handle(raw_key("XRP", secret or vector["input"]["wallet"]["secret"]))
    return XrpSigner("XRP").sign(pending_of(vector, serialized), [key], vector["testnet"], None).payload


def tx_hash(blob: str) -> str:
    """SHA-512Half of the transaction-id prefix and the signed blob."""
    return hashlib.sha512(b"TXN\x00" + bytes.fromhex(blob)).digest()[:32].hex().upper()


def verify_blob(blob: str, address: str) -> dict[str, Any]:
    decoded = decode(blob)
    signature = decoded.pop("TxnSignature")
    assert is_valid_message(
        bytes.fromhex(encode_for_signing(decoded)), bytes.fromhex(signature), decoded["SigningPubKey"]
    )
    assert derive_classic_address(decoded["SigningPubKey"]) == address
    assert decoded["Account"] == address
    return {**decoded, "TxnSignature": signature}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_upstream_vector_is_reproduced_byte_for_byte(vector: dict[str, Any]) -> None:
    blob = sign(vector)
    assert blob == vector["expected"]["txData"]
    assert tx_hash(blob) == vector["expected"]["hash"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_blob_decodes_to_the_pending_transaction_and_its_signature_verifies(vector: dict[str, Any]) -> None:
    decoded = verify_blob(sign(vector), vector["input"]["wallet"]["address"])
    assert decoded == vector["expected"]["decoded"]
    pending_fields = json.loads(vector["input"]["pending"]["serializedTransaction"])
    assert {k: decoded[k] for k in pending_fields} == pending_fields


def _payment_from(address: str, **extra: Any) -> str:
    tx = json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])
    return json.dumps({**tx, "Account": address, **extra})


def test_secp256k1_seed_signs_as_xrpl_py_does() -> None:
    """Older (ripple-lib) wallets hold secp256k1 seeds: DER, RFC 6979, low-S; the same bytes as xrpl-py's signer."""
    public_key, _ = derive_keypair(SECP256K1_SEED)
    address = derive_classic_address(public_key)
    serialized = _payment_from(address, SourceTag=7, DestinationTag=99)
    blob = sign(VECTORS[0], serialized, SECP256K1_SEED)
    decoded = verify_blob(blob, address)
    assert not decoded["SigningPubKey"].startswith("ED")
    assert decoded["SourceTag"] == 7 and decoded["DestinationTag"] == 99
    reference = xrpl_sign(Transaction.from_xrpl(json.loads(serialized)), Wallet.from_seed(SECP256K1_SEED))
    assert blob == reference.blob()


def test_ed25519_vector_matches_xrpl_py_signer() -> None:
    vector = VECTORS[0]
    wallet = Wallet.from_seed(vector["input"]["wallet"]["secret"])
    reference = xrpl_sign(
        Transaction.from_xrpl(json.loads(vector["input"]["pending"]["serializedTransaction"])), wallet
    )
    assert sign(vector) == reference.blob()


def test_memo_in_lower_case_hex_and_amount_with_trailing_zeros_are_signed() -> None:
    """xrpl.js accepts both (its round-trip check upper-cases memo hex and strips trailing zeros)."""
    vector = VECTORS[1]
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    tx["Amount"] = {**tx["Amount"], "value": "3.1400"}
    tx["Memos"] = [{"Memo": {"MemoData": "6b6d73", "MemoType": "74657874"}}]
    decoded = verify_blob(sign(vector, json.dumps(tx)), vector["input"]["wallet"]["address"])
    assert decoded["Memos"] == [{"Memo": {"MemoData": "6B6D73", "MemoType": "74657874"}}]
    assert decoded["Amount"]["value"] == "3.14"


@pytest.mark.parametrize("entropy", [bytes(16), bytes(range(16)), b"\xff" * 16, bytes(range(100, 116))])
@pytest.mark.parametrize("algorithm", [CryptoAlgorithm.ED25519, CryptoAlgorithm.SECP256K1])
def test_any_seed_signs_the_bytes_xrpl_py_makes(entropy: bytes, algorithm: CryptoAlgorithm) -> None:
    seed = encode_seed(entropy, algorithm)
    address = derive_classic_address(derive_keypair(seed)[0])
    serialized = _payment_from(address)
    reference = xrpl_sign(Transaction.from_xrpl(json.loads(serialized)), Wallet.from_seed(seed))
    assert sign(VECTORS[0], serialized, seed) == reference.blob()


# --- refusals -----------------------------------------------------------------------------------------------------


def test_account_that_is_not_the_wallet_is_refused() -> None:
    with pytest.raises(SigningError, match="Account is not the address of the signing key"):
        sign(VECTORS[0], secret=SECP256K1_SEED)


@pytest.mark.parametrize(
    "extra",
    [{"TxnSignature": "00"}, {"Signers": []}],
    ids=["TxnSignature", "Signers"],
)
def test_already_signed_transaction_is_refused(extra: dict[str, Any]) -> None:
    tx = json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])
    with pytest.raises(SigningError, match="must not contain"):
        sign(VECTORS[0], json.dumps({**tx, **extra}))


@pytest.mark.parametrize(
    ("serialized", "message"),
    [
        ("{", "not valid JSON"),
        ('"Payment"', "not a JSON object"),
        ('{"Account":"r","Account":"r"}', "duplicate key"),
        ('{"Account":"r3sNTMefq5gsRumMYsNznnX6yzzxVH6dTC"}', "no TransactionType"),
        ('{"TransactionType":"Payment"}', "no Account"),
        ('{"TransactionType":"Payment","Account":"r3sNTMefq5gsRumMYsNznnX6yzzxVH6dTC","Fee":1.5}', "non-integer"),
    ],
)
def test_malformed_json_is_refused(serialized: str, message: str) -> None:
    with pytest.raises(SigningError, match=message) as refused:
        sign(VECTORS[0], serialized)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "extra",
    [{"NoSuchField": 1}, {"Sequence": "many"}, {"TransactionType": "NoSuchType"}],
    ids=["unknown-field", "bad-type", "unknown-type"],
)
def test_transaction_the_codec_cannot_encode_is_refused(extra: dict[str, Any]) -> None:
    tx = json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])
    with pytest.raises(SigningError, match=r"cannot be encoded|does not match"):
        sign(VECTORS[0], json.dumps({**tx, **extra}))


@pytest.mark.parametrize("secret", ["", "rNotASeed", "sEdXXXX", "s" + "1" * 28, "sEd\u00e9abc"])
def test_malformed_seed_is_refused_without_echo(secret: str) -> None:
    with pytest.raises(SigningError) as refused:
        raw_key("XRP", secret)
    assert not secret or secret not in str(refused.value)


def test_other_chain_and_key_count_are_refused() -> None:
    key = handle(raw_key("XRP", VECTORS[0]["input"]["wallet"]["secret"]))
    with pytest.raises(SigningError, match="not a XRP transaction"):
        XrpSigner("XRP").sign(replace(pending_of(VECTORS[0]), chain="XLM"), [key], True, None)
    with pytest.raises(SigningError, match="exactly one key, got 0"):
        XrpSigner("XRP").sign(pending_of(VECTORS[0]), [], True, None)


def test_a_key_of_another_kind_is_refused() -> None:
    from kms.hygiene import SecretBuffer

    with pytest.raises(SigningError, match="invalid XRP secret"):
        XrpSigner("XRP").sign(pending_of(VECTORS[0]), [handle(SecretBuffer(bytes(range(1, 33))))], True, None)
