"""What every signer checks before it reads a pending transaction: the chain, the number of keys, and (for chains
whose ``serializedTransaction`` is JSON) a strict, bounded parse.

The JSON parse is stricter than upstream's ``JSON.parse`` on purpose: a duplicate key, a fraction or an integer that
a JavaScript number cannot hold exactly would make upstream sign something other than what the text says, so such
text is refused instead of being guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any, NoReturn

from kms.api import PendingTransaction
from kms.errors import SigningError
from kms.keys import KeyHandle

MAX_SERIALIZED_CHARS = 256 * 1024
"""No pending transaction of these chains comes near this; anything longer is refused unread."""
JS_SAFE_INTEGER = 2**53 - 1


class _Refused(ValueError):
    pass


def check_chain(pending: PendingTransaction, code: str) -> None:
    if not isinstance(pending.chain, str) or pending.chain.strip().upper() != code:
        raise SigningError(f"pending transaction {pending.id!r} is not a {code} transaction")
    if not isinstance(pending.serialized_transaction, str) or not pending.serialized_transaction:
        raise SigningError(f"pending transaction {pending.id!r} has no serializedTransaction")
    if len(pending.serialized_transaction) > MAX_SERIALIZED_CHARS:
        raise SigningError(f"{code} serializedTransaction is longer than {MAX_SERIALIZED_CHARS} characters")


def single_key(code: str, keys: Sequence[KeyHandle]) -> KeyHandle:
    """Upstream signs these chains with ``wallets[0]`` only; a second key would be silently unused, so it is refused."""
    if len(keys) != 1:
        raise SigningError(f"{code} transactions are signed with exactly one key, got {len(keys)}")
    return keys[0]


def one_key_of_chain(pending: PendingTransaction, keys: Sequence[KeyHandle], code: str) -> KeyHandle:
    """The single-key rule and the chain check with the wording of the chains whose ``serializedTransaction`` is read
    with ``plain_json`` (ALGO, EGLD, VET)."""
    if len(keys) != 1:
        raise SigningError(f"{code} transaction: expected one signing key, got {len(keys)}")
    if pending.chain != code:
        raise SigningError(f"pending transaction is for chain {str(pending.chain)[:16]!r}, not {code}")
    return keys[0]


def plain_json(text: object, limit: int, label: str, too_large: str) -> Any:
    """``text`` parsed as plain ``json.loads`` does (no stricter rules), refused unread above ``limit`` characters.
    The errors read ``{label} serializedTransaction {too_large}`` and ``... is not valid JSON``."""
    if not isinstance(text, str) or len(text) > limit:
        raise SigningError(f"{label} serializedTransaction {too_large}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise SigningError(f"{label} serializedTransaction is not valid JSON") from None


def plain_json_fields(
    pending: PendingTransaction, code: str, limit: int, allowed: Collection[str], unsupported_note: str = ""
) -> dict[str, Any]:
    """The ``plain_json`` object of ALGO, EGLD and VET pending transactions, holding no field outside ``allowed``."""
    fields = plain_json(pending.serialized_transaction, limit, f"{code} transaction:", "is not text of a sensible size")
    if not isinstance(fields, dict):
        raise SigningError(f"{code} transaction: serializedTransaction is not a JSON object")
    unknown = set(fields) - set(allowed)
    if unknown:
        raise SigningError(f"{code} transaction: unsupported fields {sorted(unknown)[:5]}{unsupported_note}")
    return fields


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def _integer(text: str) -> int:
    value = int(text)
    if abs(value) > JS_SAFE_INTEGER:
        raise _Refused("an integer beyond 2^53")
    return value


def _no_float(text: str) -> NoReturn:
    raise _Refused("a non-integer number")


def parse_json_object(text: str, code: str) -> dict[str, Any]:
    """The JSON object in ``text``, key order kept; SigningError naming the first thing that is wrong with it."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_integer,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except _Refused as exc:
        raise SigningError(f"{code} serializedTransaction holds {exc}") from None
    except (ValueError, RecursionError):
        raise SigningError(f"{code} serializedTransaction is not valid JSON") from None
    if not isinstance(value, dict):
        raise SigningError(f"{code} serializedTransaction is not a JSON object")
    return value


def js_json(value: Any) -> str:
    """``JSON.stringify(value)`` for what ``parse_json_object`` accepts (strings, integers, booleans, null, arrays,
    objects): no spaces, key order as parsed, non-ASCII kept as is."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JavaScript would escape it, Python would not; refuse the doubt
        raise SigningError("the transaction holds text that is not valid Unicode") from None
    return text
