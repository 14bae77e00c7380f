"""TRON: m/44'/195'/0'/0 on both networks (Shasta/Nile use mainnet's address format), base58check ``T...``
addresses, keys as 64 hex digits without a prefix."""

from __future__ import annotations

from bip_utils import Secp256k1PublicKey, TrxAddrDecoder, TrxAddrEncoder

from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, network_name, parse_hex
from kms.errors import InvalidKeyError


class TronChain(Secp256k1Bip44Chain):
    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        return TrxAddrEncoder.EncodeKey(public_key)

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return raw.hex()

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        return parse_hex(text, nbytes=32, prefix="", message="invalid TRON private key: expected 64 hex digits")

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid TRON {network_name(testnet)} address: expected a base58check T... address"
        if not isinstance(address, str) or not address.startswith("T"):
            raise InvalidKeyError(message)
        attempt(message, lambda: TrxAddrDecoder.DecodeAddr(address))


TRON = TronChain("TRON", "tron", Bip44Network(195), Bip44Network(195))
CHAINS = (TRON,)
