"""The legacy Solana message of a SOL pending transaction, and the one property upstream's signing silently relies on.

Upstream (``@solana/web3.js`` 1.56) does ``Transaction.populate(Message.from(hex))`` and, once the blockhash is set,
recompiles the message (``compileMessage``): accounts of the instructions plus the program ids, merged, sorted signers
first, then writable, then by base58 text (``localeCompare``), fee payer moved to the front. For a message that
web3.js built (every one the Tatum API stores) that is the same message; for any other it would reorder or drop
accounts and sign something the stored bytes do not say. kms signs the stored message and refuses one that web3.js
would change.
"""

from __future__ import annotations

from typing import Any

from kms.errors import SigningError

_VERSION_PREFIX = 0x80


def parse_message(raw: bytes) -> Any:
    """The legacy message in ``raw``; SigningError for a versioned or undecodable message or trailing bytes."""
    from solders.message import Message

    if not raw:
        raise SigningError("SOL txData is empty")
    if raw[0] & _VERSION_PREFIX:
        raise SigningError("SOL txData is a versioned message; upstream signs legacy messages only")
    try:
        message = Message.from_bytes(raw)
    except Exception:
        raise SigningError("SOL txData is not a Solana message") from None
    if bytes(message) != raw:
        raise SigningError("SOL txData has bytes after the message")
    if message.header.num_required_signatures < 1:
        raise SigningError("SOL message names no fee payer")
    return message


def _base58_order(text: str) -> tuple[str, tuple[bool, ...]]:
    """ICU collation of base58 text (what ``localeCompare`` does): letters case-blind first, then lower before upper."""
    return text.lower(), tuple(char.isupper() for char in text)


def _is_writable(message: Any, index: int) -> bool:
    header = message.header
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < len(message.account_keys) - header.num_readonly_unsigned_accounts


def _account_metas(message: Any) -> dict[Any, list[bool]]:
    """pubkey -> [is_signer, is_writable], in web3.js's order of first appearance."""
    keys = message.account_keys
    signed = message.header.num_required_signatures
    metas: dict[Any, list[bool]] = {}
    program_ids: list[Any] = []

    def add(pubkey: Any, signer: bool, writable: bool) -> None:
        meta = metas.setdefault(pubkey, [signer, writable])
        meta[0] = meta[0] or signer
        meta[1] = meta[1] or writable

    for instruction in message.instructions:
        for index in instruction.accounts:
            add(keys[index], index < signed, _is_writable(message, index))
        program_id = keys[instruction.program_id_index]
        if program_id not in program_ids:
            program_ids.append(program_id)
    for program_id in program_ids:
        add(program_id, False, False)
    return metas


def check_upstream_order(message: Any) -> None:
    """SigningError unless web3.js ``compileMessage`` would give back this very message."""
    from solders.instruction import CompiledInstruction

    keys = list(message.account_keys)
    if len(set(keys)) != len(keys):
        raise SigningError("SOL message lists an account twice")
    if any(i.program_id_index >= len(keys) or any(a >= len(keys) for a in i.accounts) for i in message.instructions):
        raise SigningError("SOL message refers to an account it does not list")
    metas = _account_metas(message)
    ordered = sorted(metas.items(), key=lambda item: (not item[1][0], not item[1][1], _base58_order(str(item[0]))))
    fee_payer = keys[0]
    ordered = [(fee_payer, [True, True])] + [item for item in ordered if item[0] != fee_payer]
    signers = [item for item in ordered if item[1][0]]
    others = [item for item in ordered if not item[1][0]]
    account_keys = [pubkey for pubkey, _ in signers + others]
    header = (
        len(signers),
        sum(1 for _, (_, writable) in signers if not writable),
        sum(1 for _, (_, writable) in others if not writable),
    )
    position = {pubkey: index for index, pubkey in enumerate(account_keys)}
    instructions = [
        CompiledInstruction(position[keys[i.program_id_index]], i.data, bytes(position[keys[a]] for a in i.accounts))
        for i in message.instructions
    ]
    given = message.header
    given_header = (
        given.num_required_signatures,
        given.num_readonly_signed_accounts,
        given.num_readonly_unsigned_accounts,
    )
    if header != given_header or account_keys != keys or instructions != list(message.instructions):
        raise SigningError("SOL message is not in the account order upstream's signer would sign; refused")
