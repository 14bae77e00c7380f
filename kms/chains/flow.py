"""FLOW: m/44'/539'/0'/0 on both networks. Flow accounts are created on chain, so what upstream calls the address
of index i is the uncompressed public key (128 hex digits, no ``04`` prefix). Private keys are hex as upstream
prints them: ``BN.toString(16)``, i.e. without leading zeros (so sometimes shorter than 64 digits)."""

from __future__ import annotations

from bip_utils import Secp256k1PublicKey

from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, is_hex, network_name
from kms.errors import InvalidKeyError

_ACCOUNT_ADDRESS_DIGITS = 16


class FlowChain(Secp256k1Bip44Chain):
    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        return public_key.RawUncompressed().ToBytes()[1:].hex()

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return format(int.from_bytes(raw, "big"), "x")

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        if not isinstance(text, str) or not 1 <= len(text) <= 64 or not is_hex(text):
            raise InvalidKeyError("invalid FLOW private key: expected up to 64 hex digits")
        return int(text, 16).to_bytes(32, "big")

    def validate_address(self, address: str, testnet: bool) -> None:
        """Either what ``address_at`` returns (a public key on secp256k1) or a Flow account address (8 bytes of hex,
        optionally ``0x``-prefixed). Flow's network codeword check is not applied to account addresses."""
        message = f"invalid FLOW {network_name(testnet)} address: expected a 128-hex public key or a Flow account"
        if not isinstance(address, str):
            raise InvalidKeyError(message)
        digits = address[2:] if address.startswith("0x") else address
        if len(digits) == _ACCOUNT_ADDRESS_DIGITS and is_hex(digits):
            return
        if address.startswith("0x") or len(digits) != 128 or not is_hex(digits):
            raise InvalidKeyError(message)
        attempt(message, lambda: Secp256k1PublicKey.FromBytes(b"\x04" + bytes.fromhex(digits)))


FLOW = FlowChain("FLOW", "flow", Bip44Network(539), Bip44Network(539))
CHAINS = (FLOW,)
