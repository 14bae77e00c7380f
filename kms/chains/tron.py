"""TRON: m/44'/195'/0'/0 on both networks (Shasta/Nile use mainnet's address format), base58check ``T...``
addresses, keys as 64 hex digits without a prefix. Signed by ``kms.signing.tron`` (no network call); the signed
transaction JSON is posted to ``/v3/tron/broadcast``."""

from __future__ import annotations

from bip_utils import Base58Encoder, Secp256k1PublicKey, TrxAddrDecoder, TrxAddrEncoder

from kms.chains.base import KIND_MNEMONIC, LazySigner
from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, hex_secret, network_name, parse_hex, secp256k1_scalar_ok
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

KEY_HEX_DIGITS = 64
_BAD_KEY = "invalid TRON private key: expected 64 hex digits"


def address_text(raw: bytes) -> str:
    """The base58check ``T...`` spelling of a 21-byte TRON address (``41`` + 20 bytes)."""
    return str(Base58Encoder.CheckEncode(raw))


class TronChain(Secp256k1Bip44Chain):
    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        return TrxAddrEncoder.EncodeKey(public_key)

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return raw.hex()

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        return parse_hex(text, nbytes=32, prefix="", message=_BAD_KEY)

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte secp256k1 scalar: derived from the mnemonic at the pending ``index``, or the key's 64 hex
        digits (no ``0x``, as tronweb takes them) decoded without a ``str`` copy."""
        if kind == KIND_MNEMONIC:
            return super().raw_signing_key(secret, kind, index, testnet)
        raw = hex_secret(secret, 32) if len(secret) == KEY_HEX_DIGITS else None
        if raw is None:
            raise SigningError(_BAD_KEY)
        if not secp256k1_scalar_ok(raw.view()):
            raw.wipe()
            raise SigningError("invalid TRON private key: not a valid secp256k1 private key")
        return raw

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid TRON {network_name(testnet)} address: expected a base58check T... address"
        if not isinstance(address, str) or not address.startswith("T"):
            raise InvalidKeyError(message)
        attempt(message, lambda: TrxAddrDecoder.DecodeAddr(address))


TRON = TronChain("TRON", "tron", Bip44Network(195), Bip44Network(195))
TRON.signer = LazySigner("kms.signing.tron:TronSigner", TRON.code)
CHAINS = (TRON,)
