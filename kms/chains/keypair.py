"""The base of chains upstream generates as a random key pair, with no mnemonic: ALGO, XLM, XRP, SOL, BNB.

A wallet is ``{address, secret}`` or ``{address, privateKey}``; the private-key batch stores the same key text under
``privateKey``. Mnemonic operations do not exist for these chains and say so.
"""

from __future__ import annotations

from collections.abc import Mapping

from kms.chains.base import ChainDefaults, Signer
from kms.errors import WalletKindError


class KeyPairChain(ChainDefaults):
    uses_mnemonic = False
    record_key_field = "secret"
    """The record field upstream's ``generatewallet`` uses for the key text (``secret`` or ``privateKey``)."""

    def __init__(self, code: str, broadcast_route: str) -> None:
        self.code = code
        self.broadcast_route = broadcast_route
        self.signer: Signer | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"

    # --- what a subclass provides ----------------------------------------------------------------------------------

    def new_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random (key text, address)."""
        raise NotImplementedError

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        raise NotImplementedError

    def validate_address(self, address: str, testnet: bool) -> None:
        raise NotImplementedError

    # --- the Chain protocol ----------------------------------------------------------------------------------------

    def derivation_path(self, testnet: bool) -> None:
        return None

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        self.address_from_private_key(private_key, testnet)

    def generate_wallet(self, testnet: bool) -> dict[str, str]:
        key, address = self.new_key(testnet)
        return {"address": address, self.record_key_field: key}

    def generate_private_key(self, testnet: bool) -> dict[str, str]:
        key, address = self.new_key(testnet)
        return {"privateKey": key, "address": address}

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        raise self._no_mnemonic()

    def address_at(self, wallet: Mapping[str, str], index: int, testnet: bool) -> str:
        raise self._no_mnemonic()

    def private_key_at(self, mnemonic: str, index: int, testnet: bool) -> str:
        raise self._no_mnemonic()

    def _no_mnemonic(self) -> WalletKindError:
        return WalletKindError(f"{self.code} has no mnemonic wallets: its wallets are random key pairs")
