"""Key handles: the one small place where raw private-key bytes are held (the ``hazmat`` of kms).

Everything above this module holds signatureIds and ``KeyHandle`` objects. A signer gets a key's raw bytes only inside
``with handle.raw() as key:``; the bytes live in a ``SecretBuffer`` (mlocked where the OS allows) and are wiped when
the handle is wiped. What "raw" means is the chain's own decision, made once in its chain module: the 32-byte
secp256k1 scalar (EVM, UTXO, TRON, VET, FLOW), the 32-byte ed25519 seed (SOL, XLM, ALGO, EGLD), the XRP family seed,
the 64-byte BIP32-Ed25519 extended key kL || kR (ADA).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kms.hygiene import SecretBuffer, WipedOnExit


class KeyHandle(WipedOnExit):
    """One signing key for one pending transaction. ``index`` is the derivation index for mnemonic wallets."""

    __slots__ = ("_raw", "index", "signature_id")

    def __init__(self, signature_id: str, raw: SecretBuffer, index: int | None = None) -> None:
        self.signature_id = signature_id
        self.index = index
        self._raw = raw

    @contextmanager
    def raw(self) -> Iterator[bytearray]:
        """The raw key bytes, for the length of the ``with`` block. Copy nothing out of it that outlives the block."""
        if self._raw.wiped:
            raise ValueError(f"the key of {self.signature_id} was already wiped")
        yield self._raw.raw()

    def same_key(self, other: KeyHandle) -> bool:
        """True when both handles hold the same key bytes (the same key named twice signs once)."""
        return self._raw == other._raw

    def wipe(self) -> None:
        self._raw.wipe()

    def __repr__(self) -> str:
        return f"KeyHandle(signature_id={self.signature_id!r}, index={self.index!r}, key=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("a KeyHandle cannot be pickled")
