"""FLOW: m/44'/539'/0'/0 on both networks. Flow accounts are created on chain, so what upstream calls the address
of index i is the uncompressed public key (128 hex digits, no ``04`` prefix). Private keys are hex as upstream
prints them: ``BN.toString(16)``, i.e. without leading zeros (so sometimes shorter than 64 digits).

Signing (``kms.signing.flow``): the wallet's key signs as authorizer (key 0) of a transaction whose proposer and payer
are Tatum's keys; it goes to a Flow access node (setting ``TATUM_KMS_FLOW_NODE_URL``, default upstream's public REST
node) and its id to ``POST /v3/flow/broadcast``. Everything upstream-specific about that is ``FLOW_FACTS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bip_utils import Secp256k1PublicKey

from kms.chains.base import KIND_MNEMONIC, LazySigner
from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, hex_number_secret, is_hex, network_name, secp256k1_scalar_ok
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

_ACCOUNT_ADDRESS_DIGITS = 16
NODE_URL_SETTING = "TATUM_KMS_FLOW_NODE_URL"


@dataclass(frozen=True)
class FlowFacts:
    """What upstream's FLOW signing reaches and accepts, per daemon network (testnet flag) where it differs."""

    default_node_urls: Mapping[bool, str]
    """The access nodes' REST APIs upstream's SDK hard-codes."""
    chain_ids: Mapping[bool, str]
    """What ``/v1/network/parameters`` must report."""
    contract_addresses: Mapping[bool, Mapping[str, str]]
    """The contracts the templates import (upstream's FLOW_{TESTNET,MAINNET}_ADDRESSES, plus the NonFungibleToken
    standard the Cadence 1.0 NFT templates need, at Flow's core-contract addresses)."""
    proposal_key_path: str = "/v3/flow/proposal/{is_payer}"
    """Tatum's proposer (``false``) and payer (``true``) keys: ``{address, keyId}``."""
    sign_path: str = "/v3/flow/sign"
    """Tatum signs a message with its proposer or payer key: ``{data, isPayer}`` -> ``{signature}``."""
    release_path: str = "/v3/flow/broadcast"
    """Upstream's SDK frees Tatum's proposal key here (``{txData, proposalKey}``) after every attempt."""
    gas_limit: int = 9999
    """The computation limit upstream's SDK gives every transaction."""


FLOW_FACTS = FlowFacts(
    default_node_urls={True: "https://rest-testnet.onflow.org", False: "https://rest-mainnet.onflow.org"},
    chain_ids={True: "flow-testnet", False: "flow-mainnet"},
    contract_addresses={
        True: {
            "FlowToken": "0x7e60df042a9c0868",
            "FungibleToken": "0x9a0766d93b6608b7",
            "FUSD": "0xe223d8a629e49c68",
            "TatumMultiNFT": "0x87fe4ebd0cddde06",
            "NonFungibleToken": "0x631e88ae7f1d7c20",
        },
        False: {
            "FlowToken": "0x1654653399040a61",
            "FungibleToken": "0xf233dcee88fe0abe",
            "FUSD": "0x3c5959b568896393",
            "TatumMultiNFT": "0x354e6721564ccd2c",
            "NonFungibleToken": "0x1d7e57aa55817448",
        },
    },
)


class FlowChain(Secp256k1Bip44Chain):
    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        return public_key.RawUncompressed().ToBytes()[1:].hex()

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return format(int.from_bytes(raw, "big"), "x")

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        if not isinstance(text, str) or not 1 <= len(text) <= 64 or not is_hex(text):
            raise InvalidKeyError("invalid FLOW private key: expected up to 64 hex digits")
        return int(text, 16).to_bytes(32, "big")

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte secp256k1 scalar: derived at ``index``, or decoded from the key text (1 to 64 hex digits, as
        upstream prints it without leading zeros) without a ``str`` copy."""
        if kind == KIND_MNEMONIC:
            return super().raw_signing_key(secret, kind, index, testnet)
        raw = hex_number_secret(secret, 32)
        if raw is None or not secp256k1_scalar_ok(raw.view()):
            if raw is not None:
                raw.wipe()
            raise SigningError("invalid FLOW private key: expected up to 64 hex digits of a secp256k1 key")
        return raw

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
FLOW.signer = LazySigner("kms.signing.flow:FlowSigner", FLOW_FACTS, settings={"node_url": NODE_URL_SETTING})
CHAINS = (FLOW,)
