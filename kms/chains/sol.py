"""SOL: a random ed25519 key pair -> ``{address, privateKey}``: the address is the base58 public key, the key is
base58 of the 64-byte secret key (seed || public key) as Solana's ``Keypair.secretKey``. Upstream's signer also
reads the 128-hex-digit form of the same 64 bytes, so that is accepted too.

Signed by ``kms.signing.sol``: a blockhash from the Tatum node gateway (``RPC_PATH``), the signed transaction sent
to the node there, and its transaction id posted to ``/v3/solana/broadcast``."""

from __future__ import annotations

import secrets

from bip_utils import Base58Decoder, Base58Encoder, Ed25519PrivateKey, SolAddrDecoder, SolAddrEncoder

from kms.chains.base import LazySigner
from kms.chains.common import attempt, hex_secret, network_name
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

RPC_PATH = "/v3/blockchain/node/SOL/{apiKey}"
"""Tatum's Solana JSON-RPC gateway (``{apiKey}`` is filled in by the gateway), where upstream's SDK asks for the
blockhash and sends the transaction."""
SECRET_KEY_BYTES = 64
_HEX_DIGITS = 2 * SECRET_KEY_BYTES
_MESSAGE = "invalid SOL private key: expected base58 (or 128 hex digits) of a 64-byte Solana secret key"
_NOT_A_PAIR = "invalid SOL private key: its public half does not belong to its private half"


def _public_key(seed: bytes) -> bytes:
    return Ed25519PrivateKey.FromBytes(seed).PublicKey().RawCompressed().ToBytes()[1:]


def _is_ascii_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def seed_of_secret_key(text: SecretBuffer, message: str = _MESSAGE) -> SecretBuffer:
    """The 32-byte ed25519 seed of a Solana secret key written as upstream's ``generateKeyPair`` reads it: 128
    characters are hex (decoded without a ``str`` copy), anything else base58 (bip-utils takes ``str``; see
    SECURITY.md). The second half must be the seed's public key. SigningError(``message``), never quoting the key."""
    view = text.view()
    if not view or not all(_is_ascii_alnum(byte) for byte in view):
        raise SigningError(message)
    if len(view) == _HEX_DIGITS:
        whole = hex_secret(text, SECRET_KEY_BYTES)
    else:
        whole = SecretBuffer(bytearray(attempt(message, lambda: Base58Decoder.Decode(text.text()), SigningError)))
    if whole is None:
        raise SigningError(message)
    with whole:
        if len(whole) != SECRET_KEY_BYTES:
            raise SigningError(message)
        public_key = attempt(message, lambda: _public_key(bytes(whole.view()[:32])), SigningError)
        if public_key != whole.view()[32:]:
            raise SigningError(_NOT_A_PAIR)
        return SecretBuffer(whole.view()[:32])


class SolChain(KeyPairChain):
    record_key_field = "privateKey"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        seed = secrets.token_bytes(32)
        public_key = _public_key(seed)
        return Base58Encoder.Encode(seed + public_key), SolAddrEncoder.EncodeKey(public_key)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        if not isinstance(private_key, str):
            raise InvalidKeyError(_MESSAGE)
        try:
            with SecretBuffer(private_key) as text, seed_of_secret_key(text) as seed:
                return SolAddrEncoder.EncodeKey(_public_key(seed.bytes()))
        except SigningError as exc:
            message = str(exc)
        raise InvalidKeyError(message)  # outside the handler: no chained exception

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte ed25519 seed (the first half of the stored 64-byte secret key)."""
        return seed_of_secret_key(secret)

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid SOL {network_name(testnet)} address: expected a base58 32-byte public key"
        if not isinstance(address, str) or not address:
            raise InvalidKeyError(message)
        attempt(message, lambda: SolAddrDecoder.DecodeAddr(address))


SOL = SolChain("SOL", "solana")
SOL.signer = LazySigner("kms.signing.sol:SolSigner", SOL.code, RPC_PATH)
CHAINS = (SOL,)
