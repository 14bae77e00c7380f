"""Signing throughput in one process: kms's signers beside the raw secp256k1 sign rate measured in the same run.

Run: .venv/bin/python bench/sign.py [--seconds S] [--only NAME]
The share of the raw rate shows what parsing, checking and encoding cost on top of the signature itself; the EVM rows
are measured in alternating slices with the raw signature, so a change of load during the run weighs on both alike.
Each section is a function in SECTIONS returning its rows; add a chain family by appending one (name, function) pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coincurve
from eth_utils import keccak

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.chains.base import loaded_signer
from kms.chains.evm import evm_signer
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle

ETH_KEY = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"
ETH_TX = {
    "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
    "value": "1000",
    "gasPrice": "20000000000",
    "gas": "21000",
    "nonce": 7,
    "chainId": 11155111,
}
ERC20_DATA = (
    "0xa9059cbb00000000000000000000000022d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
)


@dataclass(frozen=True)
class Row:
    label: str
    per_second: float
    raw_per_second: float | None = None
    """The raw signature rate measured alongside this row (alternating slices); None: the section's first row."""


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second over at least ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        operation()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            operation()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def paired_rate(operation: Callable[[], object], raw: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(rate of ``operation``, rate of ``raw``) measured in alternating slices of 0.05 s for ``seconds`` each, so that
    a change in the machine's load during the run (other processes) weighs on both alike."""
    for _ in range(20):
        operation()
        raw()
    counts, spent = [0, 0], [0.0, 0.0]
    while min(spent) < seconds:
        for which, call in enumerate((operation, raw)):
            start = time.perf_counter()
            deadline = start + 0.05
            while True:
                for _ in range(10):
                    call()
                counts[which] += 10
                now = time.perf_counter()
                if now >= deadline:
                    break
            spent[which] += now - start
    return counts[0] / spent[0], counts[1] / spent[1]


def key_handle(chain: str, signature_id: str, text: str, testnet: bool) -> KeyHandle:
    """What the daemon does per key before signing: the chain decodes the stored key text into a handle."""
    with SecretBuffer(text) as secret:
        return KeyHandle(signature_id, get_chain(chain).raw_signing_key(secret, "privateKey", None, testnet))


def raw_secp256k1_rate(seconds: float) -> float:
    """coincurve's recoverable RFC 6979 signature over a 32-byte digest: the floor any EVM signer pays."""
    key = coincurve.PrivateKey(bytes.fromhex(ETH_KEY[2:]))
    digest = keccak(b"bench digest")
    return rate(lambda: key.sign_recoverable(digest, hasher=None), seconds)


def evm_section(seconds: float) -> list[Row]:
    signer = evm_signer("ETH")
    keys = [key_handle("ETH", "bench", ETH_KEY, True)]
    transfer = PendingTransaction(id="bench", chain="ETH", serialized_transaction=json.dumps(ETH_TX))
    token = PendingTransaction(
        id="bench",
        chain="ETH",
        serialized_transaction=json.dumps(
            {**ETH_TX, "to": "0x" + "11" * 20, "value": "0", "data": ERC20_DATA, "gas": "60000"}
        ),
    )
    celo = evm_signer("CELO")
    celo_tx = {**ETH_TX, "chainId": 44787, "gasLimit": ETH_TX["gas"], "gas": None}
    celo_pending = PendingTransaction(id="bench", chain="CELO", serialized_transaction=json.dumps(celo_tx))
    key = coincurve.PrivateKey(bytes.fromhex(ETH_KEY[2:]))
    digest = keccak(b"bench digest")

    def raw() -> object:
        return key.sign_recoverable(digest, hasher=None)

    def paired(label: str, operation: Callable[[], object]) -> Row:
        kms_rate, raw_rate = paired_rate(operation, raw, seconds)
        return Row(label, kms_rate, raw_rate)

    return [
        Row("coincurve sign_recoverable (raw secp256k1, same run)", raw_secp256k1_rate(seconds)),
        paired(
            "ETH transfer: EvmSigner.sign (parse, check, EIP-155 encode, sign)",
            lambda: signer.sign(transfer, keys, True),
        ),
        paired("ETH ERC-20 transfer call: EvmSigner.sign", lambda: signer.sign(token, keys, True)),
        paired(
            "ETH transfer incl. the key handle (decode the stored key + sign)",
            lambda: signer.sign(transfer, [key_handle("ETH", "bench", ETH_KEY, True)], True),
        ),
        paired("CELO transfer: CeloSigner.sign (Celo RLP)", lambda: celo.sign(celo_pending, keys, True)),
    ]


def _btc_ten_input_pending() -> tuple[PendingTransaction, list[str]]:
    """A BTC pending transaction in upstream's bitcore shape: 10 P2WPKH inputs from 10 keys, 2 outputs."""
    from bitcointx.base58 import encode as base58_encode
    from bitcointx.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, Hash, Hash160, b2lx
    from bitcointx.core.script import OP_0, CScript

    keys: list[str] = []
    inputs: list[dict[str, object]] = []
    tx = CMutableTransaction(nVersion=2)
    for i in range(10):
        secret = bytes([i + 1]) * 32
        payload = b"\x80" + secret + b"\x01"
        keys.append(base58_encode(payload + Hash(payload)[:4]))
        script = CScript([OP_0, Hash160(coincurve.PrivateKey(secret).public_key.format())])
        txid = bytes([i]) * 32
        tx.vin.append(CMutableTxIn(COutPoint(txid, i)))
        inputs.append(
            {
                "prevTxId": txid[::-1].hex(),
                "outputIndex": i,
                "sequenceNumber": 0xFFFFFFFF,
                "script": "",
                "output": {"satoshis": 100_000, "script": bytes(script).hex()},
            }
        )
    outputs = [(600_000, CScript([OP_0, b"\x11" * 20])), (390_000, CScript([OP_0, b"\x22" * 20]))]
    tx.vout.extend(CMutableTxOut(v, s) for v, s in outputs)
    body = {
        "hash": b2lx(tx.GetTxid()),
        "version": 2,
        "inputs": inputs,
        "nLockTime": 0,
        "outputs": [{"satoshis": v, "script": bytes(s).hex()} for v, s in outputs],
    }
    return PendingTransaction(id="bench", chain="BTC", serialized_transaction=json.dumps(body)), keys


def btc_section(seconds: float) -> list[Row]:
    from kms.chains.utxo import BITCOIN
    from kms.signing.utxo import UtxoSigner

    pending, wifs = _btc_ten_input_pending()
    keys = [key_handle("BTC", f"wallet-{i}", wif, False) for i, wif in enumerate(wifs)]
    signer = UtxoSigner(BITCOIN)

    def with_handles() -> object:
        handles = [key_handle("BTC", f"wallet-{i}", wif, False) for i, wif in enumerate(wifs)]
        return signer.sign(pending, handles, False)

    return [
        Row(
            "BTC 10-input P2WPKH transaction: UtxoSigner.sign (transactions/s)",
            rate(lambda: signer.sign(pending, keys, False), seconds),
        ),
        Row("BTC 10-input, incl. the 10 key handles (decode WIFs + sign)", rate(with_handles, seconds)),
    ]


# -- TRON, SOL, XLM, XRP: the transactions kms demo builds, signed by each chain's registry signer --------------------


def _wallet_and_signer(code: str) -> tuple[KeyHandle, str, Any]:
    chain = get_chain(code)
    generated = chain.generate_private_key(True)
    return key_handle(code, "bench", generated["privateKey"], True), generated["address"], loaded_signer(chain)


def _pending(code: str, serialized: str) -> PendingTransaction:
    return PendingTransaction(id="bench", chain=code, serialized_transaction=serialized)


def tron_section(seconds: float) -> list[Row]:
    from kms.demo_tron_sol_xlm_xrp import TronDemo
    from kms.signing.tron import sign_rate

    key, address, signer = _wallet_and_signer("TRON")
    pending = _pending("TRON", TronDemo().demo_pending(address, True))
    return [
        Row("coincurve sign_recoverable (raw secp256k1, same run)", raw_secp256k1_rate(seconds)),
        Row("TRON TransferContract: TronSigner.sign (parse, protobuf check, sign)",
            rate(lambda: sign_rate(signer, pending, key, 1), seconds)),
    ]  # fmt: skip


class _LocalSolanaNode:
    """The sandbox's Solana node double, in-process (no HTTP): answers the signer's blockhash look-up."""

    testnet = True

    def __init__(self) -> None:
        from kms.sandbox.solana import SolanaNode

        self.node = SolanaNode()

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        self.node.calls.clear()
        return self.node.answer(method, params)


def sol_section(seconds: float) -> list[Row]:
    from solders.keypair import Keypair

    from kms.demo_tron_sol_xlm_xrp import SolDemo
    from kms.signing.sol import sign_rate

    key, address, signer = _wallet_and_signer("SOL")
    pending, node = _pending("SOL", SolDemo().demo_pending(address, True)), _LocalSolanaNode()
    raw, message = Keypair(), b"\x01" * 150
    return [
        Row("solders Keypair.sign_message (raw ed25519, same run)", rate(lambda: raw.sign_message(message), seconds)),
        Row("SOL transfer: SolSigner.sign (parse, order check, blockhash, sign)",
            rate(lambda: sign_rate(signer, pending, [key], 1, node), seconds)),  # type: ignore[arg-type]
    ]  # fmt: skip


def _raw_ed25519_rate(seconds: float) -> float:
    from nacl.signing import SigningKey

    raw = SigningKey.generate()
    return rate(lambda: raw.sign(b"\x01" * 150), seconds)


def xlm_section(seconds: float) -> list[Row]:
    from kms.demo_tron_sol_xlm_xrp import XlmDemo
    from kms.signing.xlm import sign_rate

    key, address, signer = _wallet_and_signer("XLM")
    pending = _pending("XLM", XlmDemo().demo_pending(address, True))
    return [
        Row("PyNaCl SigningKey.sign (raw ed25519, same run)", _raw_ed25519_rate(seconds)),
        Row("XLM payment: XlmSigner.sign (XDR parse, checks, stellar-sdk sign)",
            rate(lambda: sign_rate(signer, pending, key, 1), seconds)),
    ]  # fmt: skip


def xrp_section(seconds: float) -> list[Row]:
    from kms.demo_tron_sol_xlm_xrp import XrpDemo
    from kms.signing.xrp import sign_rate

    key, address, signer = _wallet_and_signer("XRP")
    pending = _pending("XRP", XrpDemo().demo_pending(address, True))
    return [
        Row("PyNaCl SigningKey.sign (raw ed25519, same run)", _raw_ed25519_rate(seconds)),
        Row("XRP payment (ed25519 seed): XrpSigner.sign (codec, sign, round trip)",
            rate(lambda: sign_rate(signer, pending, key, 1), seconds)),
    ]  # fmt: skip


def _node_chain_case(code: str, nodes: object) -> tuple[object, PendingTransaction, list[KeyHandle]]:
    """A fresh key wallet of ``code`` and the demo's pending transaction for it (node look-ups in-process)."""
    from kms.chains.base import loaded_signer
    from kms.demo_chains import AdaDemo, AlgoDemo, EgldDemo, FlowDemo, VetDemo

    builders = {"ALGO": AlgoDemo, "EGLD": EgldDemo, "VET": VetDemo, "ADA": AdaDemo, "FLOW": lambda: FlowDemo(nodes)}
    chain = get_chain(code)
    wallet = chain.generate_private_key(True)
    text = wallet.get("secret") or wallet["privateKey"]
    serialized = builders[code]().demo_pending(wallet["address"], True)  # type: ignore[no-untyped-call]
    pending = PendingTransaction(id="bench", chain=code, serialized_transaction=serialized)
    return loaded_signer(chain), pending, [key_handle(code, "bench", text, True)]


def ed25519_section(seconds: float) -> list[Row]:
    """ALGO (no look-ups), EGLD (3 node look-ups) and ADA (5 Rosetta calls, pycardano) against in-process doubles."""
    from nacl.signing import SigningKey

    from kms.sandbox.nodes import DemoNodes

    nodes = DemoNodes(True)
    raw_key = SigningKey(bytes(range(32)))
    rows = [Row("PyNaCl ed25519 sign (raw, same run)", rate(lambda: raw_key.sign(b"bench message"), seconds))]
    for code, label in (
        ("ALGO", "ALGO payment: AlgoSigner.sign (parse upstream JSON, msgpack, sign)"),
        ("EGLD", "EGLD transfer: EgldSigner.sign (3 node look-ups in-process, sign)"),
        ("ADA", "ADA payment: AdaSigner.sign (Rosetta double in-process, checks)"),
    ):
        signer, pending, keys = _node_chain_case(code, nodes)
        rows.append(Row(label, rate(lambda s=signer, p=pending, k=keys: s.sign(p, k, True, nodes), seconds)))
    return rows


def vet_flow_section(seconds: float) -> list[Row]:
    """VET (Thor body, 3 node look-ups) and FLOW (Tatum keys and access node, 7 look-ups) against in-process
    doubles; the raw figure is coincurve's secp256k1 signature."""
    from kms.sandbox.nodes import DemoNodes

    nodes = DemoNodes(True)
    rows = [Row("coincurve sign_recoverable (raw secp256k1, same run)", raw_secp256k1_rate(seconds))]
    for code, label in (
        ("VET", "VET transfer: VetSigner.sign (node look-ups in-process, RLP, sign)"),
        ("FLOW", "FLOW transfer: FlowSigner.sign (Tatum + access node in-process)"),
    ):
        signer, pending, keys = _node_chain_case(code, nodes)
        rows.append(Row(label, rate(lambda s=signer, p=pending, k=keys: s.sign(p, k, True, nodes), seconds)))
    return rows


SECTIONS: list[tuple[str, Callable[[float], list[Row]]]] = [
    ("EVM", evm_section),
    ("BTC", btc_section),
    ("TRON", tron_section),
    ("SOL", sol_section),
    ("XLM", xlm_section),
    ("XRP", xrp_section),
    ("ED25519", ed25519_section),
    ("VET_FLOW", vet_flow_section),
]


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure (default 2)")
    parser.add_argument("--only", choices=[name for name, _ in SECTIONS], help="run one section")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, coincurve {_version('coincurve')}, eth-account {_version('eth-account')}")
    for name, section in SECTIONS:
        if args.only and name != args.only:
            continue
        rows = section(args.seconds)
        print(f"\n[{name}]")
        for row in rows:
            raw = row.raw_per_second or rows[0].per_second
            ratio = "" if row is rows[0] else f"   {100 * row.per_second / raw:4.1f}% of raw ({raw:,.0f}/s alongside)"
            print(f"  {row.label:<70} {row.per_second:>10,.0f} /s{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
