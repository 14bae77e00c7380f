"""XRP: a random key pair as upstream's ``@tatumio/xrp`` makes it (xrpl.js ``Wallet.generate()``: an ed25519
family seed ``sEd...``) -> ``{address: r..., secret}``. Secrets of either algorithm (``sEd...`` ed25519 or the older
secp256k1 ``s...`` seeds) are accepted. Classic addresses serve both networks; an X-address carries its network and
must match.

For ed25519 seeds the key pair is derived here with PyNaCl-backed ed25519 (XRPL's documented rule: the private key
is the first half of SHA-512 of the seed's 16 bytes; the account id is HASH160 of ``0xED`` + public key) because
xrpl-py's pure-Python curve code costs ~10 ms a key, too slow for a 25,000-key batch. Tests hold this against
xrpl-py's own derivation. secp256k1 seeds go through xrpl-py.

Signed by ``kms.signing.xrp`` (no network call); the blob is posted to ``/v3/xrp/broadcast``.
"""

from __future__ import annotations

import hashlib
import secrets

from bip_utils import Ed25519PrivateKey
from bip_utils.utils.crypto import Hash160

from kms.chains.base import LazySigner
from kms.chains.common import attempt, network_name
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

_BAD_SEED_MESSAGE = "invalid XRP secret: expected an XRP Ledger family seed (s...)"
_SEED_BYTES = 16
_ED25519_PREFIX = b"\xed"


def decode_secret(secret: str) -> tuple[bytes, object]:
    """(the seed's 16 bytes, its ``CryptoAlgorithm``) of a family seed; InvalidKeyError, never quoting it."""
    from xrpl.core.addresscodec import decode_seed  # imported on use: xrpl takes ~0.4 s to import

    if not isinstance(secret, str) or not secret.startswith("s") or not secret.isalnum() or not secret.isascii():
        raise InvalidKeyError(_BAD_SEED_MESSAGE)
    return attempt(_BAD_SEED_MESSAGE, lambda: decode_seed(secret))


def _ed25519_address(entropy: bytes) -> str:
    from xrpl.core.addresscodec import encode_classic_address

    private_key = hashlib.sha512(entropy).digest()[:32]
    public_key = Ed25519PrivateKey.FromBytes(private_key).PublicKey().RawCompressed().ToBytes()[1:]
    return encode_classic_address(Hash160.QuickDigest(_ED25519_PREFIX + public_key))


class XrpChain(KeyPairChain):
    record_key_field = "secret"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        from xrpl import CryptoAlgorithm  # imported on use: xrpl takes ~0.4 s to import
        from xrpl.core.addresscodec import encode_seed

        entropy = secrets.token_bytes(_SEED_BYTES)
        return encode_seed(entropy, CryptoAlgorithm.ED25519), _ed25519_address(entropy)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        from xrpl import CryptoAlgorithm
        from xrpl.core.keypairs import derive_classic_address, derive_keypair

        entropy, algorithm = decode_secret(private_key)
        if algorithm == CryptoAlgorithm.ED25519:
            return attempt(_BAD_SEED_MESSAGE, lambda: _ed25519_address(entropy))
        return attempt(_BAD_SEED_MESSAGE, lambda: derive_classic_address(derive_keypair(private_key)[0]))

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The family seed text itself (ASCII; it names the algorithm, which the 16 seed bytes do not), once it
        decodes as a seed (xrpl-py decodes ``str``; see SECURITY.md). The raw key is copied buffer to buffer."""
        try:
            decode_secret(secret.text())
        except (InvalidKeyError, UnicodeDecodeError):
            raise SigningError(_BAD_SEED_MESSAGE) from None
        return SecretBuffer(secret.view())

    def validate_address(self, address: str, testnet: bool) -> None:
        from xrpl.core.addresscodec import is_valid_classic_address, is_valid_xaddress, xaddress_to_classic_address

        message = f"invalid XRP {network_name(testnet)} address"
        if not isinstance(address, str) or not address:
            raise InvalidKeyError(message)
        if attempt(message, lambda: is_valid_classic_address(address)):
            return
        if attempt(message, lambda: is_valid_xaddress(address)):
            _, _, is_test = attempt(message, lambda: xaddress_to_classic_address(address))
            if is_test == testnet:
                return
        raise InvalidKeyError(message)


XRP = XrpChain("XRP", "xrp")
XRP.signer = LazySigner("kms.signing.xrp:XrpSigner", XRP.code)
CHAINS = (XRP,)
