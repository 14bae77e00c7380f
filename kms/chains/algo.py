"""ALGO: a random ed25519 key pair. The secret is upstream's: RFC 4648 base32 of the 64-byte algosdk secret key
(seed || public key), upper case, without padding (103 characters); the address is Algorand's base32 form.

Signing (``kms.signing.algo``): the raw key is the 32-byte seed; the networks a daemon signs for are told apart by
their genesis (id and hash) below. Upstream broadcasts to ``POST /v3/algorand/broadcast``; no look-ups.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

from bip_utils import AlgoAddrDecoder, AlgoAddrEncoder, Ed25519PrivateKey

from kms.chains.base import LazySigner
from kms.chains.common import attempt, base32_secret, network_name
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer, zero_bytearray

GENESIS: dict[bool, tuple[str, bytes]] = {
    False: ("mainnet-v1.0", base64.b64decode("wGHE2Pwdvd7S12BL5FaOP20EGYesN73ktiC1qzkkit8=")),
    True: ("testnet-v1.0", base64.b64decode("SGO1GKSzyE7IEPItTxCByw9x8FmnrCDexi9/cOUJOiI=")),
}
"""Genesis id and hash of Algorand mainnet (False) and testnet (True): a transaction for another network is refused."""

_SECRET = re.compile(r"[A-Za-z2-7]{103}=?")
_MESSAGE = "invalid ALGO secret: expected the 103-character base32 form of a 64-byte Algorand secret key"


def _public_key(seed: bytes) -> bytes:
    key = Ed25519PrivateKey.FromBytes(seed)
    return key.PublicKey().RawCompressed().ToBytes()[1:]


class AlgoChain(KeyPairChain):
    record_key_field = "secret"

    def new_key(self, testnet: bool) -> tuple[str, str]:
        seed = secrets.token_bytes(32)
        public_key = _public_key(seed)
        secret = base64.b32encode(seed + public_key).decode("ascii").rstrip("=")
        return secret, AlgoAddrEncoder.EncodeKey(public_key)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        if not isinstance(private_key, str) or not _SECRET.fullmatch(private_key):
            raise InvalidKeyError(_MESSAGE)
        try:
            secret_key = base64.b32decode(private_key.rstrip("=") + "=", casefold=True)
        except (binascii.Error, ValueError):
            raise InvalidKeyError(_MESSAGE) from None
        if len(secret_key) != 64:
            raise InvalidKeyError(_MESSAGE)
        public_key = attempt(_MESSAGE, lambda: _public_key(secret_key[:32]))
        if public_key != secret_key[32:]:
            raise InvalidKeyError("invalid ALGO secret: its public half does not belong to its private half")
        return AlgoAddrEncoder.EncodeKey(public_key)

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte ed25519 seed, decoded from the base32 secret without a ``str`` copy, after checking that its
        public half belongs to its private half (PyNaCl takes the seed as ``bytes``: see SECURITY.md)."""
        full = base32_secret(secret, 64)
        if full is None:
            raise SigningError(_MESSAGE)
        with full:
            seed = SecretBuffer(full.view()[:32])
            public = bytearray(_public_key(bytes(seed.view())))
            try:
                if public != full.view()[32:]:
                    seed.wipe()
                    raise SigningError("invalid ALGO secret: its public half does not belong to its private half")
            finally:
                zero_bytearray(public)
            return seed

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid ALGO {network_name(testnet)} address"
        if not isinstance(address, str) or len(address) != 58:
            raise InvalidKeyError(message)
        attempt(message, lambda: AlgoAddrDecoder.DecodeAddr(address))


ALGO = AlgoChain("ALGO", "algorand")
ALGO.signer = LazySigner("kms.signing.algo:AlgoSigner", GENESIS)
CHAINS = (ALGO,)
