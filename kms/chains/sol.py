"""SOL: a random ed25519 key pair -> ``{address, privateKey}``: the address is the base58 public key, the key is
base58 of the 64-byte secret key (seed || public key) as Solana's ``Keypair.secretKey``. Upstream's signer also
reads the 128-hex-digit form of the same 64 bytes, so that is accepted too."""

from __future__ import annotations

import secrets

from bip_utils import Base58Decoder, Base58Encoder, Ed25519PrivateKey, SolAddrDecoder, SolAddrEncoder

from kms.chains.common import attempt, is_hex, network_name
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError

_MESSAGE = "invalid SOL private key: expected base58 (or 128 hex digits) of a 64-byte Solana secret key"


def _public_key(seed: bytes) -> bytes:
    return Ed25519PrivateKey.FromBytes(seed).PublicKey().RawCompressed().ToBytes()[1:]


class SolChain(KeyPairChain):
    record_key_field = "privateKey"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        seed = secrets.token_bytes(32)
        public_key = _public_key(seed)
        return Base58Encoder.Encode(seed + public_key), SolAddrEncoder.EncodeKey(public_key)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        if not isinstance(private_key, str) or not private_key.isalnum():
            raise InvalidKeyError(_MESSAGE)
        if len(private_key) == 128 and is_hex(private_key):
            secret_key = bytes.fromhex(private_key)
        else:
            secret_key = attempt(_MESSAGE, lambda: Base58Decoder.Decode(private_key))
        if len(secret_key) != 64:
            raise InvalidKeyError(_MESSAGE)
        public_key = attempt(_MESSAGE, lambda: _public_key(secret_key[:32]))
        if public_key != secret_key[32:]:
            raise InvalidKeyError("invalid SOL private key: its public half does not belong to its private half")
        return SolAddrEncoder.EncodeKey(public_key)

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid SOL {network_name(testnet)} address: expected a base58 32-byte public key"
        if not isinstance(address, str) or not address:
            raise InvalidKeyError(message)
        attempt(message, lambda: SolAddrDecoder.DecodeAddr(address))


SOL = SolChain("SOL", "solana")
CHAINS = (SOL,)
