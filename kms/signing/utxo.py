"""Signer for BTC, LTC and DOGE pending transactions: bitcore-lib ``Transaction`` JSON in, signed raw hex out.

Upstream (SDK ``signBitcoinKMSTransaction`` / ``signLitecoinKMSTransaction`` / ``signDogecoinKMSTransaction``) loads
the JSON with ``new Transaction(json)`` and calls ``sign(key)`` for each private key; bitcore signs every input whose
spent output pays to that key (P2PKH; on BTC and LTC also P2WPKH and P2SH-P2WPKH) with SIGHASH_ALL, RFC 6979 low-S
ECDSA, and serializes with witness data when any input has some. This module does the same, byte for byte, with
python-bitcointx for the transaction encoding and signature hashes and libsecp256k1 (coincurve) for the signatures.

Stricter than upstream, on purpose: every input must be signed (bitcore's unchecked serialization would broadcast a
partly signed transaction), outputs may not exceed inputs, keys must be WIFs of the requested network, and input
scripts must be empty (nothing pre-signed). bitcore's own refusals are kept: a ``hash`` that does not match the
transaction, an inconsistent change output, unsupported spent scripts and, for DOGE, bitcore-lib-doge's checked
serialization (dust outputs, fee far from its estimate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bitcointx.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CTxInWitness, b2lx
from bitcointx.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    OPCODE_NAMES,
    SIGHASH_ALL,
    SIGVERSION_BASE,
    SIGVERSION_WITNESS_V0,
    CScript,
    CScriptInvalidError,
    CScriptOp,
    CScriptWitness,
    SignatureHash,
)

from kms.api import NodeGateway, PendingTransaction
from kms.bounded_json import loads_bounded
from kms.chains.utxo import SigningNetwork
from kms.errors import SigningError, UntrustedJsonError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.utxo_common import (
    JS_SAFE_INTEGER,
    MAX_SERIALIZED_CHARS,
    UINT32_MAX,
    UtxoKey,
    check_chain,
    check_offchain_keys,
    decode_keys,
    read_hex,
    read_int,
    read_serialized,
)

SIGHASH_ALL_BYTE = b"\x01"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_BITCORE_OPCODE_NAMES = {0xB1: "OP_NOP2", 0xB2: "OP_NOP3", 0xBA: "OP_CHECKSIGADD"}  # where bitcore differs


@dataclass(frozen=True)
class SpentOutput:
    amount: int
    script: CScript


@dataclass(frozen=True)
class BitcoreTransaction:
    """The parts of a bitcore ``Transaction`` JSON that matter for signing, checked."""

    tx: CMutableTransaction
    spent: tuple[SpentOutput, ...]
    has_change_script: bool
    fee_field: int | None


class UtxoSigner:
    """Implements ``kms.signing.base.Signer`` for one of BTC, LTC, DOGE (``UtxoSigner(BTC.signing)`` etc.)."""

    order_free = True
    """``kms.signing.base.OrderFree``: the pending transaction names its inputs; nothing is looked up."""

    def __init__(self, network: SigningNetwork) -> None:
        self.network = network

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None = None,
    ) -> SignedTransaction:
        check_chain(pending, self.network)
        offchain = bool(pending.withdrawal_id)
        if offchain:
            check_offchain_keys(pending, keys)
        parsed = parse_bitcore_json(read_serialized(pending), self.network)
        owners = _owners(decode_keys(keys), self.network)
        tx = parsed.tx
        witnesses: list[CTxInWitness] = []
        for index, spent in enumerate(parsed.spent):
            script_sig, witness = _sign_input(tx, index, spent, owners)
            tx.vin[index].scriptSig = script_sig
            witnesses.append(witness)
        del owners
        if any(not w.is_null() for w in witnesses):
            tx.wit.vtxinwit = witnesses
        # Upstream serializes DOGE offchain withdrawals unchecked, on-chain DOGE checked.
        if self.network.checked_serialization and not offchain:
            _bitcore_doge_checks(parsed, self.network)
        return SignedTransaction(tx.serialize().hex())


def parse_bitcore_json(text: str, network: SigningNetwork) -> BitcoreTransaction:
    try:
        data = loads_bounded(text, max_bytes=MAX_SERIALIZED_CHARS, what="serializedTransaction")
    except UntrustedJsonError as exc:
        raise SigningError(str(exc)) from None
    if not isinstance(data, Mapping):
        raise SigningError("serializedTransaction is not a transaction object")
    inputs, outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(inputs, list) or not inputs:
        raise SigningError("transaction has no inputs")
    if not isinstance(outputs, list) or not outputs:
        raise SigningError("transaction has no outputs")
    tx = CMutableTransaction()
    tx.nVersion = read_int(data.get("version"), "version", INT32_MIN, INT32_MAX)
    # bitcointx packs nLockTime as a signed int in the BIP143 digest; nothing real needs a lock time past 2038.
    tx.nLockTime = read_int(data.get("nLockTime"), "nLockTime", 0, INT32_MAX)
    spent: list[SpentOutput] = []
    for index, item in enumerate(inputs):
        txin, prevout = _parse_input(item, index, network)
        tx.vin.append(txin)
        spent.append(prevout)
    for index, item in enumerate(outputs):
        tx.vout.append(_parse_output(item, index))
    total_in = sum(s.amount for s in spent)
    total_out = sum(o.nValue for o in tx.vout)
    if total_out > total_in:
        raise SigningError(f"outputs ({total_out}) exceed inputs ({total_in})")
    expected_hash = data.get("hash")
    if expected_hash and expected_hash != b2lx(tx.GetTxid()):
        raise SigningError("transaction hash does not match its content")
    change_script = data.get("changeScript")
    _check_change(data.get("changeIndex"), change_script, tx)
    # Only bitcore's checked serialization (DOGE) reads the fee field; elsewhere upstream ignores it.
    fee = data.get("fee") if network.checked_serialization else None
    return BitcoreTransaction(
        tx=tx,
        spent=tuple(spent),
        has_change_script=bool(change_script),
        fee_field=read_int(fee, "fee", 0, JS_SAFE_INTEGER) if fee else None,
    )


def _parse_input(item: Any, index: int, network: SigningNetwork) -> tuple[CMutableTxIn, SpentOutput]:
    what = f"input {index}"
    if not isinstance(item, Mapping):
        raise SigningError(f"{what} is not an object")
    txid = read_hex(item.get("prevTxId"), f"{what} prevTxId", 32)
    vout = read_int(item.get("outputIndex"), f"{what} outputIndex")
    raw_sequence = item.get("sequenceNumber")
    sequence = UINT32_MAX if raw_sequence is None else read_int(raw_sequence, f"{what} sequenceNumber")
    if "script" not in item or item["script"] not in ("", None):
        raise SigningError(f"{what} must have an empty script (nothing may be pre-signed)")
    output = item.get("output")
    if not isinstance(output, Mapping) or output.get("satoshis") is None or not output.get("script"):
        raise SigningError(f"{what} lacks the spent output's amount or script")
    amount = read_int(output["satoshis"], f"{what} spent amount", 0, JS_SAFE_INTEGER)
    script = CScript(read_hex(output["script"], f"{what} spent script"))
    if _spent_kind(script, network) is None:
        raise SigningError(f"{what} spends an unsupported script type")
    return CMutableTxIn(COutPoint(txid[::-1], vout), nSequence=sequence), SpentOutput(amount, script)


def _parse_output(item: Any, index: int) -> CMutableTxOut:
    what = f"output {index}"
    if not isinstance(item, Mapping):
        raise SigningError(f"{what} is not an object")
    amount = read_int(item.get("satoshis"), f"{what} satoshis", 0, JS_SAFE_INTEGER)
    script = CScript(read_hex(item.get("script"), f"{what} script"))
    try:
        list(script.raw_iter())
    except CScriptInvalidError:
        raise SigningError(f"{what} script does not parse") from None
    return CMutableTxOut(amount, script)


def _spent_kind(script: CScript, network: SigningNetwork) -> str | None:
    if script.is_p2pkh():
        return "p2pkh"
    if network.segwit and script.is_witness_v0_keyhash():
        return "p2wpkh"
    if network.segwit and script.is_p2sh():
        return "p2sh"
    return None


def _owners(keys: Sequence[UtxoKey], network: SigningNetwork) -> dict[bytes, tuple[str, UtxoKey]]:
    """Spent script -> (kind, key) for every script a key can sign; the first key listed wins (they sign alike)."""
    owners: dict[bytes, tuple[str, UtxoKey]] = {}
    for key in keys:
        owners.setdefault(bytes(_p2pkh_script(key.pubkey_hash)), ("p2pkh", key))
        if network.segwit and key.compressed:  # BIP143 inputs only take compressed keys
            witness_program = CScript([0, key.pubkey_hash])
            owners.setdefault(bytes(witness_program), ("p2wpkh", key))
            owners.setdefault(bytes(witness_program.to_p2sh_scriptPubKey()), ("p2sh", key))
    return owners


def _sign_input(
    tx: CMutableTransaction, index: int, spent: SpentOutput, owners: dict[bytes, tuple[str, UtxoKey]]
) -> tuple[CScript, CTxInWitness]:
    owner = owners.get(bytes(spent.script))
    if owner is None:
        raise SigningError(f"input {index} is not owned by any of the given keys")
    kind, key = owner
    if kind == "p2pkh":
        digest = SignatureHash(spent.script, tx, index, SIGHASH_ALL, sigversion=SIGVERSION_BASE)
        return CScript([_ecdsa(key, digest), key.public_key]), CTxInWitness()
    witness_program = CScript([0, key.pubkey_hash])
    script_sig = CScript([bytes(witness_program)]) if kind == "p2sh" else CScript()
    digest = SignatureHash(
        _p2pkh_script(key.pubkey_hash), tx, index, SIGHASH_ALL, amount=spent.amount, sigversion=SIGVERSION_WITNESS_V0
    )
    return script_sig, CTxInWitness(CScriptWitness([_ecdsa(key, digest), key.public_key]))


def _p2pkh_script(pubkey_hash: bytes) -> CScript:
    return CScript([OP_DUP, OP_HASH160, pubkey_hash, OP_EQUALVERIFY, OP_CHECKSIG])


def _ecdsa(key: UtxoKey, digest: bytes) -> bytes:
    der = key.private_key.sign(digest, hasher=None)
    # bitcore verifies every signature before it applies it; so do we (a fault here must not reach the network).
    if not key.private_key.public_key.verify(der, digest, hasher=None):
        raise SigningError("signature self-check failed")
    return der + SIGHASH_ALL_BYTE


def bitcore_script_string(script: CScript) -> str:
    """bitcore's ``Script#toString()`` (the form upstream stores as ``changeScript``)."""
    parts: list[str] = []
    for opcode, data, _ in script.raw_iter():
        if data is not None and 0 < opcode <= 0x4E:
            if opcode >= 0x4C:
                parts.append(_BITCORE_OPCODE_NAMES.get(opcode) or OPCODE_NAMES[CScriptOp(opcode)])
            if data:
                parts.append(f"{len(data)} 0x{data.hex()}")
            continue
        name = _BITCORE_OPCODE_NAMES.get(opcode) or OPCODE_NAMES.get(CScriptOp(opcode))
        parts.append(name if name else f"0x{opcode:02x}")
    return " ".join(parts)


def _check_change(change_index: Any, change_script: Any, tx: CMutableTransaction) -> None:
    """bitcore's ``_checkConsistency``: only a truthy ``changeIndex`` is read (0 is ignored, as upstream does)."""
    if not change_index:
        return
    index = read_int(change_index, "changeIndex", 0, len(tx.vout) - 1)
    if not isinstance(change_script, str) or not change_script:
        raise SigningError("changeIndex is set but changeScript is missing")
    output_script = tx.vout[index].scriptPubKey
    if change_script != bitcore_script_string(output_script) and change_script.lower() != bytes(output_script).hex():
        raise SigningError("change output has an unexpected script")


def _bitcore_doge_checks(parsed: BitcoreTransaction, network: SigningNetwork) -> None:
    """bitcore-lib-doge ``getSerializationError``, which upstream's on-chain DOGE signing runs."""
    tx = parsed.tx
    unspent = sum(s.amount for s in parsed.spent) - sum(o.nValue for o in tx.vout)
    if parsed.fee_field is not None and parsed.fee_field != unspent:
        raise SigningError(f"fee field ({parsed.fee_field}) differs from inputs minus outputs ({unspent})")
    estimate = _bitcore_estimate_fee(parsed, network, unspent)
    if unspent > math.floor(15 * estimate):
        raise SigningError(f"fee {unspent} is more than 15 times bitcore's estimate {estimate}")
    if unspent < math.ceil(estimate / 15):
        raise SigningError(f"fee {unspent} is less than a 15th of bitcore's estimate {estimate}")
    for index, output in enumerate(tx.vout):
        if output.nValue < network.dust_amount and not _is_bitcore_data_out(output.scriptPubKey):
            raise SigningError(f"output {index} is dust (below {network.dust_amount})")


def _bitcore_estimate_fee(parsed: BitcoreTransaction, network: SigningNetwork, unspent: int) -> int:
    # MAXIMUM_EXTRA_SIZE 26; per P2PKH input 36 + SCRIPT_MAX_SIZE 107; per output script + 9; change output 62 bytes.
    size = 26 + 143 * len(parsed.tx.vin) + sum(len(o.scriptPubKey) + 9 for o in parsed.tx.vout)
    fee_rate = network.fee_per_kb / 1000
    fee = math.ceil(size * fee_rate)
    fee_with_change = math.ceil(size * fee_rate + 62 * fee_rate)
    if not parsed.has_change_script or unspent <= fee_with_change:
        return fee
    return fee_with_change


def _is_bitcore_data_out(script: CScript) -> bool:
    chunks = list(script.raw_iter())
    if not chunks or chunks[0][0] != 0x6A:
        return False
    if len(chunks) == 1:
        return True
    opcode, data = chunks[1][0], chunks[1][1]
    return len(chunks) == 2 and 0 < opcode <= 0x4E and data is not None and len(data) <= 80
