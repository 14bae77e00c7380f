"""What the store hands out: wallet metadata (no secrets) and decrypted wallets (secrets in a wipeable buffer)."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from kms.errors import StoreError
from kms.hygiene import SecretBuffer
from kms.store.format import decode_fields


@dataclass(frozen=True)
class WalletMeta:
    signature_id: str
    chain: str
    testnet: bool
    kind: str  # "mnemonic" | "privateKey" | "secret"


class StoredWallet:
    """One decrypted wallet. The plaintext stays in a SecretBuffer until wipe() (or the end of a with block)."""

    __slots__ = ("_meta", "_plaintext")

    def __init__(self, meta: WalletMeta, plaintext: SecretBuffer) -> None:
        self._meta = meta
        self._plaintext = plaintext

    @property
    def meta(self) -> WalletMeta:
        return self._meta

    def fields(self) -> dict[str, str]:
        """The record's secret fields (mnemonic/xpub, privateKey, secret/address ...), without chain and testnet."""
        if self._plaintext.wiped:
            raise StoreError("this wallet was wiped from memory")
        return decode_fields(self._plaintext)

    def record(self) -> dict[str, object]:
        """Upstream's JSON record: the fields followed by chain and testnet."""
        return {**self.fields(), "chain": self._meta.chain, "testnet": self._meta.testnet}

    def wipe(self) -> None:
        self._plaintext.wipe()

    def __enter__(self) -> StoredWallet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wipe()

    def __repr__(self) -> str:
        meta = self._meta
        return f"<StoredWallet {meta.signature_id} {meta.chain} testnet={meta.testnet} {meta.kind}>"

    __str__ = __repr__
