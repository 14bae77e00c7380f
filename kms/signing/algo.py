"""ALGO signing: upstream's JSON form of an algosdk 1.16 payment ``Transaction``, signed with the wallet's ed25519 key.

Upstream (``signAlgoKMSTransaction``, @tatumio/tatum 1.37.68) parses ``JSON.stringify(algosdk.Transaction)`` (byte
arrays as ``{"0": b0, "1": b1, ...}`` maps or ``{"type": "Buffer", "data": [...]}``), rebuilds the transaction and
posts the hex of the msgpack ``SignedTransaction`` to ``/v3/algorand/broadcast``. No network call is made.

Only flat-fee payments are accepted (what the Tatum API prepares for KMS transfers): upstream's rebuild silently
drops an asset transaction's reserve/freeze/clawback addresses, a lease and a rekey, and multiplies a non-flat fee a
second time, so signing those would sign something other than what was asked. Each is refused here.

Secrets: the stored secret is base32 of the 64-byte algosdk key (seed || public key); the chain module
(``kms.chains.algo``) decodes it into the raw key handed to the signer, the 32-byte seed. PyNaCl keeps its own
immutable copy of the seed for the duration of the call. The networks' genesis comes in through the constructor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from algosdk import encoding
from algosdk.transaction import PaymentTxn, SignedTransaction, SuggestedParams
from nacl.signing import SigningKey

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction as KmsSignedTransaction
from kms.signing.pending import one_key_of_chain, plain_json_fields

CHAIN = "ALGO"

MAX_SERIALIZED = 64 * 1024
MAX_NOTE = 1024
"""Algorand's protocol limit on a note (bytes)."""
MAX_VALIDITY = 1000
"""Algorand's protocol limit on lastRound - firstRound."""
UINT64_MAX = 2**64 - 1

_ALLOWED_FIELDS = frozenset(
    {
        "name", "tag", "from", "to", "amount", "note", "type", "flatFee", "genesisHash", "fee",
        "firstRound", "lastRound", "genesisID", "appArgs", "lease",
    }
)  # fmt: skip
_TX_TAG = b"TX"

Genesis = Mapping[bool, tuple[str, bytes]]
"""Per network (testnet flag): the genesis id and hash a transaction must name (``kms.chains.algo.GENESIS``)."""


# --- parsing upstream's JSON ---------------------------------------------------------------------------------------


def _byte_map(value: object, what: str, length: int | None = None) -> bytes:
    """A JS typed array as JSON.stringify writes it: ``{"0": b0, "1": b1, ...}`` (indices 0..n-1, bytes)."""
    if not isinstance(value, Mapping):
        raise SigningError(f"ALGO transaction: {what} is not a byte map")
    try:
        indices = sorted(int(k) for k in value)
    except (TypeError, ValueError):
        raise SigningError(f"ALGO transaction: {what} has a non-numeric index") from None
    if indices != list(range(len(indices))) or any(str(i) not in value for i in indices):
        raise SigningError(f"ALGO transaction: {what} has gaps or duplicate indices")
    return _bytes_of([value[str(i)] for i in indices], what, length)


def _buffer(value: object, what: str, length: int | None = None) -> bytes:
    """A Node Buffer as JSON.stringify writes it: ``{"type": "Buffer", "data": [...]}``."""
    if not isinstance(value, Mapping) or value.get("type") != "Buffer" or set(value) != {"type", "data"}:
        raise SigningError(f"ALGO transaction: {what} is not a Buffer")
    data = value["data"]
    if not isinstance(data, list):
        raise SigningError(f"ALGO transaction: {what} is not a Buffer")
    return _bytes_of(data, what, length)


def _bytes_of(items: list[object], what: str, length: int | None) -> bytes:
    if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in items):
        raise SigningError(f"ALGO transaction: {what} holds a value that is not a byte")
    if length is not None and len(items) != length:
        raise SigningError(f"ALGO transaction: {what} must be {length} bytes")
    return bytes(items)  # type: ignore[arg-type]


def _address(value: object, what: str) -> str:
    """An algosdk 1.16 ``Address`` object (``{publicKey, checksum}``) as an Algorand address, checksum verified."""
    if not isinstance(value, Mapping) or set(value) != {"publicKey", "checksum"}:
        raise SigningError(f"ALGO transaction: {what} is not an address object")
    public_key = _byte_map(value["publicKey"], f"{what}.publicKey", 32)
    checksum = _byte_map(value["checksum"], f"{what}.checksum", 4)
    if hashlib.new("sha512_256", public_key).digest()[-4:] != checksum:
        raise SigningError(f"ALGO transaction: {what} has a wrong checksum")
    return encoding.encode_address(public_key)


def _uint(value: object, what: str, low: int = 0, high: int = UINT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SigningError(f"ALGO transaction: {what} must be an integer from {low} to {high}")
    return value


def _load(pending: PendingTransaction) -> Mapping[str, Any]:
    txn = plain_json_fields(pending, CHAIN, MAX_SERIALIZED, _ALLOWED_FIELDS, " (only payments are signed)")
    if txn.get("type") != "pay":
        raise SigningError("ALGO transaction: only payment ('pay') transactions are signed")
    if txn.get("flatFee") is not True:
        raise SigningError("ALGO transaction: only flat-fee transactions are signed (upstream rescales other fees)")
    if txn.get("name", "Transaction") != "Transaction":
        raise SigningError("ALGO transaction: not an algosdk Transaction")
    if "tag" in txn and _buffer(txn["tag"], "tag") != _TX_TAG:
        raise SigningError("ALGO transaction: tag is not 'TX'")
    if txn.get("appArgs", []) != []:
        raise SigningError("ALGO transaction: application arguments on a payment")
    if txn.get("lease") not in (None, {}):
        raise SigningError("ALGO transaction: a lease is not supported (upstream drops it)")
    return txn


def parse_payment(pending: PendingTransaction, genesis: Genesis, testnet: bool) -> PaymentTxn:
    """The payment upstream would sign, as a py-algorand-sdk ``PaymentTxn``; SigningError on anything else, including
    a genesis that is not the daemon's network."""
    txn = _load(pending)
    genesis_id, genesis_hash = genesis[testnet]
    network = "testnet" if testnet else "mainnet"
    if _buffer(txn.get("genesisHash"), "genesisHash", 32) != genesis_hash or txn.get("genesisID") != genesis_id:
        raise SigningError(f"ALGO transaction: its genesis is not Algorand {network}, the network this daemon signs")
    first = _uint(txn.get("firstRound"), "firstRound", 1)
    last = _uint(txn.get("lastRound"), "lastRound", first)
    if last - first > MAX_VALIDITY:
        raise SigningError(f"ALGO transaction: validity window over {MAX_VALIDITY} rounds")
    note = _byte_map(txn.get("note", {}), "note")
    if len(note) > MAX_NOTE:
        raise SigningError(f"ALGO transaction: note over {MAX_NOTE} bytes")
    params = SuggestedParams(
        fee=_uint(txn.get("fee"), "fee"),
        first=first,
        last=last,
        gh=base64.b64encode(genesis_hash).decode("ascii"),
        gen=genesis_id,
        flat_fee=True,
    )
    return PaymentTxn(
        sender=_address(txn.get("from"), "from"),
        sp=params,
        receiver=_address(txn.get("to"), "to"),
        amt=_uint(txn.get("amount", 0), "amount"),
        note=note or None,
    )


class AlgoSigner:
    """Signs ALGO pending transactions like upstream: the wallet's key must be the payment's sender; txData is the hex
    msgpack ``SignedTransaction``; ``meta["txId"]`` is the Algorand transaction id. ``genesis``: the networks' genesis
    id and hash (from the chain module)."""

    def __init__(self, genesis: Genesis) -> None:
        self._genesis = dict(genesis)

    def __repr__(self) -> str:
        return "AlgoSigner()"

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> KmsSignedTransaction:
        key = one_key_of_chain(pending, keys, CHAIN)
        txn = parse_payment(pending, self._genesis, testnet)
        message = txn.bytes_to_sign()
        with key.raw() as seed:
            if len(seed) != 32:
                raise SigningError("ALGO key: expected a 32-byte ed25519 seed")
            signing_key = SigningKey(bytes(seed))
        wallet_address = encoding.encode_address(bytes(signing_key.verify_key))
        if wallet_address != txn.sender:
            raise SigningError("ALGO transaction: its sender is not this wallet's address")
        signature = signing_key.sign(message).signature
        del signing_key
        signed = SignedTransaction(txn, base64.b64encode(signature).decode("ascii"))
        payload = base64.b64decode(encoding.msgpack_encode(signed)).hex()
        return KmsSignedTransaction(payload=payload, meta={"txId": txn.get_txid()})
