"""Signer for BCH pending transactions: ``<unsigned tx hex>:<JSON list of spent amounts>`` in, signed raw hex out.

Upstream (SDK ``signBitcoinCashKMSTransaction``) rebuilds the transaction with @tatumio/bitcoincashjs2-lib's
``TransactionBuilder.fromTransaction`` and signs input i with key i as P2PKH of that key, sighash ALL|FORKID (0x41,
the BIP143-style digest that commits to the spent amount), with BCH Schnorr signatures. This module does the same,
byte for byte, including one quirk: the builder's transaction is always version 2, whatever version the unsigned
transaction had, and that is what is signed and broadcast.

Stricter than upstream: one amount and one key per input, exactly; no witness data or pre-filled input scripts;
outputs may not exceed inputs; the "absurd fee" guard (over 2500 sat/byte) is computed on exact sums (upstream's
wraps each input amount to 32 bits, which can disable it).
"""

from __future__ import annotations

from collections.abc import Sequence

from bitcointx.core import CMutableTransaction, CTransaction
from bitcointx.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    SIGVERSION_WITNESS_V0,
    CScript,
    RawBitcoinSignatureHash,
)
from bitcointx.core.serialize import SerializationError

from kms.api import NodeGateway, PendingTransaction
from kms.bounded_json import loads_bounded
from kms.chains.utxo import BITCOIN_CASH, SigningNetwork
from kms.errors import SigningError, UntrustedJsonError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.bch_schnorr import schnorr_sign
from kms.signing.utxo_common import (
    MAX_SERIALIZED_CHARS,
    UtxoKey,
    check_chain,
    check_offchain_keys,
    decode_keys,
    offchain_input_positions,
    read_hex,
    read_int,
    read_serialized,
)

SIGHASH_ALL_FORKID = 0x41
BUILDER_TX_VERSION = 2
MAX_SATOSHIS = 21 * 10**14  # bitcoincashjs2-lib types.Satoshi
MAX_FEE_RATE = 2500  # bitcoincashjs2-lib TransactionBuilder.maximumFeeRate, sat/byte


class BchSigner:
    """Implements ``kms.signing.base.Signer`` for BCH (``BchSigner()``, or ``BchSigner(BITCOIN_CASH)``)."""

    order_free = True
    """``kms.signing.base.OrderFree``: the pending transaction names its inputs; nothing is looked up."""

    def __init__(self, network: SigningNetwork = BITCOIN_CASH) -> None:
        self.network = network

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None = None,
    ) -> SignedTransaction:
        check_chain(pending, self.network)
        tx, amounts = parse_bch_serialized(read_serialized(pending))
        if pending.withdrawal_id:
            check_offchain_keys(pending, keys)
            positions = offchain_input_positions(pending)
        else:
            positions = list(range(len(keys)))
        if positions != list(range(len(tx.vin))):
            raise SigningError(f"BCH signs input i with key i: {len(tx.vin)} inputs need {len(tx.vin)} keys in order")
        signing_keys = decode_keys(keys)
        tx.nVersion = BUILDER_TX_VERSION
        for index, key in enumerate(signing_keys):
            tx.vin[index].scriptSig = _sign_input(tx, index, amounts[index], key)
        del signing_keys
        signed = tx.serialize()
        fee = sum(amounts) - sum(o.nValue for o in tx.vout)
        if fee > MAX_FEE_RATE * len(signed):
            raise SigningError(f"fee {fee} is absurd for a {len(signed)}-byte transaction (over {MAX_FEE_RATE} sat/B)")
        return SignedTransaction(signed.hex())


def parse_bch_serialized(text: str) -> tuple[CMutableTransaction, list[int]]:
    parts = text.split(":")
    if len(parts) != 2:
        raise SigningError("BCH serializedTransaction must be '<transaction hex>:<amounts JSON>'")
    raw = read_hex(parts[0].strip(), "BCH unsigned transaction")
    try:
        parsed = CTransaction.deserialize(raw)
    except (SerializationError, ValueError):
        raise SigningError("BCH unsigned transaction does not parse") from None
    except Exception:  # bitcointx has bugs of its own on hostile bytes (UnboundLocalError on a flag-0 segwit marker)
        raise SigningError("BCH unsigned transaction does not parse") from None
    if not parsed.wit.is_null() or parsed.serialize() != raw:
        raise SigningError("BCH unsigned transaction is not a plain legacy transaction")
    tx = parsed.to_mutable()
    if tx.nLockTime > 2**31 - 1:  # python-bitcointx packs it signed in the BIP143 digest; such dates are past 2038
        raise SigningError("nLockTime is out of range")
    if not tx.vin:
        raise SigningError("transaction has no inputs")
    if not tx.vout:
        raise SigningError("transaction has no outputs")
    for index, txin in enumerate(tx.vin):
        if len(txin.scriptSig):
            raise SigningError(f"input {index} must have an empty script (nothing may be pre-signed)")
    try:
        amounts = loads_bounded(parts[1], max_bytes=MAX_SERIALIZED_CHARS, what="BCH spent amounts")
    except UntrustedJsonError as exc:
        raise SigningError(str(exc)) from None
    if not isinstance(amounts, list):
        raise SigningError("BCH spent amounts must be a JSON list")
    if len(amounts) != len(tx.vin):
        raise SigningError(f"BCH transaction has {len(tx.vin)} inputs but {len(amounts)} spent amounts")
    checked = [read_int(a, f"input {i} spent amount", 0, MAX_SATOSHIS) for i, a in enumerate(amounts)]
    total_out = sum(o.nValue for o in tx.vout)
    if total_out > sum(checked):
        raise SigningError(f"outputs ({total_out}) exceed inputs ({sum(checked)})")
    return tx, checked


def _sign_input(tx: CMutableTransaction, index: int, amount: int, key: UtxoKey) -> CScript:
    script_code = CScript([OP_DUP, OP_HASH160, key.pubkey_hash, OP_EQUALVERIFY, OP_CHECKSIG])
    digest, error = RawBitcoinSignatureHash(
        script_code, tx, index, SIGHASH_ALL_FORKID, amount=amount, sigversion=SIGVERSION_WITNESS_V0
    )
    if error is not None:
        raise SigningError(f"input {index}: cannot compute its signature hash")
    signature = schnorr_sign(key.private_key, digest) + bytes([SIGHASH_ALL_FORKID])
    return CScript([signature, key.public_key])
