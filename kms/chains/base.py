"""The Chain protocol: everything kms knows about one blockchain sits behind it.

Key derivation and address encoding live in the chain modules; nothing outside ``kms.chains`` branches on chain codes.
Wallet fields are upstream's record fields: ``mnemonic`` + ``xpub`` for mnemonic wallets, ``privateKey`` for key
wallets, ``secret`` / ``privateKey`` + ``address`` for chains that upstream generates as a random key pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kms.api import PendingTransaction


@dataclass(frozen=True, repr=False)
class SigningKey:
    """Key material resolved for one pending transaction, in the chain's own private-key text format
    (WIF for UTXO chains, 0x-hex for EVM, ...). ``index`` is the derivation index for mnemonic wallets."""

    signature_id: str
    private_key: str
    index: int | None = None

    def __repr__(self) -> str:
        return f"SigningKey(signature_id={self.signature_id!r}, index={self.index!r}, private_key=<hidden>)"


class ChainLookups(Protocol):
    """Network look-ups some signers need (EVM: nonce, gas price, gas limit, chain id), served through the Tatum API.
    Implemented by the daemon's Tatum client; tests pass a fake or a client pointed at a local server."""

    def transaction_count(self, chain: str, address: str, testnet: bool) -> int: ...

    def gas_price(self, chain: str, testnet: bool) -> int: ...

    def estimate_gas(self, chain: str, tx: Mapping[str, Any], testnet: bool) -> int: ...

    def chain_id(self, chain: str, testnet: bool) -> int: ...


class Signer(Protocol):
    """Signs one pending transaction. Pure function of its inputs plus the look-ups; raises SigningError (nothing
    signed) on anything it does not fully understand."""

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[SigningKey],
        testnet: bool,
        lookups: ChainLookups | None = None,
    ) -> str: ...


@runtime_checkable
class Chain(Protocol):
    code: str
    """Upstream's chain code, upper case (``ETH``)."""

    broadcast_route: str
    """Path segment of the Tatum broadcast endpoint: ``POST /v3/{broadcast_route}/broadcast``."""

    uses_mnemonic: bool
    """False for chains upstream generates as a random key pair (ALGO, XLM, XRP, SOL, BNB)."""

    signer: Signer | None
    """None while kms cannot sign this chain's pending transactions."""

    def generate_wallet(self, testnet: bool) -> dict[str, str]:
        """What upstream's ``generatewallet`` prints: {mnemonic, xpub} or {address, secret|privateKey}."""
        ...

    def generate_private_key(self, testnet: bool) -> dict[str, str]:
        """One fresh key wallet as ``generatemanagedprivatekeybatch`` stores it: {privateKey (or secret), address}.
        Upstream makes each key as index 1 of a fresh mnemonic; random key-pair chains make a random key."""
        ...

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{mnemonic, xpub} (EGLD: {mnemonic}) for a given, checksum-verified mnemonic."""
        ...

    def address_at(self, wallet: Mapping[str, str], index: int, testnet: bool) -> str:
        """Address at ``index`` of a mnemonic wallet's record (from its xpub where the chain keeps one)."""
        ...

    def private_key_at(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key at ``index``, in the chain's text format."""
        ...

    def address_from_private_key(self, private_key: str, testnet: bool) -> str: ...

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        """Raise InvalidKeyError when the key (or secret) is not valid for this chain and network."""
        ...

    def validate_address(self, address: str, testnet: bool) -> None: ...


class LazySigner:
    """A signer built on first use, so commands that never sign do not load the signing libraries.

    ``target`` is ``"module:factory"``; the factory is called with ``args`` and must return a Signer.
    """

    def __init__(self, target: str, *args: Any) -> None:
        self._target = target
        self._args = args
        self._signer: Signer | None = None

    def load(self) -> Signer:
        if self._signer is None:
            import importlib

            module_name, attr = self._target.split(":")
            self._signer = getattr(importlib.import_module(module_name), attr)(*self._args)
        return self._signer

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[SigningKey],
        testnet: bool,
        lookups: ChainLookups | None = None,
    ) -> str:
        return self.load().sign(pending, keys, testnet, lookups)

    def __repr__(self) -> str:
        return f"LazySigner({self._target!r}, {', '.join(map(repr, self._args))})"
