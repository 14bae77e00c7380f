"""Intent decoding: upstream's vectors (the decoded destinations and amounts equal what the signed transaction in
the vector holds, read back with independent libraries), ERC-20 calls, and what stays an unknown intent."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rlp
from bip_utils import Base58Decoder, BchBech32Decoder, SegwitBech32Decoder
from bitcointx.core import CTransaction
from eth_abi import encode as abi_encode

from kms.api import PendingTransaction
from kms.approval.decoders import decode_intent, families, family_of
from kms.approval.intent import (
    NATIVE,
    NATIVE_TRANSFER,
    TOKEN_TRANSFER,
    TOKEN_TRANSFER_FROM,
    UNKNOWN,
    UTXO_TRANSFER,
    payload_digest,
)
from kms.chains import get_chain
from tests.conftest import load_vectors

TOKEN = "0xdac17f958d2ee523a2206206994597c13d831ec7"
ALICE = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
BOB = "0x1111111111111111111111111111111111111111"


def pending_of(raw: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction(
        id=raw["id"],
        chain=raw["chain"],
        serialized_transaction=raw["serializedTransaction"],
        hashes=tuple(raw.get("hashes") or ()),
        raw=raw,
    )


def evm_pending(**fields: Any) -> PendingTransaction:
    tx = {"gasPrice": "20000000000", "gas": "60000", "nonce": 3, "chainId": 11155111, **fields}
    return PendingTransaction(id="p-evm", chain="ETH", serialized_transaction=json.dumps(tx), hashes=("w",))


# -- upstream's vectors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", load_vectors("daemon-eth.json"), ids=lambda v: v["description"][:40])
def test_eth_vector_destination_and_amount_are_those_of_the_signed_transaction(vector: dict[str, Any]) -> None:
    intent = decode_intent(pending_of(vector["input"]["pending"]), vector["testnet"])
    _nonce, gas_price, gas, to, value, data, *_ = rlp.decode(bytes.fromhex(vector["expected"]["txData"][2:]))
    assert intent.type == NATIVE_TRANSFER and intent.network == "testnet" and intent.chain == "ETH"
    [destination] = intent.destinations
    assert destination.address == "0x" + to.hex()
    assert destination.amount == int.from_bytes(value, "big")
    assert destination.asset == NATIVE and data == b""
    assert intent.fee == int.from_bytes(gas, "big") * int.from_bytes(gas_price, "big")


def _address_hash(chain: str, address: str) -> bytes:
    """The key or script hash an address names, decoded independently of kms."""
    if chain == "BCH":
        return BchBech32Decoder.Decode(address.split(":")[0], address)[1]
    if chain == "BTC":
        return SegwitBech32Decoder.Decode("bc" if address.startswith("bc1") else "tb", address)[1]
    return Base58Decoder.CheckDecode(address)[1:]


UTXO_VECTORS = [
    pytest.param(v, id=f"{v['chain']}-{v['description'][:30]}")
    for name in ("signing-btc.json", "signing-ltc.json", "signing-doge.json", "signing-bch.json")
    for v in load_vectors(name)
]


@pytest.mark.parametrize("vector", UTXO_VECTORS)
def test_utxo_vector_outputs_are_the_signed_transactions_outputs(vector: dict[str, Any]) -> None:
    chain = vector["chain"]
    intent = decode_intent(pending_of(vector["input"]["pending"]), vector["testnet"])
    signed = CTransaction.deserialize(bytes.fromhex(vector["expected"]["txData"]))
    assert intent.type == UTXO_TRANSFER and intent.chain == chain
    assert len(intent.destinations) == len(signed.vout)
    for destination, output in zip(intent.destinations, signed.vout, strict=True):
        assert destination.amount == output.nValue
        assert _address_hash(chain, destination.address) in bytes(output.scriptPubKey)
        get_chain(chain).validate_address(destination.address, vector["testnet"])
    key_addresses = {k["address"] for k in vector["input"]["keys"]}
    if chain == "BCH":
        amounts = sum(k["amount"] for k in vector["input"]["keys"])
        assert intent.sender is None, "BCH's format carries no spent scripts"
    else:
        spent = json.loads(vector["input"]["pending"]["serializedTransaction"])["inputs"]
        amounts = sum(i["output"]["satoshis"] for i in spent)
        assert set(intent.sender.split(",")) == key_addresses
        for destination in intent.destinations:
            assert destination.change == (destination.address in key_addresses)
    assert intent.fee == amounts - sum(o.nValue for o in signed.vout)


def test_btc_change_is_not_a_payment() -> None:
    vector = load_vectors("signing-btc.json")[0]
    intent = decode_intent(pending_of(vector["input"]["pending"]), vector["testnet"])
    assert intent.totals() == {NATIVE: 25000}
    assert [d.address for d in intent.payments()] == ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"]


def test_op_return_is_the_memo_and_not_a_destination() -> None:
    vector = load_vectors("signing-ltc.json")[0]
    raw = dict(vector["input"]["pending"])
    tx = json.loads(raw["serializedTransaction"])
    tx.pop("hash")
    tx["outputs"].append({"satoshis": 0, "script": "6a0568656c6c6f"})  # OP_RETURN "hello"
    raw["serializedTransaction"] = json.dumps(tx)
    intent = decode_intent(pending_of(raw), False)
    assert intent.memo == "hello"
    assert len(intent.destinations) == 2


def test_output_to_a_script_without_address_is_unknown() -> None:
    vector = load_vectors("signing-ltc.json")[0]
    raw = dict(vector["input"]["pending"])
    tx = json.loads(raw["serializedTransaction"])
    tx.pop("hash")
    tx["outputs"][0]["script"] = "51"  # OP_TRUE: anyone can spend, no address
    raw["serializedTransaction"] = json.dumps(tx)
    intent = decode_intent(pending_of(raw), False)
    assert intent.type == UNKNOWN and "no address" in (intent.unknown_reason or "")


# -- EVM calls ------------------------------------------------------------------------------------------------------


def test_erc20_transfer_names_recipient_amount_and_token() -> None:
    data = "0xa9059cbb" + abi_encode(["address", "uint256"], [BOB, 10**30]).hex()
    intent = decode_intent(evm_pending(to=TOKEN, data=data), True)
    assert intent.type == TOKEN_TRANSFER
    [destination] = intent.destinations
    assert (destination.address, destination.amount, destination.asset) == (BOB, 10**30, TOKEN)
    assert intent.details["contract"] == TOKEN
    assert intent.totals() == {TOKEN: 10**30}


def test_erc20_transfer_from_names_the_owner_as_sender() -> None:
    data = "0x23b872dd" + abi_encode(["address", "address", "uint256"], [ALICE, BOB, 5]).hex()
    intent = decode_intent(evm_pending(to=TOKEN.upper().replace("0X", "0x"), data=data), True)
    assert intent.type == TOKEN_TRANSFER_FROM
    assert intent.sender == ALICE
    assert [(d.address, d.amount, d.asset) for d in intent.destinations] == [(BOB, 5, TOKEN)]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"data": "0x6080"}, "contract creation"),
        ({"to": TOKEN, "data": "0x095ea7b3" + "00" * 64}, "not a token transfer"),  # approve()
        ({"to": TOKEN, "data": "0xa9059cbb" + "00" * 63}, "not a token transfer"),  # short arguments
        ({"to": TOKEN, "data": "0xa9059cbb" + "01" * 64}, "does not decode strictly"),  # dirty address padding
        ({"to": TOKEN, "value": "1", "data": "0xa9059cbb" + "00" * 64}, "also sends the native coin"),
        ({"to": ALICE, "value": "1", "accessList": [1]}, "not decodable"),
    ],
)
def test_evm_calls_that_are_not_plain_transfers_are_unknown(fields: dict[str, Any], reason: str) -> None:
    intent = decode_intent(evm_pending(**fields), True)
    assert intent.type == UNKNOWN and not intent.known
    assert reason in (intent.unknown_reason or "")
    assert intent.destinations == ()


def test_fee_is_unknown_while_the_gas_price_is_to_be_looked_up() -> None:
    pending = PendingTransaction(
        id="p", chain="ETH", serialized_transaction=json.dumps({"to": ALICE, "value": "7"}), hashes=("w",)
    )
    intent = decode_intent(pending, False)
    assert intent.type == NATIVE_TRANSFER and intent.fee is None and intent.network == "mainnet"


def test_chains_without_a_decoder_and_unknown_chains_are_unknown_intents() -> None:
    algo = PendingTransaction(id="s", chain="ALGO", serialized_transaction="{}", hashes=("w",))
    assert decode_intent(algo, False).unknown_reason == "no intent decoder for ALGO transactions yet"
    other = PendingTransaction(id="x", chain="NOPE", serialized_transaction="{}", hashes=("w",))
    assert decode_intent(other, False).type == UNKNOWN


def test_families_come_from_the_chains_signers() -> None:
    assert set(families()) >= {"evm", "bitcore", "bch"}
    assert family_of(get_chain("MATIC")).name == "evm"
    assert family_of(get_chain("DOGE")).name == "bitcore"
    assert family_of(get_chain("BCH")).name == "bch"


def test_intent_json_and_payload_digest() -> None:
    intent = decode_intent(evm_pending(to=ALICE, value="1000"), True).with_payload(payload_digest("0xf86a"))
    document = intent.as_json()
    assert document["payloadSha256"] == hashlib.sha256(b"0xf86a").hexdigest()
    assert document["destinations"] == [{"address": ALICE, "amount": "1000", "asset": "native", "change": False}]
    json.dumps(document)  # every field is JSON
