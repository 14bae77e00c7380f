"""What the store hands out: wallet metadata (no secrets) and decrypted wallets (secrets in a wipeable buffer)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kms.errors import StoreError
from kms.hygiene import SecretBuffer, WipedOnExit
from kms.store.format import decode_fields


@dataclass(frozen=True)
class WalletMeta:
    signature_id: str
    chain: str
    testnet: bool
    kind: str  # "mnemonic" | "privateKey" | "secret"


class StoredWallet(WipedOnExit):
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

    def secret_field(self, name: str) -> SecretBuffer:
        """One field's text as UTF-8 in a new wipeable buffer (empty when the record has no such field), read from
        the plaintext without decoding the rest of the record into ``str``. The caller wipes it."""
        if self._plaintext.wiped:
            raise StoreError("this wallet was wiped from memory")
        return _field_bytes(self._plaintext.view(), name.encode())

    def record(self) -> dict[str, object]:
        """Upstream's JSON record: the fields followed by chain and testnet."""
        return {**self.fields(), "chain": self._meta.chain, "testnet": self._meta.testnet}

    def wipe(self) -> None:
        self._plaintext.wipe()

    def __repr__(self) -> str:
        meta = self._meta
        return f"<StoredWallet {meta.signature_id} {meta.chain} testnet={meta.testnet} {meta.kind}>"

    __str__ = __repr__


def _field_bytes(plaintext: memoryview, name: bytes) -> SecretBuffer:
    """Scan the record's compact JSON object of strings (``format.encode_fields``) for ``name``'s value. A value with
    JSON escapes (never in a key or mnemonic) is decoded by ``json`` instead, which makes a ``str`` copy."""
    position = 1
    while position < len(plaintext) and plaintext[position] == ord('"'):
        key_end = _string_end(plaintext, position)
        value_start = key_end + 2  # past '":'
        value_end = _string_end(plaintext, value_start)
        if plaintext[position + 1 : key_end] == name:
            value = plaintext[value_start + 1 : value_end]
            if ord("\\") not in value:
                return SecretBuffer(value)
            return SecretBuffer(json.loads(bytes(plaintext[value_start : value_end + 1])))
        position = value_end + 2  # past '",'
    return SecretBuffer()


def _string_end(data: memoryview, start: int) -> int:
    """Index of the quote closing the JSON string that opens at ``start``."""
    if data[start] != ord('"'):
        raise StoreError("the wallet record is not in the expected format")
    index = start + 1
    while index < len(data):
        if data[index] == ord("\\"):
            index += 2
            continue
        if data[index] == ord('"'):
            return index
        index += 1
    raise StoreError("the wallet record is not in the expected format")
