"""The Chain protocol: everything kms knows about one blockchain sits behind it.

Key derivation, address encoding and raw signing keys live in the chain modules; nothing outside ``kms.chains``
branches on chain codes. Wallet fields are upstream's record fields: ``mnemonic`` + ``xpub`` for mnemonic wallets,
``privateKey`` for key wallets, ``secret`` / ``privateKey`` + ``address`` for chains that upstream generates as a
random key pair.

Optional capabilities (lazy signer loading, offchain withdrawals signed per input) are part of the protocol with a
neutral default in ``ChainDefaults``, so callers never probe for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError, UsageError
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

    offchain_withdrawals: bool
    """Whether a pending transaction with a ``withdrawalId`` goes to the offchain withdrawal broadcast
    (``POST /v3/offchain/withdrawal/broadcast``); elsewhere upstream ignores the withdrawalId (chain route)."""

    offchain_keys_from_signatures: bool
    """Whether an offchain withdrawal (pending ``withdrawalId``) signs only with the ``signatures[]`` mnemonics, each
    derived at its index, ignoring ``hashes`` (upstream's ADA); otherwise the usual hashes / index / signatures."""

    retired: str | None
    """Why this chain is no longer signed (its network halted for good); the batch report says it followed by
    "; nothing signed", checkconfig and report warn about its stored wallets. None for live chains."""

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
    offchain_withdrawals: bool = False
    offchain_keys_from_signatures: bool = False
    retired: str | None = None

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        raise SigningError(f"kms cannot decode {self.code} keys for signing")

    def offchain_key_indexes(self, pending: PendingTransaction) -> Sequence[int] | None:
        return None

    def warm_up(self) -> None:
        if isinstance(self.signer, LazySigner):
            self.signer.load()


class LazySigner:
    """A signer built on first use, so commands that never sign do not load the signing libraries.

    ``target`` is ``"module:factory"``; the factory is called with ``args`` (the chain's facts) and must return a
    Signer. ``settings`` maps factory keywords to the names of the settings that feed them (``{"node_url":
    "TATUM_KMS_VET_NODE_URL"}``); ``configured(values)`` is a copy whose factory also gets those settings' values. It
    is also a ``Submitter`` only when the signer it builds is one (``submits``).
    """

    def __init__(self, target: str, *args: Any, settings: Mapping[str, str] | None = None) -> None:
        self._target = target
        self._args = args
        self._settings = dict(settings or {})
        self._kwargs: dict[str, str] = {}
        self._signer: Signer | None = None

    @property
    def setting_names(self) -> tuple[str, ...]:
        return tuple(self._settings.values())

    def configured(self, values: Mapping[str, str]) -> LazySigner:
        """A fresh, unloaded copy whose factory gets the values of its settings that are set in ``values``."""
        copy = LazySigner(self._target, *self._args, settings=self._settings)
        copy._kwargs = {keyword: values[name] for keyword, name in self._settings.items() if values.get(name)}
        return copy

    def load(self) -> Signer:
        if self._signer is None:
            import importlib

            module_name, attr = self._target.split(":")
            self._signer = getattr(importlib.import_module(module_name), attr)(*self._args, **self._kwargs)
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


_NODE_URL = re.compile(r"https?://[^\s?#]+")


class SignerSettings(Mapping[str, str]):
    """The settings chain signers take (today: node URLs, ``TATUM_KMS_VET_NODE_URL``, ``TATUM_KMS_FLOW_NODE_URL``),
    read once from the daemon's settings and checked there, then handed to each chain's ``LazySigner`` factory
    (``configured_signer``). Signing modules never read the environment themselves."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = {}
        for name, value in (values or {}).items():
            text = value.strip()
            if text and not _NODE_URL.fullmatch(text):
                raise UsageError(f"{name} must be an http(s) URL without query or fragment")
            if text:
                self._values[name] = text.rstrip("/")

    @classmethod
    def of(cls, settings: Mapping[str, str], names: Sequence[str]) -> SignerSettings:
        """The named settings' values from ``settings`` (environment over env file); unset ones are left out."""
        return cls({name: settings[name] for name in names if settings.get(name)})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SignerSettings({self._values!r})"


def loaded_signer(chain: Chain) -> Signer | None:
    """The chain's signer itself (a lazy one is loaded), to see which protocols it implements (``Submitter``)."""
    signer = chain.signer
    return signer.load() if isinstance(signer, LazySigner) else signer


def configured_signer(chain: Chain, settings: Mapping[str, str]) -> Signer | None:
    """The chain's signer built with ``settings`` (a ``SignerSettings``): a lazy signer that takes settings gets a
    configured copy; any other signer is returned as it is."""
    signer = chain.signer
    if isinstance(signer, LazySigner) and signer.setting_names:
        return signer.configured(settings)
    return signer
