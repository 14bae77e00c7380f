"""ADA (Cardano), as tatum-kms 8.0.1 does it through ``@tatumio/cardano``:

- Icarus master key from the BIP39 entropy (CIP-3), BIP32-Ed25519 (Khovratovich-Law) derivation, CIP-1852 path
  ``m/1852'/1815'/0'/0`` on both networks;
- ``xpub``: that node's public key + chain code, 128 hex digits (a 256-digit xpub from the older SDK, whose first
  half is the same key, is accepted too);
- private key at ``i``: the 64-byte extended key (kL || kR) of ``m/1852'/1815'/0'/0/i``, 128 hex digits;
- address: the Shelley *enterprise* address of that key (no stake part; what Cardano Rosetta's
  ``construction/derive`` returns by default and so what upstream prints), ``addr1v...`` / ``addr_test1v...``.

Signing (``kms.signing.ada``) goes through Tatum's Cardano Rosetta gateway (``ADA_FACTS``); the raw key is the 64-byte
extended key. A pending transaction with a ``withdrawalId`` is an offchain withdrawal: its keys are the
``signatures[]`` mnemonics derived at their indexes, and it goes to the offchain withdrawal broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bip_utils import (
    Bech32Decoder,
    Bech32Encoder,
    Bip32KeyData,
    CardanoIcarusBip32,
    CardanoIcarusSeedGenerator,
    Ed25519KholawPrivateKey,
    IPublicKey,
)
from bip_utils.utils.crypto import Blake2b224

from kms.chains.base import KIND_MNEMONIC, ChainDefaults, LazySigner, Signer
from kms.chains.common import (
    attempt,
    check_index,
    check_mnemonic,
    hex_secret,
    is_hex,
    network_name,
    new_mnemonic,
    normalize_mnemonic,
    parse_hex,
    xpub_of,
)
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

ACCOUNT_PATH = "m/1852'/1815'/0'/0"
_HRP = {False: "addr", True: "addr_test"}
_NETWORK_TAG = {False: 1, True: 0}
_ENTERPRISE_KEY = 0x6  # CIP-19 header type: enterprise address, key-hash payment credential
_BASE_TYPES = range(0, 4)
_POINTER_TYPES = range(4, 6)
_ENTERPRISE_TYPES = range(6, 8)
_HASH_LEN = 28
_BAD_KEY = "invalid ADA private key: expected 128 hex digits (a 64-byte extended ed25519 key)"


@dataclass(frozen=True)
class AdaFacts:
    """Where upstream's ADA signing goes: Tatum's Cardano Rosetta gateway, per daemon network (testnet flag)."""

    rosetta_networks: Mapping[bool, str]
    """Cardano Rosetta's network names (the route's ``cardano-{network}`` and the ``network_identifier``)."""
    rosetta_path: str
    """``{network}``, ``{operation}`` filled by the signer; ``{{apiKey}}`` stays for the gateway to fill."""
    relative_ttl: int = 1000
    """Upstream's ``preprocess`` metadata: the transaction is valid for this many slots."""


ADA_FACTS = AdaFacts(
    rosetta_networks={True: "preprod", False: "mainnet"},
    rosetta_path="/v3/blockchain/node/cardano-{network}/{{apiKey}}/construction/{operation}",
)


def clamped(raw: memoryview | bytearray | bytes) -> bool:
    """A BIP32-Ed25519 extended key's kL is clamped (low 3 bits clear, top bit of its last byte clear): only such a
    key can come out of a derivation."""
    return len(raw) >= 32 and not raw[0] & 0x07 and not raw[31] & 0x80


def enterprise_address(public_key: IPublicKey | bytes, testnet: bool) -> str:
    raw = public_key if isinstance(public_key, bytes) else public_key.RawCompressed().ToBytes()[1:]
    header = bytes([(_ENTERPRISE_KEY << 4) | _NETWORK_TAG[testnet]])
    return Bech32Encoder.Encode(_HRP[testnet], header + Blake2b224.QuickDigest(raw))


class AdaChain(ChainDefaults):
    uses_mnemonic = True
    offchain_withdrawals = True
    offchain_keys_from_signatures = True

    def __init__(self) -> None:
        self.code = "ADA"
        self.broadcast_route = "ada"
        self.signer: Signer | None = None

    def __repr__(self) -> str:
        return "<AdaChain ADA>"

    def derivation_path(self, testnet: bool) -> str:
        return ACCOUNT_PATH

    @staticmethod
    def _account_node(mnemonic: str) -> CardanoIcarusBip32:
        check_mnemonic(mnemonic)
        return attempt(
            "the mnemonic could not be turned into a Cardano master key",
            lambda: CardanoIcarusBip32.FromSeed(CardanoIcarusSeedGenerator(mnemonic).Generate()).DerivePath(
                ACCOUNT_PATH
            ),
        )

    def generate_wallet(self, testnet: bool) -> dict[str, str]:
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        phrase = normalize_mnemonic(mnemonic)
        node = self._account_node(phrase)
        xpub = node.PublicKey().RawCompressed().ToBytes()[1:] + node.ChainCode().ToBytes()
        return {"mnemonic": phrase, "xpub": xpub.hex()}

    def address_at(self, wallet: Mapping[str, str], index: int, testnet: bool) -> str:
        check_index(index)
        xpub = xpub_of(wallet, self.code)
        message = "the wallet's xpub is not a Cardano account public key (128 or 256 hex digits)"
        if len(xpub) not in (128, 256) or not is_hex(xpub):
            raise InvalidKeyError(message)
        raw = bytes.fromhex(xpub[:128])
        child = attempt(
            message,
            lambda: CardanoIcarusBip32.FromPublicKey(raw[:32], Bip32KeyData(chain_code=raw[32:])).ChildKey(index),
        )
        return enterprise_address(child.PublicKey().KeyObject(), testnet)

    def private_key_at(self, mnemonic: str, index: int, testnet: bool) -> str:
        check_index(index)
        return self._account_node(mnemonic).ChildKey(index).PrivateKey().Raw().ToHex()

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 64-byte extended key kL || kR: derived at ``index`` as ``private_key_at`` (bip-utils takes the
        mnemonic as ``str`` and returns the key as ``bytes``, see SECURITY.md), or decoded from 128 hex digits
        without a ``str`` copy."""
        if kind == KIND_MNEMONIC:
            if index is None:
                raise SigningError("an ADA mnemonic wallet signs only at a derivation index")
            check_index(index)
            return SecretBuffer(self._account_node(secret.text()).ChildKey(index).PrivateKey().Raw().ToBytes())
        raw = hex_secret(secret, 64)
        if raw is None or not clamped(raw.view()):
            if raw is not None:
                raw.wipe()
            raise SigningError(_BAD_KEY)
        return raw

    def decode_private_key(self, private_key: str) -> bytes:
        """The 64 bytes of an ADA private key's text (128 hex digits, a clamped extended key)."""
        raw = parse_hex(private_key, nbytes=64, prefix="", message=_BAD_KEY)
        if not clamped(raw):
            raise InvalidKeyError(_BAD_KEY)
        return raw

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        return enterprise_address(self._key(private_key).PublicKey(), testnet)

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        self._key(private_key)

    def validate_address(self, address: str, testnet: bool) -> None:
        """A Shelley payment address (base, pointer or enterprise) of this network."""
        message = f"invalid ADA {network_name(testnet)} address: expected a Shelley {_HRP[testnet]}1... address"
        if not isinstance(address, str) or not address.lower().startswith(_HRP[testnet] + "1"):
            raise InvalidKeyError(message)
        data = attempt(message, lambda: Bech32Decoder.Decode(_HRP[testnet], address))
        if not data or data[0] & 0x0F != _NETWORK_TAG[testnet]:
            raise InvalidKeyError(message)
        kind, size = data[0] >> 4, len(data)
        if not (
            (kind in _BASE_TYPES and size == 1 + 2 * _HASH_LEN)
            or (kind in _ENTERPRISE_TYPES and size == 1 + _HASH_LEN)
            or (kind in _POINTER_TYPES and size > 1 + _HASH_LEN)
        ):
            raise InvalidKeyError(message)

    def generate_private_key(self, testnet: bool) -> dict[str, str]:
        child = self._account_node(new_mnemonic()).ChildKey(1)
        return {
            "privateKey": child.PrivateKey().Raw().ToHex(),
            "address": enterprise_address(child.PublicKey().KeyObject(), testnet),
        }

    def _key(self, private_key: str) -> Ed25519KholawPrivateKey:
        raw = self.decode_private_key(private_key)
        key = attempt(_BAD_KEY, lambda: Ed25519KholawPrivateKey.FromBytes(raw))
        assert isinstance(key, Ed25519KholawPrivateKey)
        return key


ADA = AdaChain()
ADA.signer = LazySigner("kms.signing.ada:AdaSigner", ADA_FACTS)
CHAINS = (ADA,)
