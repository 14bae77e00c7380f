"""XLM: a random ed25519 key pair as Stellar StrKeys: ``{address: G..., secret: S...}``. The network (public or
test) lives in the transaction's passphrase, not in the keys, so both networks share one format."""

from __future__ import annotations

from kms.chains.common import attempt, network_name, succeeds
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError


class XlmChain(KeyPairChain):
    record_key_field = "secret"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        from stellar_sdk import Keypair  # imported on use: the SDK takes ~0.4 s to import

        keypair = Keypair.random()
        return keypair.secret, keypair.public_key

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        from stellar_sdk import Keypair

        message = "invalid XLM secret: expected a Stellar secret seed (S...)"
        if not isinstance(private_key, str) or not private_key.startswith("S") or not private_key.isalnum():
            raise InvalidKeyError(message)
        return attempt(message, lambda: Keypair.from_secret(private_key).public_key)

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
CHAINS = (XLM,)
