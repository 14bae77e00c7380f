"""TRON, XLM, XRP and SOL intents against the part-2 signing vectors: the decoded destination and amount are those
the vector's transaction holds, read back independently with the chain's own library (tronpy's protobuf definitions,
stellar-sdk, xrpl-py's binary codec, solders); and what is not a plain transfer is an unknown intent."""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
import tronpy.proto.tron_pb2 as tron_pb2
from eth_abi import decode as abi_decode
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from stellar_sdk import TransactionEnvelope
from stellar_sdk import xdr as stellar_xdr
from tronpy.keys import to_base58check_address
from xrpl.core.binarycodec import decode as xrpl_decode
from xrpl.core.binarycodec import encode as xrpl_encode

from kms.approval.decoders import decode_intent, family_of
from kms.approval.intent import NATIVE, NATIVE_TRANSFER, TOKEN_TRANSFER, UNKNOWN
from kms.chains import get_chain
from kms.chains.xlm import network_passphrase
from kms.signing.tron_protobuf import encode_raw_data
from tests.approval.test_approval_intent import pending_of
from tests.conftest import load_vectors


def vectors(chain: str) -> list[dict[str, Any]]:
    return [v for v in load_vectors(f"signing-{chain}.json") if not v["description"].startswith("ERROR")]


def decoded(vector: dict[str, Any]) -> Any:
    return decode_intent(pending_of(vector["input"]["pending"]), vector["testnet"])


def test_the_four_families_come_from_their_signers() -> None:
    assert [family_of(get_chain(code)).name for code in ("TRON", "XLM", "XRP", "SOL")] == ["tron", "xlm", "xrp", "sol"]


@pytest.mark.parametrize("vector", vectors("tron"), ids=lambda v: v["description"][:40])
def test_tron_vector_is_what_tronpy_reads_from_raw_data_hex(vector: dict[str, Any]) -> None:
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    raw = tron_pb2.Transaction.raw.FromString(bytes.fromhex(tx["raw_data_hex"]))
    [contract] = raw.contract
    intent = decoded(vector)
    [destination] = intent.destinations
    if contract.type == tron_pb2.Transaction.Contract.TransferContract:
        value = tron_pb2.TransferContract()
        contract.parameter.Unpack(value)
        assert intent.type == NATIVE_TRANSFER and destination.asset == NATIVE
        assert destination.address == to_base58check_address(value.to_address.hex())
        assert destination.amount == value.amount
        assert intent.sender == to_base58check_address(value.owner_address.hex())
    else:
        call = tron_pb2.TriggerSmartContract()
        contract.parameter.Unpack(call)
        recipient, amount = abi_decode(["address", "uint256"], call.data[4:])
        assert intent.type == TOKEN_TRANSFER and intent.fee == raw.fee_limit
        assert destination.asset == to_base58check_address(call.contract_address.hex())
        assert destination.address == to_base58check_address("41" + recipient[2:])
        assert destination.amount == amount
        assert intent.sender == to_base58check_address(call.owner_address.hex())


@pytest.mark.parametrize("vector", vectors("xlm"), ids=lambda v: v["description"][:40])
def test_xlm_vector_is_what_the_xdr_holds(vector: dict[str, Any]) -> None:
    text = vector["input"]["pending"]["serializedTransaction"]
    envelope = stellar_xdr.TransactionEnvelope.from_xdr_bytes(base64.b64decode(text))
    [operation] = envelope.v1.tx.operations
    body = operation.body.payment_op or operation.body.create_account_op
    intent = decoded(vector)
    [destination] = intent.destinations
    read = TransactionEnvelope.from_xdr(text, network_passphrase(vector["testnet"])).transaction.operations[0]
    if operation.body.payment_op is not None:
        assert destination.address == read.destination.account_id
        assert destination.amount == body.amount.int64
    else:
        assert destination.address == read.destination
        assert destination.amount == body.starting_balance.int64
        assert intent.details["operation"] == "createAccount"
    assert destination.asset == NATIVE and intent.type == NATIVE_TRANSFER
    memo = envelope.v1.tx.memo.text
    assert intent.memo == (memo.decode() if memo is not None else None)


@pytest.mark.parametrize("vector", vectors("xrp"), ids=lambda v: v["description"][:40])
def test_xrp_vector_is_what_the_binary_codec_reads_back(vector: dict[str, Any]) -> None:
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    read_back = xrpl_decode(xrpl_encode(tx))
    intent = decoded(vector)
    [destination] = intent.destinations
    assert destination.address == read_back["Destination"] and intent.sender == read_back["Account"]
    amount = read_back["Amount"]
    if isinstance(amount, str):
        assert (destination.asset, destination.amount) == (NATIVE, int(amount))
    else:
        assert destination.asset == f"{amount['currency']}:{amount['issuer']}"
        assert Decimal(destination.amount).scaleb(-int(intent.details["amountDecimals"])) == Decimal(amount["value"])
    assert intent.memo == (str(read_back["DestinationTag"]) if "DestinationTag" in read_back else None)


@pytest.mark.parametrize("vector", vectors("sol"), ids=lambda v: v["description"][:40])
def test_sol_vector_is_the_system_transfer_solders_reads(vector: dict[str, Any]) -> None:
    document = json.loads(vector["input"]["pending"]["serializedTransaction"])
    message = Message.from_bytes(bytes.fromhex(document["txData"]))
    [compiled] = message.instructions
    data = bytes(compiled.data)
    assert int.from_bytes(data[:4], "little") == 2  # the System Program's Transfer
    intent = decoded(vector)
    [destination] = intent.destinations
    keys = message.account_keys
    assert destination.address == str(keys[compiled.accounts[1]])
    assert destination.amount == int.from_bytes(data[4:12], "little")
    assert intent.sender == str(keys[compiled.accounts[0]]) and intent.type == NATIVE_TRANSFER


def test_sol_messages_that_are_not_one_transfer_are_unknown() -> None:
    payer, payee = Pubkey.new_unique(), Pubkey.new_unique()
    pay = transfer(TransferParams(from_pubkey=payer, to_pubkey=payee, lamports=7))
    for instructions, reason in (([pay, pay], "2 instructions"), ([_memo_instruction(payer)], "another program")):
        message = Message(instructions, payer)
        serialized = json.dumps({"txData": bytes(message).hex()})
        intent = decode_intent(pending_of(_raw("SOL", serialized)), True)
        assert intent.type == UNKNOWN and reason in (intent.unknown_reason or "")


def test_xrp_types_and_payments_that_may_deliver_otherwise_are_unknown() -> None:
    [vector] = vectors("xrp")[:1]
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    for changed, reason in (
        ({"TransactionType": "TrustSet"}, "not a payment"),
        ({"SendMax": "13000000"}, "may deliver less"),
        ({"Flags": 0x00020000}, "may deliver less"),
        ({"Amount": {"currency": "USD", "issuer": tx["Account"], "value": "1e-16"}}, "finer than"),
    ):
        intent = decode_intent(pending_of(_raw("XRP", json.dumps({**tx, **changed}))), True)
        assert intent.type == UNKNOWN and reason in (intent.unknown_reason or ""), changed
    tagged = decode_intent(pending_of(_raw("XRP", json.dumps({**tx, "DestinationTag": 42}))), True)
    assert tagged.memo == "42"


def test_tron_calls_that_are_not_token_transfers_are_unknown() -> None:
    [_, token] = vectors("tron")[:2]
    tx = json.loads(token["input"]["pending"]["serializedTransaction"])
    tx["raw_data"]["contract"][0]["parameter"]["value"]["data"] = "095ea7b3" + "00" * 64  # approve(...)
    tampered = decode_intent(pending_of(_raw("TRON", json.dumps(tx))), True)
    assert tampered.type == UNKNOWN and "Invalid transaction" in (tampered.unknown_reason or "")
    encoded = encode_raw_data(tx["raw_data"])  # made consistent again: a well-formed approve call
    tx["raw_data_hex"], tx["txID"] = encoded.hex(), hashlib.sha256(encoded).hexdigest()
    approve = decode_intent(pending_of(_raw("TRON", json.dumps(tx))), True)
    assert approve.type == UNKNOWN and approve.unknown_reason == "contract call 0x095ea7b3 is not a token transfer"


def _memo_instruction(signer: Pubkey) -> Any:
    from solders.instruction import AccountMeta, Instruction

    return Instruction(Pubkey.new_unique(), b"hello", [AccountMeta(signer, True, True)])


def _raw(chain: str, serialized: str) -> dict[str, Any]:
    return {"id": "p-part2", "chain": chain, "serializedTransaction": serialized, "hashes": ["w"]}
