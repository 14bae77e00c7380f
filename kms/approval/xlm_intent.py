"""XLM intents: a transaction of one ``payment`` (or ``createAccount``, which pays the starting balance) operation.

The envelope is read as the signer reads it (``kms.signing.xlm``, the network passphrase of ``--testnet``).
Amounts are in stroops (Stellar's 7 decimal places, for issued assets too); the asset is ``native`` or
``CODE:ISSUER``; the memo is the transaction's (text, id, hash or return hash). More than one operation, or any other
operation, is an unknown intent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import NATIVE, NATIVE_TRANSFER, TOKEN_TRANSFER, Destination, Intent, network_name
from kms.approval.intent import unknown_intent as unknown
from kms.chains.base import Chain
from kms.signing.xlm import parse_envelope

STROOPS_PER_UNIT = 10**7


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    from stellar_sdk import CreateAccount, Payment

    transaction = parse_envelope(pending, signer.passphrases[bool(testnet)], chain.code).transaction
    operations = transaction.operations
    base: dict[str, Any] = {"sender": transaction.source.account_id, "fee": int(transaction.fee)}
    base["memo"] = _memo(transaction.memo)
    if len(operations) != 1:
        return unknown(chain.code, testnet, f"an XLM transaction of {len(operations)} operations", **base)
    [operation] = operations
    if operation.source is not None:
        base["sender"] = operation.source.account_id
    network = network_name(testnet)
    if isinstance(operation, Payment):
        asset = NATIVE if operation.asset.is_native() else f"{operation.asset.code}:{operation.asset.issuer}"
        destination = Destination(operation.destination.account_id, _stroops(operation.amount), asset)
        kind = NATIVE_TRANSFER if asset == NATIVE else TOKEN_TRANSFER
        return Intent(chain.code, network, kind, destinations=(destination,), **base)
    if isinstance(operation, CreateAccount):
        destination = Destination(operation.destination, _stroops(operation.starting_balance), NATIVE)
        details = {"operation": "createAccount"}
        return Intent(chain.code, network, NATIVE_TRANSFER, destinations=(destination,), details=details, **base)
    return unknown(chain.code, testnet, f"XLM operation {type(operation).__name__} is not a payment", **base)


def _stroops(amount: str | Decimal) -> int:
    return int(Decimal(amount) * STROOPS_PER_UNIT)  # the SDK parsed it from int64 stroops: exact


def _memo(memo: Any) -> str | None:
    from stellar_sdk import HashMemo, IdMemo, ReturnHashMemo, TextMemo

    if isinstance(memo, TextMemo):
        return memo.memo_text.decode("utf-8", errors="replace")
    if isinstance(memo, IdMemo):
        return str(memo.memo_id)
    if isinstance(memo, HashMemo | ReturnHashMemo):
        return memo.memo_hash.hex()
    return None
