"""TRON: sign a pending transaction as upstream's ``@tatumio/tron`` 2.2.100 does (tronweb 5.3.5 ``trx.sign``).

``serializedTransaction`` is the transaction JSON the full node returned. Upstream's three refusals, in order:
"Transaction is already signed"; "Private key does not match address in transaction" (``contract[0]``'s
``owner_address``); "Invalid transaction" (``raw_data`` re-encoded with the TRON protobuf definitions is not
``raw_data_hex``, or its SHA-256 is not ``txID``). Then the 32 txID bytes are signed (secp256k1, RFC 6979, low-S) as
``r || s || v`` in hex, ``v`` = recovery id + 27 in upper case as tronweb prints it; ``signature: [sig]`` is appended
and the JSON, key order kept, is what upstream posts to ``/v3/tron/broadcast``. No network call.

The raw key of a TRON wallet is the 32-byte secp256k1 scalar (a mnemonic wallet's key at the pending ``index`` is
derived by the chain module first and handed over as its 64 hex digits).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import check_chain, js_json, parse_json_object, single_key
from kms.signing.tron_protobuf import ADDRESS_PREFIX, InvalidTransaction, address_bytes, encode_raw_data

CODE = "TRON"
BROADCAST_PATH = "/v3/tron/broadcast"
ALREADY_SIGNED = "Transaction is already signed"
NOT_OWNER = "Private key does not match address in transaction"
INVALID = "Invalid transaction"
_PRIVATE_KEY = re.compile(r"[0-9a-fA-F]{64}")
_TXID = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_BAD_KEY = "invalid TRON private key: expected 64 hex digits"


def tron_raw_key(private_key_hex: str) -> SecretBuffer:
    """The stored TRON private key (64 hex digits, or a mnemonic wallet's key as ``private_key_at`` prints it) as the
    raw key the signer takes: the 32-byte secp256k1 scalar."""
    if not isinstance(private_key_hex, str) or not _PRIVATE_KEY.fullmatch(private_key_hex):
        raise SigningError(_BAD_KEY)
    return SecretBuffer(bytearray.fromhex(private_key_hex))


def tron_address(public_key_uncompressed: bytes) -> bytes:
    """21-byte TRON address (0x41 + last 20 bytes of Keccak-256 of the 64-byte public key)."""
    from eth_utils import keccak

    return bytes([ADDRESS_PREFIX]) + keccak(public_key_uncompressed[1:])[-20:]


def _owner(tx: Mapping[str, Any]) -> bytes:
    raw_data = tx.get("raw_data")
    contracts = raw_data.get("contract") if isinstance(raw_data, Mapping) else None
    first = contracts[0] if isinstance(contracts, list) and contracts else None
    parameter = first.get("parameter") if isinstance(first, Mapping) else None
    value = parameter.get("value") if isinstance(parameter, Mapping) else None
    if not isinstance(value, Mapping) or "owner_address" not in value:
        raise SigningError(f"{INVALID}: raw_data.contract[0].parameter.value.owner_address is missing")
    try:
        return address_bytes(value["owner_address"], "owner_address")
    except InvalidTransaction:
        raise SigningError(NOT_OWNER) from None


def check_raw_data(tx: Mapping[str, Any]) -> bytes:
    """tronweb ``txCheck``: the txID bytes, once ``raw_data`` re-encodes to ``raw_data_hex`` and hashes to ``txID``."""
    raw_data, raw_hex, txid = tx.get("raw_data"), tx.get("raw_data_hex"), tx.get("txID")
    if not isinstance(raw_data, Mapping) or not isinstance(raw_hex, str) or not isinstance(txid, str):
        raise SigningError(f"{INVALID}: raw_data, raw_data_hex or txID is missing")
    if not _TXID.fullmatch(txid):
        raise SigningError(f"{INVALID}: txID is not 32 bytes of hex")
    encoded = encode_raw_data(raw_data)
    digest = hashlib.sha256(encoded).digest()
    # upstream's own words for both (the batch report shows them as they are)
    if encoded.hex() != raw_hex.lower() or digest.hex() != txid.lower().removeprefix("0x"):
        raise SigningError(INVALID)
    return digest


def _signature_hex(private_key: Any, txid: bytes) -> str:
    signature = private_key.sign_recoverable(txid, hasher=None)
    return signature[:64].hex() + format(signature[64] + 27, "02X")


class TronSigner:
    """Signs TRON pending transactions with one key; no network call."""

    code = CODE
    broadcast_path = BROADCAST_PATH

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        from coincurve import PrivateKey

        check_chain(pending, CODE)
        key = single_key(CODE, keys)
        if key.index is not None and pending.index is not None and key.index != pending.index:
            raise SigningError("the signing key was derived at another index than the pending transaction names")
        tx = parse_json_object(pending.serialized_transaction, CODE)
        if "signature" in tx:
            raise SigningError(ALREADY_SIGNED)
        owner = _owner(tx)
        with key.raw() as raw:
            try:
                private_key = PrivateKey(bytes(raw))
            except Exception:
                raise SigningError(f"the key for signatureId {key.signature_id!r} is not a secp256k1 key") from None
        try:
            if tron_address(private_key.public_key.format(compressed=False)) != owner:
                raise SigningError(NOT_OWNER)
            txid = check_raw_data(tx)
            tx["signature"] = [_signature_hex(private_key, txid)]
        finally:
            del private_key
        return SignedTransaction(js_json(tx))


def sign_rate(pending: PendingTransaction, key: KeyHandle, rounds: int) -> None:
    """Sign ``pending`` ``rounds`` times (for bench/sign.py)."""
    signer = TronSigner()
    for _ in range(rounds):
        signer.sign(pending, [key], True, None)
