"""Reading a small file an operator names (a policy, a pending transaction to explain) without reading more than
its limit: a file one byte over is refused, never read whole."""

from __future__ import annotations

from pathlib import Path

from kms.errors import UsageError


def read_bounded(path: Path, limit: int, name: str) -> bytes:
    """The bytes of ``path``; UsageError ``cannot read {name}: ...`` or ``{name} is larger than {limit} bytes``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    if len(raw) > limit:
        raise UsageError(f"{name} is larger than {limit} bytes")
    return raw
