"""Keeping Python's recursion limit where the interpreter's C stack can honour it.

py_ecc (pulled in by eth_account through eth_keyfile) raises the limit to 100,000 when imported. With that limit a
deeply nested input no longer raises RecursionError in C-accelerated parsers: it overflows the C stack and the
process dies with SIGSEGV. Imports of such libraries go through ``imports_keeping_recursion_limit``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_keeping_recursion_limit() -> Iterator[None]:
    """Put the recursion limit back to what it was before the imports in the ``with`` block."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


__all__ = ["imports_keeping_recursion_limit"]
