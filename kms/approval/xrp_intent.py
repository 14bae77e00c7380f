"""XRP intents: a ``Payment`` of XRP (drops) or of an issued currency (``CURRENCY:ISSUER``), ``DestinationTag`` as
the memo.

The transaction JSON is read as the signer reads it (``kms.signing.xrp``). An issued-currency amount is a decimal;
it is written in units of 10^-15 (``details.amountDecimals``), and one finer than that is an unknown intent. A
payment that may deliver less or another currency (``SendMax``, ``Paths``, ``DeliverMin``, the partial-payment flag)
is an unknown intent, as is every other transaction type.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import NATIVE, NATIVE_TRANSFER, TOKEN_TRANSFER, Destination, Intent, network_name
from kms.approval.intent import unknown_intent as unknown
from kms.chains.base import Chain
from kms.errors import SigningError
from kms.signing.xrp import parse_transaction

ISSUED_DECIMALS = 15
TF_PARTIAL_PAYMENT = 0x00020000
_NOT_PLAIN = ("SendMax", "Paths", "DeliverMin")


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    tx = parse_transaction(pending, chain.code)
    tag = tx.get("DestinationTag")
    base: dict[str, Any] = {"sender": tx["Account"], "fee": _drops(tx.get("Fee")) if "Fee" in tx else None}
    base["memo"] = str(tag) if isinstance(tag, int) and not isinstance(tag, bool) else None
    kind = tx["TransactionType"]
    if kind != "Payment":
        return unknown(chain.code, testnet, f"XRP transaction type {kind[:40]!r} is not a payment", **base)
    flags = tx.get("Flags", 0)
    if any(name in tx for name in _NOT_PLAIN) or not isinstance(flags, int) or flags & TF_PARTIAL_PAYMENT:
        return unknown(chain.code, testnet, "an XRP payment that may deliver less or another currency", **base)
    destination, amount = tx.get("Destination"), tx.get("Amount")
    if not isinstance(destination, str):
        raise SigningError("XRP Payment has no Destination")
    network = network_name(testnet)
    if isinstance(amount, str):
        paid = Destination(destination, _drops(amount), NATIVE)
        return Intent(chain.code, network, NATIVE_TRANSFER, destinations=(paid,), **base)
    if isinstance(amount, dict) and {"currency", "issuer", "value"} <= set(amount):
        units = _issued_units(amount["value"])
        if units is None:
            return unknown(chain.code, testnet, "an issued amount finer than 10^-15 or not a number", **base)
        paid = Destination(destination, units, f"{amount['currency']}:{amount['issuer']}")
        details = {"amountDecimals": str(ISSUED_DECIMALS)}
        return Intent(chain.code, network, TOKEN_TRANSFER, destinations=(paid,), details=details, **base)
    raise SigningError("XRP Payment has no Amount")


def _drops(value: object) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise SigningError("XRP amount in drops is not a whole number")
    return int(value)


def _issued_units(value: object) -> int | None:
    try:
        scaled = Decimal(str(value)).scaleb(ISSUED_DECIMALS)
    except InvalidOperation:
        return None
    if not scaled.is_finite() or scaled != scaled.to_integral_value() or scaled <= 0:
        return None
    return int(scaled)
