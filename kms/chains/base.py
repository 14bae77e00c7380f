"""The Chain protocol: everything kms knows about one blockchain sits behind it.

Key derivation, address encoding and raw signing keys live in the chain modules; nothing outside ``kms.chains``
branches on chain codes. Wallet fields are upstream's record fields: ``mnemonic`` + ``xpub`` for mnemonic wallets,
``privateKey`` for key wallets, ``secret`` / ``privateKey`` + ``address`` for chains that upstream generates as a
random key pair.

Optional capabilities (lazy signer loading, offchain withdrawals signed per input) are part of the protocol with a
neutral default in ``ChainDefaults``, so callers never probe for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction, Signer

KIND_MNEMONIC = "mnemonic"
"""The ``kind`` of a mnemonic wallet's secret; any other kind is key text (``privateKey`` or ``secret``)."""


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
        """Private key at ``index``, in the chain's text format (for the CLI; signing uses ``raw_signing_key``)."""
        ...

    def address_from_private_key(self, private_key: str, testnet: bool) -> str: ...

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        """Raise InvalidKeyError when the key (or secret) is not valid for this chain and network."""
        ...

    def validate_address(self, address: str, testnet: bool) -> None: ...

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The raw key bytes this chain's signer takes (see ``kms.keys``), decoded once from a stored secret: the
        mnemonic (``kind == "mnemonic"``, derived at ``index``) or the key text (``privateKey`` / ``secret``).
        Raises SigningError (never quoting the secret) when it cannot be decoded. The caller wipes both buffers."""
        ...

    def offchain_key_indexes(self, pending: PendingTransaction) -> Sequence[int] | None:
        """The derivation indexes an offchain withdrawal is signed at, one key per input, from the mnemonic wallet
        in ``hashes[0]`` (UTXO chains); None where the keys come from the usual hashes / index / signatures."""
        ...

    def warm_up(self) -> None:
        """Load the signing libraries now rather than on the first transaction."""
        ...


class ChainDefaults:
    """Neutral defaults of the protocol's optional capabilities; chain families inherit them."""

    code: str
    signer: Signer | None = None

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        raise SigningError(f"kms cannot decode {self.code} keys for signing")

    def offchain_key_indexes(self, pending: PendingTransaction) -> Sequence[int] | None:
        return None

    def warm_up(self) -> None:
        if isinstance(self.signer, LazySigner):
            self.signer.load()


class LazySigner:
    """A signer built on first use, so commands that never sign do not load the signing libraries.

    ``target`` is ``"module:factory"``; the factory is called with ``args`` and must return a Signer. It is also a
    ``Submitter`` only when the signer it builds is one (``submits``).
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
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        return self.load().sign(pending, keys, testnet, gateway)

    def __repr__(self) -> str:
        return f"LazySigner({self._target!r}, {', '.join(map(repr, self._args))})"


def loaded_signer(chain: Chain) -> Signer | None:
    """The chain's signer itself (a lazy one is loaded), to see which protocols it implements (``Submitter``)."""
    signer = chain.signer
    return signer.load() if isinstance(signer, LazySigner) else signer
