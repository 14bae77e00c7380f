"""What the UTXO signers (BTC, LTC, DOGE and BCH) share: keys from their handles, strict field readers, and the key
list of an offchain withdrawal. The chains' facts (``SigningNetwork``: WIF versions, segwit, DOGE's checks) are in
``kms.chains.utxo``.

Keys arrive as handles holding ``kms.chains.utxo.RAW_KEY_LENGTH`` raw bytes (scalar, compressed flag); the scalar is
read inside the handle's ``with`` block, and libsecp256k1 (coincurve) keeps its own copy while signing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
from bitcointx.core import Hash160 as hash160

from kms.api import PendingTransaction
from kms.chains.utxo import RAW_KEY_LENGTH, SigningNetwork
from kms.errors import SigningError
from kms.keys import KeyHandle

MAX_SERIALIZED_CHARS = 4_000_000
"""Far above any standard transaction (100 kvB); refuses absurd input before parsing it."""

UINT32_MAX = 2**32 - 1
JS_SAFE_INTEGER = 2**53 - 1
"""Upstream handles amounts as JavaScript numbers: anything above this is not an exact amount there."""


@dataclass(frozen=True, repr=False)
class UtxoKey:
    """One decoded signing key: the libsecp256k1 key and the public key in the encoding its WIF asks for."""

    private_key: coincurve.PrivateKey
    public_key: bytes
    compressed: bool
    pubkey_hash: bytes

    def __repr__(self) -> str:
        return f"UtxoKey(public_key={self.public_key.hex()}, private_key=<hidden>)"


def decode_key(handle: KeyHandle, position: int) -> UtxoKey:
    """Key number ``position`` (for messages only) from its handle."""
    with handle.raw() as raw:
        if len(raw) != RAW_KEY_LENGTH or raw[32] not in (0, 1):
            raise SigningError(f"key {position} is not a UTXO signing key")
        compressed = raw[32] == 1
        try:
            private_key = coincurve.PrivateKey(bytes(memoryview(raw)[:32]))
        except ValueError:
            raise SigningError(f"key {position} is out of the secp256k1 key range") from None
    public_key = private_key.public_key.format(compressed=compressed)
    return UtxoKey(private_key, public_key, compressed, hash160(public_key))


def decode_keys(keys: Sequence[KeyHandle]) -> list[UtxoKey]:
    if not keys:
        raise SigningError("no signing keys were resolved for this transaction")
    return [decode_key(key, position) for position, key in enumerate(keys)]


def check_chain(pending: PendingTransaction, network: SigningNetwork) -> None:
    if str(pending.chain).strip().upper() != network.code:
        raise SigningError(f"pending transaction is for chain '{pending.chain}', not {network.code}")


def read_serialized(pending: PendingTransaction) -> str:
    text = pending.serialized_transaction
    if not isinstance(text, str) or not text:
        raise SigningError("serializedTransaction is missing")
    if len(text) > MAX_SERIALIZED_CHARS:
        raise SigningError("serializedTransaction is too large")
    return text


def read_int(value: Any, what: str, minimum: int = 0, maximum: int = UINT32_MAX) -> int:
    """An exact JSON integer in range (booleans and floats are refused: upstream never writes them)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SigningError(f"{what} must be an integer")
    if not minimum <= value <= maximum:
        raise SigningError(f"{what} is out of range")
    return value


def read_hex(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise SigningError(f"{what} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise SigningError(f"{what} is not valid hex") from None
    if len(value) != 2 * len(data) or (length is not None and len(data) != length):
        raise SigningError(f"{what} is not valid hex of the expected length")
    return data


def offchain_derivation_indexes(pending: PendingTransaction) -> list[int]:
    """The derivation indexes of the keys an offchain withdrawal is signed with, in order.

    Upstream (``signXxxOffchainKMSTransaction``) derives one key from the mnemonic wallet named by ``hashes[0]`` for
    every entry of the pending transaction's ``withdrawalResponses`` whose ``vIn`` is not ``"-1"`` (that entry is the
    pool-transfer output, not an input), at ``address.derivationKey`` (0 when absent). The daemon derives these and
    passes them to ``sign`` in this order, each ``KeyHandle.index`` set to its index.
    """
    responses = _withdrawal_responses(pending)
    return [index for _, index in _input_responses(responses)]


def offchain_input_positions(pending: PendingTransaction) -> list[int]:
    """For BCH: key j of an offchain withdrawal signs input ``positions[j]`` (upstream signs input i with the key of
    response i, skipping ``vIn == "-1"`` responses without renumbering)."""
    return [position for position, _ in _input_responses(_withdrawal_responses(pending))]


def check_offchain_keys(pending: PendingTransaction, keys: Sequence[KeyHandle]) -> None:
    expected = offchain_derivation_indexes(pending)
    if len(keys) != len(expected):
        raise SigningError(f"offchain withdrawal needs {len(expected)} keys (one per input response), got {len(keys)}")
    for position, (key, index) in enumerate(zip(keys, expected, strict=True)):
        if key.index is not None and key.index != index:
            raise SigningError(f"key {position} was derived at index {key.index}, the withdrawal asks for {index}")


def _withdrawal_responses(pending: PendingTransaction) -> list[Mapping[str, Any]]:
    responses = pending.raw.get("withdrawalResponses") if isinstance(pending.raw, Mapping) else None
    if not isinstance(responses, list) or not responses:
        raise SigningError("offchain withdrawal has no withdrawalResponses")
    if not all(isinstance(r, Mapping) for r in responses):
        raise SigningError("withdrawalResponses entries must be objects")
    return responses


def _input_responses(responses: list[Mapping[str, Any]]) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    for position, response in enumerate(responses):
        if response.get("vIn") == "-1":
            continue
        address = response.get("address")
        raw_index = address.get("derivationKey") if isinstance(address, Mapping) else None
        # Upstream: `response.address?.derivationKey || 0`.
        index = 0 if raw_index in (None, 0) else read_int(raw_index, "withdrawal derivationKey", 0, 2**31 - 1)
        result.append((position, index))
    if not result:
        raise SigningError("offchain withdrawal has no inputs to sign")
    return result
