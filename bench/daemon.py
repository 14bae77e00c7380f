"""Daemon throughput: 1,000 pending ETH transactions against a sandbox answering every Tatum API request after 50 ms.

Runs `kms daemon --runOnce` as a real process against `kms sandbox` as a real process, four-eye on, in three shapes:
one wallet with explicit nonces, one wallet without nonces (the daemon looks the nonce up once and hands them out),
and the transactions spread over 20 wallets. Prints the cycle time, the rate, the ceiling c/RTT for the concurrency
used (every transaction needs at least one Tatum round trip, its broadcast), the peak of concurrent broadcasts the
sandbox saw, and the daemon's peak memory (VmHWM). Every broadcast is checked before a figure is printed: each pending
id once, one payload each, the wallet's sender recovered, and without nonces every nonce exactly once.

    .venv/bin/python bench/daemon.py [--count 1000] [--latency 0.05] [--concurrency 16 32]
                                     [--shape one-explicit one-lookup twenty] [--no-four-eye]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import rlp
from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.harness import SandboxProcess, daemon_env, start_daemon
from kms.store import KdfParams, WalletStore

PASSWORD = "bench-password"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
SHAPES = {"one-explicit": (1, True), "one-lookup": (1, False), "twenty": (20, True)}
FIRST_NONCE = 1000


def make_store(directory: Path, wallets: int) -> tuple[Path, list[tuple[str, str]]]:
    path = directory / "wallet.db"
    made = []
    with WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        for _ in range(wallets):
            generated = get_chain("ETH").generate_private_key(True)
            made.append((store.add("ETH", True, {"privateKey": generated["privateKey"]}), generated["address"]))
    return path, made


def pending(i: int, sid: str, nonce: int | None) -> dict[str, object]:
    tx: dict[str, object] = {"to": RECIPIENT, "value": str(1000 + i), "gasPrice": "20000000000", "gas": "21000",
                             "chainId": 11155111}  # fmt: skip
    if nonce is not None:
        tx["nonce"] = nonce
    return {"id": f"bench-{i:05d}", "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [sid]}


class PeakRss:
    """Samples a process's VmHWM (its peak resident set) until it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.kib = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))
            time.sleep(0.05)

    def mib(self) -> float:
        self._thread.join(timeout=1)
        return self.kib / 1024


def check(state: dict[str, object], count: int, wallets: list[tuple[str, str]], explicit: bool) -> None:
    broadcasts: list[dict[str, str]] = state["broadcasts"]  # type: ignore[assignment]
    ids = [b["signatureId"] for b in broadcasts]
    if len(ids) != count or len(set(ids)) != count:
        errors = state["errors"][:5]  # type: ignore[index]
        raise SystemExit(
            f"expected {count} distinct broadcasts, got {len(ids)} ({len(set(ids))} distinct); reported: {errors}"
        )
    addresses = {address for _, address in wallets}
    for b in broadcasts[:: max(1, count // 50)]:
        if Account.recover_transaction(b["txData"]).lower() not in addresses:
            raise SystemExit("a broadcast does not recover to a wallet's address")
    if not explicit:
        nonces = sorted(int.from_bytes(rlp.decode(bytes.fromhex(b["txData"][2:]))[0], "big") for b in broadcasts)
        if nonces != list(range(FIRST_NONCE, FIRST_NONCE + count)):
            raise SystemExit("the nonces handed out are not each used exactly once")


def run(count: int, latency: float, concurrency: int, shape: str, four_eye: bool) -> dict[str, float]:
    wallet_count, explicit = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess("--latency", str(latency)) as sandbox:
        assert sandbox.admin is not None
        path, wallets = make_store(Path(tmp), wallet_count)
        per_wallet = -(-count // wallet_count)
        sandbox.admin.enqueue(
            [pending(i, wallets[i % wallet_count][0], i // wallet_count if explicit else None) for i in range(count)]
        )
        sandbox.admin.configure(nonces={wallets[0][1]: FIRST_NONCE}, nodeNonces=not explicit)
        args = ["--testnet", "--path", str(path), "--chain", "ETH", "--runOnce", "--concurrency", str(concurrency)]
        if four_eye:
            args += ["--externalUrl", sandbox.approval_url]
        started = time.monotonic()
        proc = start_daemon(args, daemon_env(sandbox.url, PASSWORD, Path(tmp)))
        rss = PeakRss(proc.pid)
        out, err = proc.communicate(timeout=3600)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"daemon failed ({proc.returncode}): {err[-2000:]}")
        summary = json.loads(out.strip().splitlines()[-1])
        state = sandbox.admin.state()
        try:
            check(state, count, wallets, explicit)
        except SystemExit:
            print(json.dumps(summary), err[-3000:], file=sys.stderr)
            raise
        assert per_wallet > 0
        return {
            "cycle_s": float(summary["seconds"]),
            "wall_s": wall,
            "tx_per_s": count / float(summary["seconds"]),
            "ceiling": concurrency / latency if latency else float("inf"),
            "peak_inflight": float(state["peakInflight"].get("POST /v3/ethereum/broadcast", 0)),
            "rss_mib": rss.mib(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--shape", choices=sorted(SHAPES), nargs="+", default=list(SHAPES))
    parser.add_argument("--no-four-eye", dest="four_eye", action="store_false", help="skip the approval server")
    options = parser.parse_args()
    print(f"{options.count} pending ETH transactions, every Tatum API answer after {options.latency * 1000:.0f} ms"
          f"{', four-eye on' if options.four_eye else ''}")  # fmt: skip
    print(f"{'shape':>13} {'conc.':>5} {'cycle (s)':>10} {'process (s)':>12} {'tx/s':>8} {'c/RTT':>7} "
          f"{'peak in flight':>15} {'peak RSS (MiB)':>15}")  # fmt: skip
    for shape in options.shape:
        for concurrency in options.concurrency:
            r = run(options.count, options.latency, concurrency, shape, options.four_eye)
            print(f"{shape:>13} {concurrency:>5} {r['cycle_s']:>10.2f} {r['wall_s']:>12.2f} {r['tx_per_s']:>8.1f} "
                  f"{r['ceiling']:>7.0f} {r['peak_inflight']:>15.0f} {r['rss_mib']:>15.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
