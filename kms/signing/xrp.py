"""XRP: sign a pending transaction as upstream's ``@tatumio/xrp`` 2.2.100 does (xrpl.js 2.14 ``Wallet.sign``).

``serializedTransaction`` is the autofilled transaction JSON. The signature covers SHA-512Half of the signing prefix
and the canonical binary encoding; ``sEd...`` seeds sign with ed25519, other seeds with secp256k1 (DER, RFC 6979,
low-S); ``SigningPubKey`` and ``TxnSignature`` are added and the binary blob, upper-case hex, is what upstream posts
to the chain's broadcast route. Beyond upstream: the transaction's ``Account`` must be the wallet's address.

The raw key of an XRP wallet is its family seed text (ASCII; checked by ``kms.chains.xrp``, which gives the chain
code through the constructor): it carries the algorithm, which the 16 seed bytes alone do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import check_chain, parse_json_object, single_key

_SIGNATURE_FIELDS = ("TxnSignature", "Signers")
_ED25519_PREFIX = "ED"
_BAD_SEED = "invalid XRP secret: expected an XRP Ledger family seed (s...)"


def _signing_key(seed: bytearray) -> tuple[str, Callable[[bytes], str]]:
    """The public key (``SigningPubKey``) and a signing function for the seed.

    ed25519 signs through PyNaCl (libsodium): the XRPL key is the first half of SHA-512 of the seed's 16 bytes, and
    ed25519 is deterministic, so the bytes are those of xrpl-py's pure-Python signer at a hundredth of the cost (the
    tests hold the two against each other and against upstream's vectors). secp256k1 goes through xrpl-py."""
    from xrpl import CryptoAlgorithm
    from xrpl.core.addresscodec import decode_seed
    from xrpl.core.keypairs import derive_keypair, sign

    try:
        text = seed.decode("ascii")
        entropy, algorithm = decode_seed(text)
    except Exception:  # the library's message may quote the seed
        raise SigningError(_BAD_SEED) from None
    if algorithm == CryptoAlgorithm.ED25519:
        from nacl.signing import SigningKey

        key = SigningKey(hashlib.sha512(entropy).digest()[:32])
        public_key = _ED25519_PREFIX + key.verify_key.encode().hex().upper()
        return public_key, lambda message: key.sign(message).signature.hex().upper()
    try:
        public_key, private_key = derive_keypair(text)
    except Exception:
        raise SigningError(_BAD_SEED) from None
    return public_key, lambda message: sign(message, private_key)


def parse_transaction(pending: PendingTransaction, code: str) -> dict[str, Any]:
    """The transaction JSON, checked as the signer checks it (also the intent decoder's reading)."""
    tx = parse_json_object(pending.serialized_transaction, code)
    present = [name for name in _SIGNATURE_FIELDS if name in tx]
    if present:
        raise SigningError(f'XRP transaction must not contain "TxnSignature" or "Signers" (it has {present[0]})')
    if not isinstance(tx.get("TransactionType"), str):
        raise SigningError("XRP transaction has no TransactionType")
    if not isinstance(tx.get("Account"), str):
        raise SigningError("XRP transaction has no Account")
    return tx


_MEMO_HEX_FIELDS = frozenset({"MemoData", "MemoType", "MemoFormat"})


def _normalized(value: Any) -> Any:
    """What xrpl.js's own round-trip check (``checkTxSerialization``) lets differ: issued-currency amounts compare by
    number (it strips trailing zeros) and memo fields by upper-case hex."""
    if isinstance(value, dict):
        if set(value) == {"currency", "issuer", "value"} and isinstance(value["value"], str):
            try:
                return {**value, "value": Decimal(value["value"])}
            except InvalidOperation:
                return value
        return {
            key: item.upper() if key in _MEMO_HEX_FIELDS and isinstance(item, str) else _normalized(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def _encode_signed(tx: dict[str, Any], public_key: str, sign: Callable[[bytes], str]) -> str:
    from xrpl.core.binarycodec import decode, encode, encode_for_signing

    unsigned = {**tx, "SigningPubKey": public_key}
    try:
        signing_bytes = bytes.fromhex(encode_for_signing(unsigned))
        signed = {**unsigned, "TxnSignature": sign(signing_bytes)}
        blob = encode(signed)
        decoded = decode(blob)
    except SigningError:
        raise
    except Exception as exc:
        raise SigningError(f"XRP transaction cannot be encoded: {type(exc).__name__}") from None
    if _normalized(decoded) != _normalized(signed):
        raise SigningError("Serialized transaction does not match original txJSON")
    return blob


class XrpSigner:
    """Signs XRP pending transactions with one wallet; no network call."""

    def __init__(self, code: str) -> None:
        self.code = code

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        from xrpl.core.keypairs import derive_classic_address

        check_chain(pending, self.code)
        key = single_key(self.code, keys)
        tx = parse_transaction(pending, self.code)
        with key.raw() as seed:
            public_key, sign = _signing_key(seed)
        try:
            address = derive_classic_address(public_key)
            if tx["Account"] != address:
                raise SigningError("the XRP transaction's Account is not the address of the signing key")
            return SignedTransaction(_encode_signed(tx, public_key, sign))
        finally:
            del sign


def sign_rate(signer: XrpSigner, pending: PendingTransaction, key: KeyHandle, rounds: int) -> None:
    """Sign ``pending`` ``rounds`` times (for bench/sign.py)."""
    for _ in range(rounds):
        signer.sign(pending, [key], True, None)
