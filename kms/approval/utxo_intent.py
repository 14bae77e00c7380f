"""UTXO intents for BTC, LTC and DOGE (bitcore Transaction JSON): outputs are the destinations, the fee is inputs
minus outputs, an ``OP_RETURN`` output is the memo, and an output paying to a script the transaction spends from is
change. Read with the signer's own parser (``kms.signing.utxo.parse_bitcore_json``) and ``SigningNetwork``.

Output scripts are written as addresses of the chain's network (version bytes and prefixes from its ``UtxoNetwork``
in ``kms.chains.utxo``). An output with no address form (bare multisig, unknown witness version) makes the intent
unknown: nobody could put it on an allowlist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bip_utils import Base58Encoder, BchBech32Encoder, SegwitBech32Encoder
from bitcointx.core import CMutableTransaction
from bitcointx.core.script import OP_RETURN, CScript

from kms.api import PendingTransaction
from kms.approval.intent import UTXO_TRANSFER, Destination, Intent, network_name, unknown_intent
from kms.chains.base import Chain
from kms.signing.utxo import parse_bitcore_json
from kms.signing.utxo_common import read_serialized

MAX_MEMO_BYTES = 80


class NoAddressError(ValueError):
    pass


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    parsed = parse_bitcore_json(read_serialized(pending), signer.network)
    spent_scripts = [bytes(s.script) for s in parsed.spent]
    try:
        senders = sorted({script_address(chain, CScript(s), testnet) for s in spent_scripts})
    except NoAddressError:
        senders = []
    return utxo_intent(
        chain,
        testnet,
        parsed.tx,
        spent_total=sum(s.amount for s in parsed.spent),
        spent_scripts=spent_scripts,
        sender=",".join(senders) or None,
    )


def utxo_intent(
    chain: Chain,
    testnet: bool,
    tx: CMutableTransaction,
    *,
    spent_total: int,
    spent_scripts: Sequence[bytes],
    sender: str | None,
) -> Intent:
    """The intent of a parsed UTXO transaction (shared with the BCH decoder, which knows no spent scripts)."""
    fee = spent_total - sum(o.nValue for o in tx.vout)
    destinations: list[Destination] = []
    memo: str | None = None
    for index, output in enumerate(tx.vout):
        script = output.scriptPubKey
        if _is_data_output(script):
            memo = _memo(script)
            if output.nValue:
                return unknown_intent(chain.code, testnet, f"output {index} burns coins in OP_RETURN", fee=fee)
            continue
        try:
            address = script_address(chain, script, testnet)
        except NoAddressError:
            return unknown_intent(
                chain.code, testnet, f"output {index} pays to a script with no address", sender=sender, fee=fee
            )
        destinations.append(Destination(address, output.nValue, change=bytes(script) in spent_scripts))
    return Intent(
        chain.code,
        network_name(testnet),
        UTXO_TRANSFER,
        sender=sender,
        destinations=tuple(destinations),
        fee=fee,
        memo=memo,
        details={"inputs": str(len(tx.vin)), "outputs": str(len(tx.vout))},
    )


def script_address(chain: Chain, script: CScript, testnet: bool) -> str:
    """The address ``script`` pays to on ``chain``'s network."""
    network = chain._utxo[testnet]  # type: ignore[attr-defined]  # the chain's UtxoNetwork (version bytes, prefixes)
    cashaddr = network.cashaddr_hrp
    if script.is_p2pkh():
        hash160 = bytes(script[3:23])
        if cashaddr:
            return BchBech32Encoder.Encode(cashaddr, b"\x00", hash160)
        return Base58Encoder.CheckEncode(network.p2pkh + hash160)
    if script.is_p2sh():
        hash160 = bytes(script[2:22])
        if cashaddr:
            return BchBech32Encoder.Encode(cashaddr, b"\x08", hash160)
        return Base58Encoder.CheckEncode(network.p2sh[0] + hash160)
    if network.segwit_hrp and script.is_witness_scriptpubkey() and script.witness_version() in (0, 1):
        return SegwitBech32Encoder.Encode(network.segwit_hrp, script.witness_version(), script.witness_program())
    raise NoAddressError("no address form")


def _is_data_output(script: CScript) -> bool:
    return len(script) > 0 and script[0] == OP_RETURN


def _memo(script: CScript) -> str:
    data = b"".join(bytes(chunk) for chunk in list(script)[1:] if isinstance(chunk, bytes))[:MAX_MEMO_BYTES]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    return text if text.isprintable() else "0x" + data.hex()
