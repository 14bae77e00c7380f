"""BTC / LTC / DOGE signing: byte-identical to upstream, and every signed input checked by a script interpreter."""

from __future__ import annotations

import ctypes.util
import json
from pathlib import Path
from typing import Any

import bitcointx
import coincurve._libsecp256k1
import pytest
from bitcointx.core import CTransaction
from bitcointx.core.script import CScript
from bitcointx.core.scripteval import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS, VerifyScript, VerifyScriptError

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.chains.utxo import BITCOIN, DOGECOIN, LITECOIN, SigningNetwork
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.utxo import UtxoSigner, bitcore_script_string
from kms.signing.utxo_common import decode_key
from tests.conftest import load_vectors

NETWORKS: dict[str, SigningNetwork] = {"BTC": BITCOIN, "LTC": LITECOIN, "DOGE": DOGECOIN}
UPSTREAM_CASES = Path(__file__).with_name("test_sign_utxo_upstream_cases.json")

# python-bitcointx's interpreter checks signatures through a libsecp256k1 it loads with ctypes (kms itself never needs
# that): Debian's libsecp256k1-1 when installed, otherwise the copy bundled inside coincurve.
if ctypes.util.find_library("secp256k1") is None:
    bitcointx.set_custom_secp256k1_path(coincurve._libsecp256k1.__file__)


def _vectors() -> list[dict[str, Any]]:
    return [v for name in ("btc", "ltc", "doge") for v in load_vectors(f"signing-{name}.json")]


def _upstream_cases(kind: str) -> list[dict[str, Any]]:
    """Extra cases computed by upstream's own libraries (bitcore-lib 10.8.0, bitcore-lib-ltc/-doge 10.0.0, the SDK's
    sign functions run under node), for shapes the shared vectors do not cover: mixed P2PKH / P2WPKH / P2SH-P2WPKH
    inputs, several keys, uncompressed keys, lock times, OP_RETURN outputs, and bitcore-lib-doge's refusals."""
    cases = json.loads(UPSTREAM_CASES.read_text())
    return [c for c in cases if c["chain"] in NETWORKS and kind in c["expected"]]


def pending_of(vector: dict[str, Any], **extra: Any) -> PendingTransaction:
    pending = vector["input"]["pending"]
    return PendingTransaction(
        id=pending["id"],
        chain=pending["chain"],
        serialized_transaction=pending["serializedTransaction"],
        hashes=tuple(pending.get("hashes", ())),
        raw=pending,
        **extra,
    )


def wif_handle(
    chain: str, wif: str, testnet: bool, index: int | None = None, signature_id: str = "wallet"
) -> KeyHandle:
    """A key handle as the daemon makes it from a stored WIF: the chain decodes it (and checks its network)."""
    with SecretBuffer(wif) as secret:
        return KeyHandle(signature_id, get_chain(chain).raw_signing_key(secret, "privateKey", None, testnet), index)


def keys_of(vector: dict[str, Any], signature_id: str = "wallet") -> list[KeyHandle]:
    chain, testnet = vector["chain"], vector["testnet"]
    return [wif_handle(chain, k["wif"], testnet, k.get("index"), signature_id) for k in vector["input"]["keys"]]


def verify_every_input(signed_hex: str, serialized_json: str) -> int:
    """Run each input through python-bitcointx's script interpreter against the spent output it claims."""
    tx = CTransaction.deserialize(bytes.fromhex(signed_hex))
    spent = json.loads(serialized_json)["inputs"]
    assert len(tx.vin) == len(spent)
    for index, (txin, prevout) in enumerate(zip(tx.vin, spent, strict=True)):
        witness = tx.wit.vtxinwit[index].scriptWitness if not tx.wit.is_null() else None
        VerifyScript(
            txin.scriptSig,
            CScript(bytes.fromhex(prevout["output"]["script"])),
            tx,
            index,
            flags={SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS},
            amount=prevout["output"]["satoshis"],
            witness=witness,
        )
    return len(tx.vin)


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: f"{v['chain']}-{v['description']}")
def test_shared_vectors_byte_identical_and_valid(vector: dict[str, Any]) -> None:
    signer = UtxoSigner(NETWORKS[vector["chain"]])
    tx_data = signer.sign(pending_of(vector), keys_of(vector), vector["testnet"]).payload
    assert tx_data == vector["expected"]["txData"]
    assert verify_every_input(tx_data, vector["input"]["pending"]["serializedTransaction"]) >= 1


def test_interpreter_rejects_a_tampered_signature() -> None:
    vector = load_vectors("signing-ltc.json")[0]
    tx_data = UtxoSigner(LITECOIN).sign(pending_of(vector), keys_of(vector), vector["testnet"]).payload
    position = tx_data.index("0220", 90) + 10  # inside r of input 0's DER signature
    tampered = tx_data[:position] + ("0" if tx_data[position] != "0" else "1") + tx_data[position + 1 :]
    with pytest.raises(VerifyScriptError):
        verify_every_input(tampered, vector["input"]["pending"]["serializedTransaction"])


@pytest.mark.parametrize("case", _upstream_cases("txData"), ids=lambda c: f"{c['chain']}-{c['description']}")
def test_upstream_computed_cases_byte_identical_and_valid(case: dict[str, Any]) -> None:
    signer = UtxoSigner(NETWORKS[case["chain"]])
    tx_data = signer.sign(pending_of(case), keys_of(case), case["testnet"]).payload
    assert tx_data == case["expected"]["txData"]
    verify_every_input(tx_data, case["input"]["pending"]["serializedTransaction"])


@pytest.mark.parametrize("case", _upstream_cases("upstreamError"), ids=lambda c: c["expected"]["upstreamError"])
def test_refuses_what_upstream_doge_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(SigningError):
        UtxoSigner(NETWORKS[case["chain"]]).sign(pending_of(case), keys_of(case), case["testnet"])


def test_signing_is_deterministic_and_key_order_free() -> None:
    case = next(c for c in _upstream_cases("txData") if c["chain"] == "LTC" and len(c["input"]["keys"]) == 3)
    signer = UtxoSigner(LITECOIN)
    keys = keys_of(case)
    first = signer.sign(pending_of(case), keys, case["testnet"])
    assert signer.sign(pending_of(case), list(reversed(keys)), case["testnet"]) == first
    assert signer.sign(pending_of(case), [*keys, keys[0]], case["testnet"]) == first


def test_doge_offchain_withdrawal_skips_checked_serialization() -> None:
    """Upstream's DOGE offchain signing serializes unchecked: a fee bitcore-lib-doge calls too small is signed."""
    case = next(c for c in _upstream_cases("upstreamError") if "too small" in c["expected"]["upstreamError"])
    keys = keys_of(case)
    responses = [{"vIn": "ab" * 32, "vInIndex": 0, "address": {"derivationKey": i}} for i in range(len(keys))]
    pending = PendingTransaction(
        id="doge-offchain",
        chain="DOGE",
        serialized_transaction=case["input"]["pending"]["serializedTransaction"],
        withdrawal_id="w-1",
        raw={"withdrawalResponses": [*responses, {"vIn": "-1", "amount": 1}]},
    )
    wifs = [k["wif"] for k in case["input"]["keys"]]
    offchain_keys = [wif_handle("DOGE", wif, case["testnet"], i, "mnemonic") for i, wif in enumerate(wifs)]
    tx_data = UtxoSigner(DOGECOIN).sign(pending, offchain_keys, case["testnet"]).payload
    verify_every_input(tx_data, pending.serialized_transaction)


def test_btc_offchain_withdrawal_signs_like_on_chain() -> None:
    vector = load_vectors("signing-btc.json")[1]
    keys = keys_of(vector, "mnemonic")
    responses = [{"vIn": "cd" * 32, "vInIndex": i, "address": {"derivationKey": k.index}} for i, k in enumerate(keys)]
    pending = PendingTransaction(
        id="btc-offchain",
        chain="BTC",
        serialized_transaction=vector["input"]["pending"]["serializedTransaction"],
        withdrawal_id="withdrawal-7",
        raw={"withdrawalResponses": [*responses, {"vIn": "-1"}]},
    )
    assert UtxoSigner(BITCOIN).sign(pending, keys, vector["testnet"]).payload == vector["expected"]["txData"]


@pytest.mark.parametrize(
    ("script_hex", "expected"),
    [
        ("76a914" + "5e" * 20 + "88ac", "OP_DUP OP_HASH160 20 0x" + "5e" * 20 + " OP_EQUALVERIFY OP_CHECKSIG"),
        ("00149e4821fce6ff1059f0ced56013818f504e6e7611", "OP_0 20 0x9e4821fce6ff1059f0ced56013818f504e6e7611"),
        ("a914" + "11" * 20 + "87", "OP_HASH160 20 0x" + "11" * 20 + " OP_EQUAL"),
        ("5120" + "22" * 32, "OP_1 32 0x" + "22" * 32),
        ("6a4c50" + "33" * 80, "OP_RETURN OP_PUSHDATA1 80 0x" + "33" * 80),
        ("b1b2ba", "OP_NOP2 OP_NOP3 OP_CHECKSIGADD"),
    ],
)  # fmt: skip
def test_bitcore_script_string(script_hex: str, expected: str) -> None:
    assert bitcore_script_string(CScript(bytes.fromhex(script_hex))) == expected


def test_network_versions_agree_with_the_chain_modules() -> None:
    """A key the chain module writes (its WIF version byte) is a key the signer reads for the same network."""
    from kms.chains import utxo as chains

    pairs = ((chains.BTC, BITCOIN), (chains.LTC, LITECOIN), (chains.DOGE, DOGECOIN), (chains.BCH, chains.BITCOIN_CASH))
    for chain, network in pairs:
        assert chain.code == network.code and chain.signing is network
        for testnet in (False, True):
            wif = chain.encode_private_key(b"\x01" * 32, testnet)
            assert decode_key(wif_handle(chain.code, wif, testnet), 0).compressed
            with pytest.raises(SigningError, match="is not a WIF for"):
                wif_handle(chain.code, wif, not testnet)
