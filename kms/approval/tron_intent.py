"""TRON intents: TRX ``TransferContract`` and TRC-20 ``transfer(address,uint256)`` from ``TriggerSmartContract``.

The transaction JSON is read as the signer reads it (``kms.signing.tron``): its ``raw_data`` must re-encode to
``raw_data_hex`` and hash to ``txID``, so the fields named here are the bytes signed. Addresses are written as the
chain writes them (base58check ``T...``, ``kms.chains.tron``); amounts in sun (TRX) or token units. A transaction with
more than one contract, any other contract type, any other call, or a token call that also sends TRX is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from kms.api import PendingTransaction
from kms.approval.evm_intent import TRANSFER
from kms.approval.intent import NATIVE, NATIVE_TRANSFER, TOKEN_TRANSFER, Destination, Intent, network_name
from kms.approval.intent import unknown_intent as unknown
from kms.chains.base import Chain
from kms.chains.tron import address_text
from kms.errors import SigningError
from kms.signing.pending import parse_json_object
from kms.signing.tron import check_raw_data
from kms.signing.tron_protobuf import ADDRESS_PREFIX, address_bytes


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    tx = parse_json_object(pending.serialized_transaction, chain.code)
    check_raw_data(tx)
    raw_data = tx["raw_data"]
    contracts = raw_data.get("contract")
    if not isinstance(contracts, list) or len(contracts) != 1 or not isinstance(contracts[0], Mapping):
        return unknown(chain.code, testnet, "a TRON transaction with other than one contract")
    kind, value = contracts[0].get("type"), _value(contracts[0])
    base: dict[str, Any] = {"sender": _address(value, "owner_address"), "fee": _int(raw_data.get("fee_limit"))}
    base["memo"] = _memo(raw_data.get("data"))
    if kind == "TransferContract":
        destination = Destination(_address(value, "to_address"), _amount(value.get("amount")), NATIVE)
        return Intent(chain.code, network_name(testnet), NATIVE_TRANSFER, destinations=(destination,), **base)
    if kind == "TriggerSmartContract":
        return _token_call(chain.code, testnet, value, base)
    return unknown(chain.code, testnet, f"TRON contract type {str(kind)[:40]!r} is not a transfer", **base)


def _token_call(code: str, testnet: bool, value: Mapping[str, Any], base: dict[str, Any]) -> Intent:
    contract = _address(value, "contract_address")
    base = {**base, "details": {"contract": contract}}
    if _int(value.get("call_value")) or _int(value.get("call_token_value")):
        return unknown(code, testnet, "contract call that also sends TRX or a TRC-10 token", **base)
    data = value.get("data")
    call = bytes.fromhex(data) if isinstance(data, str) and _is_hex(data) else b""
    if call[:4] != TRANSFER or len(call) != 68:
        return unknown(code, testnet, f"contract call 0x{call[:4].hex()} is not a token transfer", **base)
    try:
        recipient, amount = abi_decode(["address", "uint256"], call[4:])
    except DecodingError:
        return unknown(code, testnet, "token call data does not decode strictly", **base)
    destination = Destination(address_text(bytes([ADDRESS_PREFIX]) + bytes.fromhex(recipient[2:])), amount, contract)
    return Intent(code, network_name(testnet), TOKEN_TRANSFER, destinations=(destination,), **base)


def _value(contract: Mapping[str, Any]) -> Mapping[str, Any]:
    parameter = contract.get("parameter")
    value = parameter.get("value") if isinstance(parameter, Mapping) else None
    if not isinstance(value, Mapping):
        raise SigningError("Invalid transaction: raw_data.contract[0].parameter.value is missing")
    return value


def _address(value: Mapping[str, Any], name: str) -> str:
    return address_text(address_bytes(value.get(name), name))  # InvalidTransaction: a SigningError, so unknown


def _amount(value: object) -> int:
    amount = _int(value)
    if amount is None or amount <= 0:
        raise SigningError("Invalid transaction: the TRX amount is not a positive integer")
    return amount


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _memo(data: object) -> str | None:
    """``raw_data.data``: the note tronweb carries as hex of UTF-8 text."""
    if not isinstance(data, str) or not data or not _is_hex(data):
        return None
    return bytes.fromhex(data).decode("utf-8", errors="replace")


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)
