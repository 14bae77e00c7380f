"""BNB (BNB Beacon Chain): a random secp256k1 key pair -> ``{address, privateKey}``; the key is 64 hex digits, the
address bech32 of HASH160(compressed public key) with HRP ``bnb`` (testnet ``tbnb``).

The chain halted for good on 2024-11-19 (BNB Chain Fusion; its tokens moved to BSC) and upstream's SDK no longer has
its signer. BNB wallets stay readable, exportable and removable; a BNB pending transaction is answered in the batch
report with "BNB Beacon Chain has shut down; nothing signed" (``retired``); ``checkconfig`` and ``report`` warn about
stored BNB wallets.
"""

from __future__ import annotations

from bip_utils import AtomAddrDecoder, AtomAddrEncoder

from kms.chains.common import attempt, network_name, parse_hex, random_secp256k1_key, secp256k1_key
from kms.chains.keypair import KeyPairChain
from kms.errors import InvalidKeyError

HALTED = "2024-11-19"
RETIRED = "BNB Beacon Chain has shut down"
_HRP = {False: "bnb", True: "tbnb"}
_MESSAGE = "invalid BNB private key: expected 64 hex digits"


class BnbChain(KeyPairChain):
    record_key_field = "privateKey"
    retired = RETIRED

    def new_key(self, testnet: bool) -> tuple[str, str]:
        key = random_secp256k1_key()
        return key.Raw().ToHex(), AtomAddrEncoder.EncodeKey(key.PublicKey(), hrp=_HRP[testnet])

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        key = secp256k1_key(parse_hex(private_key, nbytes=32, prefix="", message=_MESSAGE), _MESSAGE)
        return AtomAddrEncoder.EncodeKey(key.PublicKey(), hrp=_HRP[testnet])

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid BNB {network_name(testnet)} address: expected bech32 {_HRP[testnet]}1..."
        if not isinstance(address, str) or not address.startswith(_HRP[testnet] + "1"):
            raise InvalidKeyError(message)
        attempt(message, lambda: AtomAddrDecoder.DecodeAddr(address, hrp=_HRP[testnet]))


BNB = BnbChain("BNB", "bnb")
CHAINS = (BNB,)
