"""Parsing the pending transactions the Tatum API hands to KMS, strictly.

Anything that is not of the documented shape is refused here, before a key is touched: a list whose items are
``{id, chain, serializedTransaction, hashes?, index?, signatures?: [{id, index}], withdrawalId?, txId?}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kms.api import MAX_INDEX, PendingTransaction, SignatureRef

MAX_ID = 200


@dataclass(frozen=True)
class Rejected:
    """An item that could not be used. ``pending_id`` is set when the item had a usable id (so the failure can be
    reported against it)."""

    pending_id: str | None
    reason: str


class _Bad(ValueError):
    pass


def _text(item: Mapping[str, Any], key: str, *, required: bool, limit: int | None = MAX_ID) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            raise _Bad(f"missing '{key}'")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Bad(f"'{key}' is not a non-empty string")
    if limit is not None and len(value) > limit:
        raise _Bad(f"'{key}' is too long")
    if limit is not None and not value.isprintable():
        raise _Bad(f"'{key}' has control characters")
    return value


def _index(value: Any, where: str) -> int | None:
    if value is None:
        return None
    # Upstream accepts only finite numbers (lodash isNumber + isFinite); JSON 3.0 is a whole number too.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"'{where}' is not a number")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _Bad(f"'{where}' is not a whole number")
        value = int(value)
    if not 0 <= value <= MAX_INDEX:
        raise _Bad(f"'{where}' is out of range 0..{MAX_INDEX}")
    return value


def _hashes(item: Mapping[str, Any]) -> tuple[str, ...]:
    value = item.get("hashes")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(h, str) and h and len(h) <= MAX_ID for h in value):
        raise _Bad("'hashes' is not a list of signatureIds")
    return tuple(value)


def _signatures(item: Mapping[str, Any]) -> tuple[SignatureRef, ...]:
    value = item.get("signatures")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad("'signatures' is not a list")
    refs = []
    for entry in value:
        if not isinstance(entry, dict):
            raise _Bad("'signatures' item is not an object")
        sid = _text(entry, "id", required=True)
        index = _index(entry.get("index"), "signatures[].index")
        if index is None:
            # Upstream: "Wrong usage of mnemonic-based signature id. No index provided for {id}."
            raise _Bad(f"Wrong usage of mnemonic-based signature id. No index provided for {sid}.")
        refs.append(SignatureRef(id=str(sid), index=index))
    return tuple(refs)


def parse_pending(item: Any, chain: str) -> PendingTransaction:
    """One pending transaction; raises ValueError with a one-line reason."""
    if not isinstance(item, dict):
        raise _Bad("item is not an object")
    pending_id = _text(item, "id", required=True)
    item_chain = _text(item, "chain", required=True)
    if str(item_chain).upper() != chain.upper():
        raise _Bad(f"chain '{item_chain}' does not match the polled chain {chain}")
    serialized = _text(item, "serializedTransaction", required=True, limit=None)
    hashes = _hashes(item)
    signatures = _signatures(item)
    if not hashes and not signatures:
        raise _Bad("names no wallet (no 'hashes', no 'signatures')")
    return PendingTransaction(
        id=str(pending_id),
        chain=chain.upper(),
        serialized_transaction=str(serialized),
        hashes=hashes,
        index=_index(item.get("index"), "index"),
        signatures=signatures,
        withdrawal_id=_text(item, "withdrawalId", required=False),
        tx_id=_text(item, "txId", required=False),
        raw=item,
    )


def parse_pending_list(body: Any, chain: str) -> tuple[list[PendingTransaction], list[Rejected]]:
    """Every usable pending transaction of ``body``, and what was refused. Raises ValueError when the body is not a
    list at all (the whole answer is unusable). A repeated id is kept once."""
    if not isinstance(body, list):
        raise ValueError(f"expected a list of pending transactions, got {type(body).__name__}")
    usable: list[PendingTransaction] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for item in body:
        try:
            pending = parse_pending(item, chain)
        except ValueError as exc:
            raw_id = item.get("id") if isinstance(item, dict) else None
            ok_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_ID and raw_id.isprintable() else None
            rejected.append(Rejected(pending_id=ok_id, reason=str(exc)))
            continue
        if pending.id in seen:
            continue
        seen.add(pending.id)
        usable.append(pending)
    return usable, rejected
