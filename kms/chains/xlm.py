"""XLM: a random ed25519 key pair as Stellar StrKeys: ``{address: G..., secret: S...}``. The network (public or
test) lives in the transaction's passphrase, not in the keys, so both networks share one format.

Signed by ``kms.signing.xlm`` with the network passphrase that follows the daemon's ``--testnet`` flag, as upstream;
the signed envelope is posted to ``/v3/xlm/broadcast``."""

from __future__ import annotations

from kms.chains.base import LazySigner
from kms.chains.common import attempt, network_name, succeeds
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name
MAINNET_PASSPHRASE = "Public Global Stellar Network ; September 2015"  # noqa: S105 - a public network name
NETWORK_PASSPHRASES = {False: MAINNET_PASSPHRASE, True: TESTNET_PASSPHRASE}
"""By the daemon's ``--testnet`` flag, as upstream picks them."""
_INVALID_SEED = "invalid XLM secret: expected a Stellar secret seed (S...)"


def network_passphrase(testnet: bool) -> str:
    return NETWORK_PASSPHRASES[bool(testnet)]


def _seed(secret: str) -> bytes:
    """The 32-byte ed25519 seed of an ``S...`` secret; SigningError (never quoting it) otherwise."""
    from stellar_sdk import StrKey  # imported on use: the SDK takes ~0.4 s to import

    if not isinstance(secret, str) or not secret.startswith("S") or not secret.isalnum():
        raise SigningError(_INVALID_SEED)
    return attempt(_INVALID_SEED, lambda: StrKey.decode_ed25519_secret_seed(secret), SigningError)


class XlmChain(KeyPairChain):
    record_key_field = "secret"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        from stellar_sdk import Keypair

        keypair = Keypair.random()
        return keypair.secret, keypair.public_key

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        from stellar_sdk import Keypair

        try:
            seed = _seed(private_key)
        except SigningError:
            seed = None
        if seed is None:  # raised outside the handler: no chained exception
            raise InvalidKeyError(_INVALID_SEED)
        return attempt(_INVALID_SEED, lambda: Keypair.from_raw_ed25519_seed(seed).public_key)

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte ed25519 seed inside the ``S...`` secret (stellar-sdk decodes ``str``; see SECURITY.md)."""
        return SecretBuffer(bytearray(_seed(secret.text())))

    def validate_address(self, address: str, testnet: bool) -> None:
        from stellar_sdk import StrKey

        valid = (
            isinstance(address, str)
            and address.startswith("G")
            and succeeds(lambda: StrKey.decode_ed25519_public_key(address))
        )
        if not valid:
            raise InvalidKeyError(f"invalid XLM {network_name(testnet)} address: expected a G... account id")


XLM = XlmChain("XLM", "xlm")
XLM.signer = LazySigner("kms.signing.xlm:XlmSigner", XLM.code, NETWORK_PASSPHRASES)
CHAINS = (XLM,)
