"""SOL intents: a message of one System Program ``transfer`` (lamports). Anything else is an unknown intent.

The message is read as the signer reads it (``kms.signing.sol``); the blockhash the signer puts in later changes no
instruction. The transfer is decoded by solders' own System Program decoder. ``details.feePayer`` is the first
account, who pays the fee (looked up by the node, so ``fee`` stays unknown).
"""

from __future__ import annotations

from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import NATIVE, NATIVE_TRANSFER, Destination, Intent, network_name
from kms.approval.intent import unknown_intent as unknown
from kms.chains.base import Chain
from kms.signing.sol import parse_pending


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    from solders.system_program import ID as SYSTEM_PROGRAM

    message, mint = parse_pending(pending, chain.code)
    keys = list(message.account_keys)
    details = {"feePayer": str(keys[0])} if keys else {}
    if mint is not None:
        return unknown(chain.code, testnet, "a SOL transaction that also signs with a mint key", details=details)
    if len(message.instructions) != 1:
        reason = f"a SOL message of {len(message.instructions)} instructions"
        return unknown(chain.code, testnet, reason, details=details)
    [compiled] = message.instructions
    if keys[compiled.program_id_index] != SYSTEM_PROGRAM:
        return unknown(chain.code, testnet, "a SOL instruction of another program than System", details=details)
    transfer = _system_transfer(message, compiled)
    if transfer is None:
        return unknown(chain.code, testnet, "a System Program instruction that is not a transfer", details=details)
    destination = Destination(str(transfer["to_pubkey"]), int(transfer["lamports"]), NATIVE)
    return Intent(
        chain.code, network_name(testnet), NATIVE_TRANSFER, sender=str(transfer["from_pubkey"]),
        destinations=(destination,), details=details,
    )  # fmt: skip


def _system_transfer(message: Any, compiled: Any) -> dict[str, Any] | None:
    from solders.instruction import AccountMeta, Instruction
    from solders.system_program import decode_transfer

    keys = message.account_keys
    accounts = [
        AccountMeta(keys[index], message.is_signer(index), _is_writable(message, index)) for index in compiled.accounts
    ]
    try:
        return dict(decode_transfer(Instruction(keys[compiled.program_id_index], bytes(compiled.data), accounts)))
    except Exception:  # solders raises its own error types for other instructions
        return None


def _is_writable(message: Any, index: int) -> bool:
    """From the message header, as the runtime reads it: writable signers first, then writable others."""
    header = message.header
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < len(message.account_keys) - header.num_readonly_unsigned_accounts
