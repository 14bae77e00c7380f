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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coincurve
from eth_utils import keccak

from kms.api import PendingTransaction
from kms.chains import get_chain
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


SECTIONS: list[tuple[str, Callable[[float], list[Row]]]] = [
    ("EVM", evm_section),
    ("BTC", btc_section),
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
