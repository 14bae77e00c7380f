"""EGLD (MultiversX): ed25519 SLIP-10, every level hardened: m/44'/508'/0'/0'/i' (testnet m/44'/1'/0'/0'/i').

Upstream keeps no xpub for EGLD (ed25519 has no public derivation), so records are ``{mnemonic}`` and the address
at an index is derived from the mnemonic. Upstream's own ``getaddress`` derives from the absent xpub and prints a
meaningless address; this does it properly. Addresses are bech32 ``erd1...`` on both networks; keys are 64 hex digits
(the ed25519 seed).

Signing (``kms.signing.egld``): the raw key is that seed; nonce, gas price, chain id and gas limit come from the node
behind the Tatum gateway (``EGLD_FACTS``); the signed JSON goes to ``POST /v3/egld/broadcast``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bip_utils import Bip32Slip10Ed25519, Bip32Utils, Ed25519PrivateKey, EgldAddrDecoder, EgldAddrEncoder

from kms.chains.base import KIND_MNEMONIC, ChainDefaults, LazySigner, Signer
from kms.chains.common import (
    attempt,
    bip39_seed,
    check_index,
    hex_secret,
    mnemonic_of,
    network_name,
    new_mnemonic,
    normalize_mnemonic,
    parse_hex,
)
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

_COIN = {False: 508, True: 1}


@dataclass(frozen=True)
class EgldFacts:
    """What upstream's EGLD signing reaches and accepts."""

    node_path: str
    """The MultiversX node behind the Tatum gateway (``{apiKey}`` stands for the API key)."""
    chain_ids: Mapping[bool, frozenset[str]]
    """Chain ids a node may report, per daemon network (testnet flag)."""
    default_gas_price: int
    """Upstream's fallback when the node reports no minimum gas price."""
    address_hrp: str = "erd"


EGLD_FACTS = EgldFacts(
    node_path="/v3/egld/node/{apiKey}",
    # Mainnet "1"; Tatum's EGLD testnet gateway is devnet "D" (or testnet "T").
    chain_ids={False: frozenset({"1"}), True: frozenset({"T", "D"})},
    default_gas_price=1_000_000_000,
)


class EgldChain(ChainDefaults):
    uses_mnemonic = True

    def __init__(self) -> None:
        self.code = "EGLD"
        self.broadcast_route = "egld"
        self.signer: Signer | None = None

    def __repr__(self) -> str:
        return "<EgldChain EGLD>"

    def derivation_path(self, testnet: bool) -> str:
        return f"m/44'/{_COIN[testnet]}'/0'/0'/i'"

    def _node(self, mnemonic: str, index: int, testnet: bool) -> Bip32Slip10Ed25519:
        node = Bip32Slip10Ed25519.FromSeed(bip39_seed(mnemonic))
        for level in (44, _COIN[testnet], 0, 0, index):
            node = node.ChildKey(Bip32Utils.HardenIndex(level))
        return node

    def generate_wallet(self, testnet: bool) -> dict[str, str]:
        return {"mnemonic": new_mnemonic()}

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        return {"mnemonic": normalize_mnemonic(mnemonic)}

    def address_at(self, wallet: Mapping[str, str], index: int, testnet: bool) -> str:
        check_index(index)
        node = self._node(mnemonic_of(wallet, self.code), index, testnet)
        return EgldAddrEncoder.EncodeKey(node.PublicKey().KeyObject())

    def private_key_at(self, mnemonic: str, index: int, testnet: bool) -> str:
        check_index(index)
        return self._node(mnemonic, index, testnet).PrivateKey().Raw().ToHex()

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte ed25519 seed: derived from the mnemonic at ``index`` (bip-utils takes the mnemonic as ``str``
        and returns the seed as ``bytes``, see SECURITY.md), or decoded from 64 hex digits without a ``str`` copy."""
        if kind == KIND_MNEMONIC:
            if index is None:
                raise SigningError("an EGLD mnemonic wallet signs only at a derivation index")
            check_index(index)
            return SecretBuffer(self._node(secret.text(), index, testnet).PrivateKey().Raw().ToBytes())
        raw = hex_secret(secret, 32)
        if raw is None:
            raise SigningError("invalid EGLD private key: expected 64 hex digits")
        return raw

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        return EgldAddrEncoder.EncodeKey(self._key(private_key).PublicKey())

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        self._key(private_key)

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid EGLD {network_name(testnet)} address: expected bech32 erd1..."
        if not isinstance(address, str) or not address.startswith("erd1"):
            raise InvalidKeyError(message)
        attempt(message, lambda: EgldAddrDecoder.DecodeAddr(address))

    def generate_private_key(self, testnet: bool) -> dict[str, str]:
        node = self._node(new_mnemonic(), 1, testnet)
        return {
            "privateKey": node.PrivateKey().Raw().ToHex(),
            "address": EgldAddrEncoder.EncodeKey(node.PublicKey().KeyObject()),
        }

    @staticmethod
    def _key(private_key: str) -> Ed25519PrivateKey:
        message = "invalid EGLD private key: expected 64 hex digits"
        raw = parse_hex(private_key, nbytes=32, prefix="", message=message)
        key = attempt(message, lambda: Ed25519PrivateKey.FromBytes(raw))
        assert isinstance(key, Ed25519PrivateKey)
        return key


EGLD = EgldChain()
EGLD.signer = LazySigner("kms.signing.egld:EgldSigner", EGLD_FACTS)
CHAINS = (EGLD,)
