"""Parsing JSON that comes from outside kms (the Tatum API, approval servers, node gateways, pending transactions'
``serializedTransaction``), bounded in size and nesting depth before the parser sees it.

The depth is measured by a scan that does not recurse, so a nesting bomb is refused without the parser ever
descending into it: Python's parser recurses per level, and with a raised recursion limit (see kms.recursion) a deep
enough input overflows the C stack instead of raising.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from kms.errors import UntrustedJsonError

DEFAULT_MAX_DEPTH = 32
"""Deeper than anything a pending transaction, an approval answer or a node answer legitimately nests."""

# A JSON string (escapes included) or a bracket; brackets inside strings are consumed with their string.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset("[{")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``; brackets inside strings do not count. For text that is
    not JSON the figure is never below what a parser would reach before failing."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth = max(0, depth - 1)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_bounded(
    data: str | bytes | bytearray,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    what: str = "answer",
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """``json.loads`` for outside input. ``max_bytes`` caps the size (UTF-8 bytes; characters for ``str``);
    NaN and Infinity are refused. Raises UntrustedJsonError (one line, naming ``what``); exceptions raised by
    ``object_pairs_hook`` other than ValueError pass through."""
    if isinstance(data, bytes | bytearray):
        if len(data) > max_bytes:
            raise UntrustedJsonError(f"{what} is too large ({len(data)} bytes, at most {max_bytes})")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise UntrustedJsonError(f"{what} is not UTF-8 text") from None
    elif isinstance(data, str):
        text = data
        if len(text) > max_bytes:
            raise UntrustedJsonError(f"{what} is too large ({len(text)} characters, at most {max_bytes})")
    else:
        raise UntrustedJsonError(f"{what} is not text")
    # The number of openers bounds the depth: most answers need no scan at all.
    openers = text.count("[") + text.count("{")
    depth = nesting_depth(text) if openers > max_depth else openers
    if depth > max_depth:
        raise UntrustedJsonError(f"{what} is nested too deeply ({depth} levels, at most {max_depth})")
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=object_pairs_hook)
    except (ValueError, RecursionError):
        raise UntrustedJsonError(f"{what} is not valid JSON") from None


__all__ = ["DEFAULT_MAX_DEPTH", "loads_bounded", "nesting_depth"]
