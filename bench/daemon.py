"""Daemon throughput: N pending ETH transactions, a sandbox that answers every Tatum API request after 50 ms.

Runs `kms daemon --runOnce` as a real process against `kms sandbox` as a real process, at concurrency 1 (upstream's
one-transaction-at-a-time loop) and at the default (16), and prints the time until every transaction was broadcast
and the rate. Every broadcast is checked (each pending id once, sender recovered) before a figure is printed.

    .venv/bin/python bench/daemon.py [--count 1000] [--latency 0.05] [--concurrency 1 16] [--four-eye]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.harness import SandboxProcess, daemon_env, start_daemon
from kms.store import KdfParams, WalletStore

PASSWORD = "bench-password"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


def make_store(directory: Path) -> tuple[Path, str, str]:
    path = directory / "wallet.db"
    generated = get_chain("ETH").generate_private_key(True)
    with WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        sid = store.add("ETH", True, {"privateKey": generated["privateKey"]})
    return path, sid, generated["address"]


def pending(i: int, sid: str) -> dict[str, object]:
    tx = {"to": RECIPIENT, "value": str(1000 + i), "gasPrice": "20000000000", "gas": "21000", "nonce": i,
          "chainId": 11155111}  # fmt: skip
    return {"id": f"bench-{i:05d}", "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [sid]}


def run(count: int, latency: float, concurrency: int, four_eye: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess("--latency", str(latency)) as sandbox:
        assert sandbox.admin is not None
        path, sid, address = make_store(Path(tmp))
        sandbox.admin.enqueue([pending(i, sid) for i in range(count)])
        args = ["--testnet", "--path", str(path), "--chain", "ETH", "--runOnce", "--concurrency", str(concurrency)]
        if four_eye:
            args += ["--externalUrl", sandbox.approval_url]
        started = time.monotonic()
        proc = start_daemon(args, daemon_env(sandbox.url, PASSWORD, Path(tmp)))
        out, err = proc.communicate(timeout=3600)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"daemon failed ({proc.returncode}): {err[-2000:]}")
        summary = json.loads(out.strip().splitlines()[-1])
        state = sandbox.admin.state()
        ids = [b["signatureId"] for b in state["broadcasts"]]
        if len(ids) != count or len(set(ids)) != count:
            raise SystemExit(f"expected {count} distinct broadcasts, got {len(ids)} ({len(set(ids))} distinct)")
        for b in state["broadcasts"][:: max(1, count // 50)]:
            if Account.recover_transaction(b["txData"]).lower() != address:
                raise SystemExit("a broadcast does not recover to the wallet's address")
        return {
            "cycle_s": float(summary["seconds"]),
            "wall_s": wall,
            "tx_per_s": count / float(summary["seconds"]),
            "peak_inflight": float(state["peakInflight"].get("POST /v3/ethereum/broadcast", 0)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--four-eye", action="store_true", help="also ask the sandbox's approval endpoint per tx")
    options = parser.parse_args()
    print(f"{options.count} pending ETH transactions, every Tatum API answer after {options.latency * 1000:.0f} ms"
          f"{', four-eye on' if options.four_eye else ''}")  # fmt: skip
    print(f"{'concurrency':>11} {'cycle (s)':>10} {'process (s)':>12} {'tx/s':>8} {'peak in flight':>15}")
    for concurrency in options.concurrency:
        r = run(options.count, options.latency, concurrency, options.four_eye)
        print(f"{concurrency:>11} {r['cycle_s']:>10.2f} {r['wall_s']:>12.2f} {r['tx_per_s']:>8.1f} "
              f"{r['peak_inflight']:>15.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
