"""EVM chains: ETH, BSC, MATIC, CELO, KLAY, XDC, ONE, VET, KCS.

All derive ``m/44'/COIN'/0'/0`` (testnet: coin 1), print addresses as lower-case hex (XDC with an ``xdc`` prefix
instead of ``0x``) and keys as ``0x`` + 64 hex digits. They differ only in data.
"""

from __future__ import annotations

from bip_utils import EthAddrDecoder, EthAddrEncoder, OneAddrDecoder, Secp256k1PublicKey

from kms.chains.base import LazySigner
from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, is_hex, network_name, parse_hex
from kms.errors import InvalidKeyError

TESTNET_COIN = 1


class EvmChain(Secp256k1Bip44Chain):
    record_order = ("xpub", "mnemonic")

    def __init__(self, code: str, broadcast_route: str, coin: int, address_prefix: str = "0x") -> None:
        super().__init__(code, broadcast_route, Bip44Network(coin), Bip44Network(TESTNET_COIN))
        self.address_prefix = address_prefix

    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        hex_address = EthAddrEncoder.EncodeKey(public_key, skip_chksum_enc=True)  # "0x" + 40 lower-case hex
        return self.address_prefix + hex_address[2:].lower()

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return "0x" + raw.hex()

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        return parse_hex(
            text, nbytes=32, prefix="0x", message=f"invalid {self.code} private key: expected 0x followed by 64 hex"
        )

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid {self.code} {network_name(testnet)} address: expected {self.address_prefix} + 40 hex"
        if not isinstance(address, str) or not address.startswith(self.address_prefix):
            raise InvalidKeyError(message)
        digits = address[len(self.address_prefix) :]
        if len(digits) != 40 or not is_hex(digits):
            raise InvalidKeyError(message)
        if digits != digits.lower() and digits != digits.upper():
            # Mixed case is an EIP-55 checksum, and then it must be right.
            attempt(
                f"invalid {self.code} address: the EIP-55 checksum (mixed case) does not match",
                lambda: EthAddrDecoder.DecodeAddr("0x" + digits),
            )


class HarmonyChain(EvmChain):
    """ONE: upstream prints the 0x form; Harmony's own bech32 ``one1...`` form names the same account."""

    def validate_address(self, address: str, testnet: bool) -> None:
        if isinstance(address, str) and address.startswith("one1"):
            attempt(
                f"invalid {self.code} address: bad one1 bech32 encoding", lambda: OneAddrDecoder.DecodeAddr(address)
            )
            return
        super().validate_address(address, testnet)


# Coin types from the SDK's constants (ETH_DERIVATION_PATH, ...); KCS from the SDK's shared DERIVATION_PATH table.
ETH = EvmChain("ETH", "ethereum", 60)
BSC = EvmChain("BSC", "bsc", 60)
MATIC = EvmChain("MATIC", "polygon", 966)
CELO = EvmChain("CELO", "celo", 52752)
KLAY = EvmChain("KLAY", "klaytn", 8217)
XDC = EvmChain("XDC", "xdc", 550, address_prefix="xdc")
ONE = HarmonyChain("ONE", "one", 1023)
VET = EvmChain("VET", "vet", 818)
KCS = EvmChain("KCS", "kcs", 60)

CHAINS = (ETH, BSC, MATIC, CELO, KLAY, XDC, ONE, VET, KCS)

# VET is not an Ethereum-format chain (its transactions are Thor clauses); it has no signer yet.
for _chain in CHAINS:
    if _chain is not VET:
        _chain.signer = LazySigner("kms.signing.evm:evm_signer", _chain.code)
