"""BCH signing: byte-identical to upstream, and each Schnorr signature verified on a path that shares nothing with the
signer (the ALL|FORKID digest rebuilt here with hashlib, the curve arithmetic done by the pure-Python ``ecdsa``)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from bitcointx.core import CTransaction
from bitcointx.core.script import CScript
from ecdsa import SECP256k1, VerifyingKey

from kms.api import PendingTransaction
from kms.errors import SigningError
from kms.signing.bch import BchSigner
from kms.signing.bch_schnorr import schnorr_sign, schnorr_verify
from tests.conftest import load_vectors
from tests.test_sign_utxo import keys_of, wif_handle

UPSTREAM_CASES = Path(__file__).with_name("test_sign_utxo_upstream_cases.json")
P = SECP256k1.curve.p()
N = SECP256k1.order


def _cases(kind: str) -> list[dict[str, Any]]:
    cases = json.loads(UPSTREAM_CASES.read_text())
    return [c for c in cases if c["chain"] == "BCH" and kind in c["expected"]]


def _all_signing_vectors() -> list[dict[str, Any]]:
    return load_vectors("signing-bch.json") + _cases("txData")


def pending_of(vector: dict[str, Any], serialized: str | None = None, **extra: Any) -> PendingTransaction:
    pending = vector["input"]["pending"]
    return PendingTransaction(
        id=pending["id"],
        chain=pending["chain"],
        serialized_transaction=serialized if serialized is not None else pending["serializedTransaction"],
        **extra,
    )


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def forkid_digest(tx: CTransaction, index: int, script_code: bytes, amount: int) -> bytes:
    """The BCH ALL|FORKID signature hash (BIP143 layout, hash type 0x41), written out independently of the signer."""
    prevouts = b"".join(txin.prevout.hash + struct.pack("<I", txin.prevout.n) for txin in tx.vin)
    sequences = b"".join(struct.pack("<I", txin.nSequence) for txin in tx.vin)
    outputs = b"".join(
        struct.pack("<q", o.nValue) + bytes([len(o.scriptPubKey)]) + bytes(o.scriptPubKey) for o in tx.vout
    )
    txin = tx.vin[index]
    preimage = (
        struct.pack("<i", tx.nVersion)
        + _dsha(prevouts)
        + _dsha(sequences)
        + txin.prevout.hash
        + struct.pack("<I", txin.prevout.n)
        + bytes([len(script_code)])
        + script_code
        + struct.pack("<q", amount)
        + struct.pack("<I", txin.nSequence)
        + _dsha(outputs)
        + struct.pack("<I", tx.nLockTime)
        + struct.pack("<I", 0x41)
    )
    return _dsha(preimage)


def ecdsa_lib_schnorr_verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """BCH Schnorr verification (2019-05-15 spec) with python-ecdsa's point arithmetic."""
    point = VerifyingKey.from_string(pubkey, curve=SECP256k1).pubkey.point
    compressed = bytes([2 + (point.y() & 1)]) + point.x().to_bytes(32, "big")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r >= P or s >= N:
        return False
    e = int.from_bytes(hashlib.sha256(signature[:32] + compressed + message).digest(), "big") % N
    candidate = SECP256k1.generator * s + point * (N - e)
    return candidate.x() == r and pow(candidate.y(), (P - 1) // 2, P) == 1


def verify_bch(signed_hex: str, serialized: str) -> int:
    unsigned_hex, amounts_json = serialized.split(":")
    amounts = json.loads(amounts_json)
    tx = CTransaction.deserialize(bytes.fromhex(signed_hex))
    unsigned = CTransaction.deserialize(bytes.fromhex(unsigned_hex))
    assert tx.nVersion == 2, "upstream's TransactionBuilder always emits version 2"
    assert [o.serialize() for o in tx.vout] == [o.serialize() for o in unsigned.vout]
    assert [i.prevout.serialize() for i in tx.vin] == [i.prevout.serialize() for i in unsigned.vin]
    for index, txin in enumerate(tx.vin):
        signature, pubkey = list(CScript(txin.scriptSig))
        assert len(signature) == 65 and signature[-1] == 0x41
        pubkey_hash = hashlib.new("ripemd160", hashlib.sha256(pubkey).digest()).digest()
        script_code = bytes.fromhex("76a914") + pubkey_hash + bytes.fromhex("88ac")
        digest = forkid_digest(tx, index, script_code, amounts[index])
        assert ecdsa_lib_schnorr_verify(pubkey, digest, signature[:64]), f"input {index}"
    return len(tx.vin)


@pytest.mark.parametrize("vector", _all_signing_vectors(), ids=lambda v: v["description"])
def test_bch_byte_identical_and_schnorr_valid(vector: dict[str, Any]) -> None:
    tx_data = BchSigner().sign(pending_of(vector), keys_of(vector), vector["testnet"]).payload
    assert tx_data == vector["expected"]["txData"]
    assert verify_bch(tx_data, vector["input"]["pending"]["serializedTransaction"]) == len(vector["input"]["keys"])


def test_independent_verifier_rejects_a_tampered_signature() -> None:
    vector = load_vectors("signing-bch.json")[0]
    tx_data = BchSigner().sign(pending_of(vector), keys_of(vector), vector["testnet"]).payload
    position = tx_data.index("41", 84) + 40  # inside the 64-byte signature of input 0
    tampered = tx_data[:position] + ("0" if tx_data[position] != "0" else "1") + tx_data[position + 1 :]
    with pytest.raises(AssertionError, match="input 0"):
        verify_bch(tampered, vector["input"]["pending"]["serializedTransaction"])


def test_schnorr_sign_verify_roundtrip_and_rejections() -> None:
    import coincurve

    key = coincurve.PrivateKey(bytes.fromhex("12" * 32))
    message = hashlib.sha256(b"kms").digest()
    signature = schnorr_sign(key, message)
    assert schnorr_sign(key, message) == signature, "nonce is deterministic"
    pubkey = key.public_key.format()
    assert schnorr_verify(pubkey, message, signature)
    assert ecdsa_lib_schnorr_verify(pubkey, message, signature)
    assert not schnorr_verify(pubkey, hashlib.sha256(b"other").digest(), signature)
    assert not schnorr_verify(pubkey, message, signature[:32] + bytes(32))
    assert not schnorr_verify(coincurve.PrivateKey(bytes.fromhex("13" * 32)).public_key.format(), message, signature)


def test_bch_offchain_withdrawal_maps_responses_to_inputs() -> None:
    vector = load_vectors("signing-bch.json")[1]
    keys = keys_of(vector)
    responses = [{"vIn": "ab" * 32, "vInIndex": i, "address": {"derivationKey": k.index}} for i, k in enumerate(keys)]
    pending = pending_of(vector, withdrawal_id="wd-1", raw={"withdrawalResponses": [*responses, {"vIn": "-1"}]})
    assert BchSigner().sign(pending, keys, vector["testnet"]).payload == vector["expected"]["txData"]
    # A pool-transfer response in the middle shifts upstream's input numbering past the last input: refused.
    shifted = [responses[0], {"vIn": "-1"}, responses[1]]
    pending = pending_of(vector, withdrawal_id="wd-1", raw={"withdrawalResponses": shifted})
    with pytest.raises(SigningError, match="key i"):
        BchSigner().sign(pending, keys, vector["testnet"])
    # Keys derived at other indexes than the responses ask for are refused.
    wifs = [k["wif"] for k in vector["input"]["keys"]]
    wrong = [wif_handle("BCH", wif, vector["testnet"], (k.index or 0) + 5) for wif, k in zip(wifs, keys, strict=True)]
    pending = pending_of(vector, withdrawal_id="wd-1", raw={"withdrawalResponses": responses})
    with pytest.raises(SigningError, match="derived at index"):
        BchSigner().sign(pending, wrong, vector["testnet"])


@pytest.mark.parametrize("case", _cases("upstreamError"), ids=lambda c: c["expected"]["upstreamError"])
def test_bch_refuses_what_upstream_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(SigningError, match="absurd"):
        BchSigner().sign(pending_of(case), keys_of(case), case["testnet"])


@pytest.mark.parametrize("serialized", ["02000000000000000000:[50000]", "0100000000000000000000:[1]"])
def test_a_segwit_marker_with_flag_zero_is_refused(serialized: str) -> None:
    """Issue 15 item 8: bitcointx raises UnboundLocalError on these bytes; the parser refuses them as bad input."""
    from kms.signing.bch import parse_bch_serialized

    with pytest.raises(SigningError, match="does not parse"):
        parse_bch_serialized(serialized)
