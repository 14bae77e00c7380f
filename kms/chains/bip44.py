"""The base of every mnemonic chain on secp256k1 BIP32: BIP39 seed -> m/44'/COIN'/0'/0 -> child i (unhardened).

Records keep the xpub of the ``m/44'/COIN'/0'/0`` node; addresses come from that xpub, private keys from the
mnemonic. A subclass says how a public key becomes an address and how a private key is written as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1, Bip32Utils, Secp256k1PublicKey

from kms.chains.base import KIND_MNEMONIC, ChainDefaults, Signer
from kms.chains.common import (
    bip39_seed,
    check_index,
    network_name,
    new_mnemonic,
    normalize_mnemonic,
    secp256k1_key,
    xpub_of,
)
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

XPUB = Bip32KeyNetVersions(bytes.fromhex("0488b21e"), bytes.fromhex("0488ade4"))
TPUB = Bip32KeyNetVersions(bytes.fromhex("043587cf"), bytes.fromhex("04358394"))


@dataclass(frozen=True)
class Bip44Network:
    """What differs between a chain's mainnet and testnet derivation: the coin type and the xpub version bytes."""

    coin: int
    key_versions: Bip32KeyNetVersions = XPUB


class Secp256k1Bip44Chain(ChainDefaults):
    """A mnemonic chain on secp256k1; subclasses supply the address and key encodings."""

    uses_mnemonic = True
    record_order: tuple[str, ...] = ("mnemonic", "xpub")
    """Field order of the record upstream prints and stores (``{mnemonic, xpub}`` or ``{xpub, mnemonic}``)."""

    def __init__(self, code: str, broadcast_route: str, mainnet: Bip44Network, testnet: Bip44Network) -> None:
        self.code = code
        self.broadcast_route = broadcast_route
        self.signer: Signer | None = None
        self._networks = {False: mainnet, True: testnet}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"

    # --- what a subclass provides ----------------------------------------------------------------------------------

    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        raise NotImplementedError

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        raise NotImplementedError

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        """The 32-byte scalar of a key in this chain's text format; InvalidKeyError (never quoting it) otherwise."""
        raise NotImplementedError

    def validate_address(self, address: str, testnet: bool) -> None:
        raise NotImplementedError

    # --- derivation ------------------------------------------------------------------------------------------------

    def derivation_path(self, testnet: bool) -> str:
        return f"m/44'/{self._networks[testnet].coin}'/0'/0"

    def _account_node(self, seed: bytes, testnet: bool) -> Bip32Secp256k1:
        network = self._networks[testnet]
        node = Bip32Secp256k1.FromSeed(seed, network.key_versions)
        for level in (44, network.coin, 0):
            node = node.ChildKey(Bip32Utils.HardenIndex(level))
        return node.ChildKey(0)

    def _xpub_node(self, xpub: str, testnet: bool) -> Bip32Secp256k1:
        """The network's own version bytes, or plain BIP32 ``xpub`` ones (what generic BIP32 tools and some stores
        write for every network). An xpub labelled for the other network (``tpub`` on mainnet, ``Ltub`` on LTC
        testnet) is refused, as upstream refuses it."""
        message = f"the wallet's xpub is not a valid {self.code} {network_name(testnet)} extended public key"
        if not xpub.isalnum():
            raise InvalidKeyError(message)
        own = self._networks[testnet].key_versions
        node = _parse_extended_key(xpub, own)
        if node is None and own is not XPUB:
            node = _parse_extended_key(xpub, XPUB)
        if node is None:
            raise InvalidKeyError(message)
        if not node.IsPublicOnly():
            raise InvalidKeyError(f"the wallet's xpub field holds a private extended key; {self.code} expects an xpub")
        return node

    # --- the Chain protocol ----------------------------------------------------------------------------------------

    def generate_wallet(self, testnet: bool) -> dict[str, str]:
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        phrase = normalize_mnemonic(mnemonic)
        xpub = self._account_node(bip39_seed(phrase), testnet).PublicKey().ToExtended()
        fields = {"mnemonic": phrase, "xpub": xpub}
        return {name: fields[name] for name in self.record_order}

    def address_at(self, wallet: Mapping[str, str], index: int, testnet: bool) -> str:
        check_index(index)
        child = self._xpub_node(xpub_of(wallet, self.code), testnet).ChildKey(index)
        return self.encode_address(child.PublicKey().KeyObject(), testnet)

    def private_key_at(self, mnemonic: str, index: int, testnet: bool) -> str:
        check_index(index)
        child = self._account_node(bip39_seed(mnemonic), testnet).ChildKey(index)
        return self.encode_private_key(child.PrivateKey().Raw().ToBytes(), testnet)

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte secp256k1 scalar: derived from the mnemonic at ``index``, or decoded from the key text."""
        if kind == KIND_MNEMONIC:
            return SecretBuffer(self.derived_scalar(secret, index, testnet))
        try:
            return SecretBuffer(self.decode_private_key(secret.text(), testnet))
        except InvalidKeyError as exc:
            raise SigningError(str(exc)) from None

    def derived_scalar(self, mnemonic: SecretBuffer, index: int | None, testnet: bool) -> bytes:
        """bip-utils takes the mnemonic as ``str`` and hands the scalar back as ``bytes`` (see SECURITY.md)."""
        if index is None:
            raise SigningError(f"a {self.code} mnemonic wallet signs only at a derivation index")
        check_index(index)
        child = self._account_node(bip39_seed(mnemonic.text()), testnet).ChildKey(index)
        return child.PrivateKey().Raw().ToBytes()

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        raw = self.decode_private_key(private_key, testnet)
        public_key = secp256k1_key(raw, self._bad_key_message(testnet)).PublicKey()
        return self.encode_address(public_key, testnet)  # type: ignore[arg-type]

    def validate_private_key(self, private_key: str, testnet: bool) -> None:
        secp256k1_key(self.decode_private_key(private_key, testnet), self._bad_key_message(testnet))

    def generate_private_key(self, testnet: bool) -> dict[str, str]:
        # Upstream's batch makes each key as index 1 of a fresh mnemonic and prints the address at that index.
        child = self._account_node(bip39_seed(new_mnemonic()), testnet).ChildKey(1)
        return {
            "privateKey": self.encode_private_key(child.PrivateKey().Raw().ToBytes(), testnet),
            "address": self.encode_address(child.PublicKey().KeyObject(), testnet),  # type: ignore[arg-type]
        }

    def _bad_key_message(self, testnet: bool) -> str:
        return f"invalid {self.code} {network_name(testnet)} private key"


def _parse_extended_key(text: str, versions: Bip32KeyNetVersions) -> Bip32Secp256k1 | None:
    try:
        return Bip32Secp256k1.FromExtendedKey(text, versions)
    except Exception:
        return None
