"""EVM intents: native transfers, and ERC-20 ``transfer`` / ``transferFrom`` decoded from the call data.

The transaction is read with the chain signer's own parser (``kms.signing.evm_tx``) and rules. Any other call, a
contract creation, or a token call that also carries native value is an unknown intent. Addresses are written in the
canonical ``0x`` + lower-case hex form whatever prefix the chain prints (XDC: ``xdc``).
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from kms.api import PendingTransaction
from kms.approval.intent import (
    NATIVE,
    NATIVE_TRANSFER,
    TOKEN_TRANSFER,
    TOKEN_TRANSFER_FROM,
    Destination,
    Intent,
    network_name,
    unknown_intent,
)
from kms.chains.base import Chain
from kms.signing.evm_tx import EIP1559, EvmTxFields, ParseRules, parse_evm_transaction

TRANSFER = bytes.fromhex("a9059cbb")
"""ERC-20 ``transfer(address,uint256)``."""
TRANSFER_FROM = bytes.fromhex("23b872dd")
"""ERC-20 ``transferFrom(address,address,uint256)``."""


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    rules: ParseRules = signer._rules  # the signer's own parse rules, so the intent sees what it would sign
    fields = parse_evm_transaction(pending.serialized_transaction, rules)
    base = {
        "sender": _address(fields.sender) if fields.sender is not None else None,
        "fee": _max_fee(fields),
        "details": _details(fields),
    }
    if fields.to is None:
        return unknown_intent(chain.code, testnet, "contract creation", **base)
    if not fields.data:
        destination = Destination(_address(fields.to), fields.value, NATIVE)
        return Intent(chain.code, network_name(testnet), NATIVE_TRANSFER, destinations=(destination,), **base)
    if fields.value:
        return unknown_intent(chain.code, testnet, "contract call that also sends the native coin", **base)
    return _token_call(chain.code, testnet, fields, base)


def _token_call(code: str, testnet: bool, fields: EvmTxFields, base: dict[str, Any]) -> Intent:
    assert fields.to is not None
    selector, arguments = fields.data[:4], fields.data[4:]
    contract = _address(fields.to)
    details = {**base["details"], "contract": contract}
    try:
        if selector == TRANSFER and len(arguments) == 64:
            recipient, amount = abi_decode(["address", "uint256"], arguments)
            destination = Destination(recipient.lower(), amount, contract)
            return Intent(
                code,
                network_name(testnet),
                TOKEN_TRANSFER,
                sender=base["sender"],
                destinations=(destination,),
                fee=base["fee"],
                details=details,
            )
        if selector == TRANSFER_FROM and len(arguments) == 96:
            owner, recipient, amount = abi_decode(["address", "address", "uint256"], arguments)
            details["spender"] = base["sender"] or "the signing key"
            return Intent(
                code,
                network_name(testnet),
                TOKEN_TRANSFER_FROM,
                sender=owner.lower(),
                destinations=(Destination(recipient.lower(), amount, contract),),
                fee=base["fee"],
                details=details,
            )
    except DecodingError:
        return unknown_intent(code, testnet, "token call data does not decode strictly", **{**base, "details": details})
    return unknown_intent(
        code, testnet, f"contract call 0x{selector.hex()} is not a token transfer", **{**base, "details": details}
    )


def _address(raw: bytes) -> str:
    return "0x" + raw.hex()


def _max_fee(fields: EvmTxFields) -> int | None:
    """The most the transaction can pay in the native coin; None while the gas limit or price is to be looked up, or
    when fees are paid in a token (CELO fee currency)."""
    price = fields.max_fee_per_gas if fields.tx_type == EIP1559 else fields.gas_price
    if fields.gas is None or price is None or fields.fee_currency is not None:
        return None
    return fields.gas * price + fields.gateway_fee


def _details(fields: EvmTxFields) -> dict[str, str]:
    details = {"evmType": str(fields.tx_type)}
    if fields.nonce is not None:
        details["nonce"] = str(fields.nonce)
    if fields.chain_id is not None:
        details["chainId"] = str(fields.chain_id)
    if fields.fee_currency is not None:
        details["feeCurrency"] = _address(fields.fee_currency)
    return details
