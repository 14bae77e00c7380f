"""ADA (Cardano): signing through Tatum's Cardano Rosetta gateway, as ``@tatumio/cardano`` does.

The pending ``serializedTransaction`` is a JSON list of Rosetta operations (inputs with their coin identifiers,
outputs, change). As upstream: each key's address from ``construction/derive``, then ``preprocess`` (relative TTL
1000), ``metadata``, ``payloads``; every payload is signed with the BIP32-Ed25519 extended key of its address;
``combine`` returns the signed transaction, which is the txData.

Unlike upstream, nothing the gateway says is taken on trust: the derived address must be the one computed here, every
input must belong to a signing key (the wallet's own coins), outputs must be on the daemon's network, the unsigned
transaction the payloads name must hash to the signed payload and spend and pay exactly what the operations say, and
the combined transaction must carry that body and these signatures.

Raw key: the 64-byte extended key kL || kR (what upstream stores and prints as an ADA private key), optionally
followed by the 32-byte chain code (unused for signing). pycardano signs; it keeps the key as immutable bytes for
the length of one signature.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import cbor2
from pycardano import Address, Transaction, TransactionBody
from pycardano.crypto.bip32 import BIP32ED25519PrivateKey

from kms.api import NodeGateway, PendingTransaction
from kms.chains.ada import AdaFacts, clamped, enterprise_address
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import plain_json

MAX_SERIALIZED_CHARS = 2_000_000
MAX_OPERATIONS = 2_000
MAX_LOVELACE = 45_000_000_000_000_000  # the total ADA supply
_COIN = re.compile(r"([0-9a-fA-F]{64}):([0-9]{1,5})")
_HEX32 = re.compile(r"[0-9a-fA-F]{64}")
_AMOUNT = re.compile(r"-?[0-9]{1,20}")
_EXTENDED_KEY_SIZES = (64, 96)
_FOREIGN_BODY_FIELDS = (
    "certificates",
    "withdraws",
    "update",
    "mint",
    "script_data_hash",
    "collateral",
    "required_signers",
    "collateral_return",
    "total_collateral",
    "voting_procedures",
    "proposal_procedures",
    "donation",
)
"""Body parts a plain payment from Rosetta input/output operations never has: refused rather than signed."""


def _fail(message: str) -> SigningError:
    return SigningError(message)


@dataclass(frozen=True)
class Operations:
    """The checked Rosetta operations: what is spent (coin -> input address, lovelace) and what is paid."""

    raw: list[Any]
    inputs: Mapping[tuple[str, int], tuple[str, int]]
    outputs: tuple[tuple[str, int], ...]

    @property
    def fee(self) -> int:
        return sum(v for _, v in self.inputs.values()) - sum(v for _, v in self.outputs)


def _lovelace(operation: Mapping[str, Any], position: int, negative: bool) -> int:
    amount = operation.get("amount")
    currency = amount.get("currency") if isinstance(amount, dict) else None
    if not isinstance(currency, dict) or currency.get("symbol") != "ADA" or currency.get("decimals") != 6:
        raise _fail(f"ADA operation {position}: the amount is not in ADA (6 decimals)")
    value = amount.get("value")
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or value.startswith("-") != negative:
        raise _fail(f"ADA operation {position}: the amount is not a {'negative' if negative else 'positive'} integer")
    lovelace = abs(int(value))
    if not 0 < lovelace <= MAX_LOVELACE or amount.get("metadata") not in (None, {}):
        raise _fail(f"ADA operation {position}: the amount is out of range or carries tokens")
    return lovelace


def _checked_address(operation: Mapping[str, Any], position: int, testnet: bool) -> str:
    network = "a testnet" if testnet else "mainnet"
    account = operation.get("account")
    address = account.get("address") if isinstance(account, dict) else None
    try:
        parsed = Address.from_primitive(address) if isinstance(address, str) and len(address) < 200 else None
    except Exception as exc:  # pycardano raises several types for bad addresses
        raise _fail(f"ADA operation {position}: the address is not a Cardano address") from exc
    if parsed is None or str(parsed) != address:
        raise _fail(f"ADA operation {position}: the address is not a Cardano address")
    if (parsed.network.value == 0) != testnet:
        raise _fail(f"ADA operation {position}: the address is not on {network}")
    return address


def parse_operations(serialized: object, testnet: bool) -> Operations:
    operations = plain_json(serialized, MAX_SERIALIZED_CHARS, "ADA", "is missing or too large")
    if not isinstance(operations, list) or not 0 < len(operations) <= MAX_OPERATIONS:
        raise _fail("ADA serializedTransaction is not a list of Rosetta operations")
    inputs: dict[tuple[str, int], tuple[str, int]] = {}
    outputs: list[tuple[str, int]] = []
    for position, operation in enumerate(operations):
        if not isinstance(operation, dict) or operation.get("type") not in ("input", "output"):
            raise _fail(f"ADA operation {position} is neither an input nor an output")
        address = _checked_address(operation, position, testnet)
        if operation["type"] == "output":
            outputs.append((address, _lovelace(operation, position, negative=False)))
            continue
        change = operation.get("coin_change")
        coin = change.get("coin_identifier") if isinstance(change, dict) else None
        match = _COIN.fullmatch(coin.get("identifier", "")) if isinstance(coin, dict) else None
        if match is None or change.get("coin_action") != "coin_created":
            raise _fail(f"ADA operation {position}: the input names no coin (txHash:index)")
        key = (match.group(1).lower(), int(match.group(2)))
        if key in inputs:
            raise _fail(f"ADA operation {position} spends a coin twice")
        inputs[key] = (address, _lovelace(operation, position, negative=True))
    result = Operations(raw=operations, inputs=inputs, outputs=tuple(outputs))
    if not inputs or not outputs or result.fee <= 0:
        raise _fail("ADA operations must spend inputs, pay outputs and leave a positive fee")
    return result


@dataclass
class _SigningKey:
    address: str
    public_key: bytes
    key: BIP32ED25519PrivateKey


@contextmanager
def _signing_keys(keys: Sequence[KeyHandle], testnet: bool) -> Iterator[dict[str, _SigningKey]]:
    """address -> signing key, for the length of the block (the handles' buffers stay the source)."""
    with ExitStack() as stack:
        found: dict[str, _SigningKey] = {}
        for handle in keys:
            raw = stack.enter_context(handle.raw())
            if len(raw) not in _EXTENDED_KEY_SIZES or not clamped(raw):
                raise _fail("an ADA key is not a 64-byte BIP32-Ed25519 extended key")
            key = BIP32ED25519PrivateKey(bytes(raw[:64]), bytes(raw[64:96]) or bytes(32))
            address = enterprise_address(key.public_key, testnet)
            found.setdefault(address, _SigningKey(address, key.public_key, key))
        try:
            yield found
        finally:
            found.clear()


def _answer(answer: object, what: str) -> Mapping[str, Any]:
    if not isinstance(answer, dict):
        raise _fail(f"Cardano Rosetta {what}: the answer is not a JSON object")
    return answer


def _tx_bytes(encoded: object, what: str) -> bytes:
    """The transaction (or body) bytes inside Cardano Rosetta's ``[transaction hex, extra data]`` CBOR wrapper."""
    try:
        wrapper = cbor2.loads(bytes.fromhex(encoded)) if isinstance(encoded, str) else None
        inner = wrapper[0] if isinstance(wrapper, list) and wrapper else None
        return bytes.fromhex(inner) if isinstance(inner, str) else bytes(inner) if isinstance(inner, bytes) else b""
    except (ValueError, cbor2.CBORDecodeError) as exc:
        raise _fail(f"Cardano Rosetta {what}: not a Rosetta-encoded Cardano transaction") from exc


def check_unsigned_body(body_bytes: bytes, operations: Operations) -> bytes:
    """The body's hash, after checking the body spends exactly the operations' coins and pays exactly their outputs."""
    try:
        body = TransactionBody.from_cbor(body_bytes)
    except Exception as exc:  # pycardano raises several types on bad CBOR
        raise _fail("Cardano Rosetta payloads: the unsigned transaction is not a Cardano transaction body") from exc
    spent = {(bytes(i.transaction_id).hex(), i.index) for i in body.inputs}
    paid = Counter((str(o.address), o.amount.coin if hasattr(o.amount, "coin") else o.amount) for o in body.outputs)
    extras = [getattr(body, name) for name in _FOREIGN_BODY_FIELDS]
    if spent != set(operations.inputs) or paid != Counter(operations.outputs) or any(extras):
        raise _fail("Cardano Rosetta payloads: the unsigned transaction is not the pending transaction")
    if any(getattr(o.amount, "multi_asset", None) for o in body.outputs) or body.fee != operations.fee:
        raise _fail("Cardano Rosetta payloads: the unsigned transaction moves tokens or another fee")
    return hashlib.blake2b(body_bytes, digest_size=32).digest()


class AdaSigner:
    """Signs ADA pending transactions through the Cardano Rosetta construction API behind the Tatum gateway.
    ``facts``: the gateway's route and network names (``kms.chains.ada.ADA_FACTS``)."""

    def __init__(self, facts: AdaFacts) -> None:
        self._facts = facts

    def __repr__(self) -> str:
        return "AdaSigner()"

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        if pending.chain != "ADA":
            raise _fail(f"pending transaction {pending.id!r} is not an ADA transaction")
        if not keys:
            raise _fail("ADA transactions need at least one key")
        operations = parse_operations(pending.serialized_transaction, testnet)
        if gateway is None:
            raise _fail("ADA signing needs the Cardano Rosetta gateway; no gateway was given")
        if gateway.testnet != testnet:
            raise _fail("the gateway's network is not the daemon's network")
        with _signing_keys(keys, testnet) as signing_keys:
            strangers = {address for address, _ in operations.inputs.values()} - set(signing_keys)
            if strangers:
                raise _fail("ADA inputs spend from an address none of the signing keys owns")
            return _Session(gateway, self._facts, testnet).run(operations, signing_keys)


class _Session:
    """One pass through the Rosetta construction flow."""

    def __init__(self, gateway: NodeGateway, facts: AdaFacts, testnet: bool) -> None:
        self.gateway = gateway
        self.facts = facts
        self.network_name = facts.rosetta_networks[testnet]
        self.network = {"blockchain": "cardano", "network": self.network_name}

    def call(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        path = self.facts.rosetta_path.format(network=self.network_name, operation=operation)
        request = {"network_identifier": self.network, **body}
        return _answer(self.gateway.tatum_post(path, request, what=f"Cardano {operation}"), operation)

    def run(self, operations: Operations, keys: Mapping[str, _SigningKey]) -> SignedTransaction:
        for key in keys.values():
            answer = self.call("derive", {"public_key": _public(key), "metadata": {}})
            account = answer.get("account_identifier")
            if not isinstance(account, dict) or account.get("address") != key.address:
                raise _fail("Cardano Rosetta derive: the gateway named another address for a signing key")
        ttl = {"relative_ttl": self.facts.relative_ttl}
        preprocess = self.call("preprocess", {"operations": operations.raw, "metadata": ttl})
        metadata = self.call("metadata", dict(preprocess))
        answer = self.call("payloads", {"operations": operations.raw, **metadata})
        unsigned, payloads = answer.get("unsigned_transaction"), answer.get("payloads")
        if not isinstance(payloads, list) or not 0 < len(payloads) <= len(keys):
            raise _fail("Cardano Rosetta payloads: the answer holds no list of payloads")
        body_hash = check_unsigned_body(_tx_bytes(unsigned, "payloads"), operations)
        signatures = [self._signature(payload, keys, body_hash) for payload in payloads]
        combined = self.call("combine", {"unsigned_transaction": unsigned, "signatures": signatures})
        signed = combined.get("signed_transaction")
        _check_combined(_tx_bytes(signed, "combine"), _tx_bytes(unsigned, "payloads"), signatures)
        assert isinstance(signed, str)
        return SignedTransaction(payload=signed)

    @staticmethod
    def _signature(payload: object, keys: Mapping[str, _SigningKey], body_hash: bytes) -> dict[str, Any]:
        account = payload.get("account_identifier") if isinstance(payload, dict) else None
        address = account.get("address") if isinstance(account, dict) else None
        if address not in keys:
            raise _fail("Cardano Rosetta payloads: a payload is for an address none of the signing keys owns")
        assert isinstance(payload, dict)
        message = payload.get("hex_bytes")
        if not isinstance(message, str) or not _HEX32.fullmatch(message) or bytes.fromhex(message) != body_hash:
            raise _fail("Cardano Rosetta payloads: a payload is not the hash of the unsigned transaction")
        if payload.get("signature_type", "ed25519") != "ed25519":
            raise _fail("Cardano Rosetta payloads: a payload asks for a signature other than ed25519")
        key = keys[address]
        return {
            "signing_payload": payload,
            "public_key": _public(key),
            "signature_type": "ed25519",
            "hex_bytes": key.key.sign(bytes.fromhex(message)).hex(),
        }


def _public(key: _SigningKey) -> dict[str, str]:
    return {"hex_bytes": key.public_key.hex(), "curve_type": "edwards25519"}


def _check_combined(signed_bytes: bytes, unsigned_body: bytes, signatures: Sequence[Mapping[str, Any]]) -> None:
    try:
        transaction = cbor2.loads(signed_bytes)
        parsed = Transaction.from_cbor(signed_bytes)
    except Exception as exc:  # cbor2 and pycardano raise several types on bad CBOR
        raise _fail("Cardano Rosetta combine: the answer is not a Cardano transaction") from exc
    if not isinstance(transaction, list) or transaction[0] != cbor2.loads(unsigned_body):
        raise _fail("Cardano Rosetta combine: the signed transaction is not the transaction that was signed")
    witnesses = {
        (bytes(w.vkey.payload).hex(), bytes(w.signature).hex())
        for w in parsed.transaction_witness_set.vkey_witnesses or []
    }
    wanted = {(s["public_key"]["hex_bytes"], s["hex_bytes"]) for s in signatures}
    if not wanted <= witnesses:
        raise _fail("Cardano Rosetta combine: the signed transaction lacks the signatures given")
