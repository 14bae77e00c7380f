"""Chaos: kill -9 / restart trials of the real daemon against the sandbox, with injected faults.

Every trial queues a few new pending ETH transactions (some of them denied by the four-eye server), arms random
faults on the sandbox (5xx, connection resets, garbage bodies, trickled answers) on the pending poll, the nonce
look-up, the broadcast and the error batch, starts `kms daemon` as a real process, and kills it with SIGKILL at a
random moment of its run. The sandbox hands out a different nonce on every look-up, so a transaction signed twice
would carry two different payloads. After the trials the faults are cleared and one last daemon drains the queue.

Checks (the script exits 1 when one fails): no pending id reached the broadcast endpoint with two different
payloads; every approved transaction was broadcast; no denied one was.

    .venv/bin/python bench/chaos.py [--trials 100] [--per-trial 3] [--seed 15]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess, daemon_env, wait_for
from kms.store import KdfParams, WalletStore

PASSWORD = "chaos-password"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
FAULT_PATHS = (
    "/v3/kms/pending/ETH",
    "/v3/ethereum/transaction/count/",
    "/v3/ethereum/broadcast",
    "/v3/tatum/kms/batch",
)


def make_store(path: Path, wallets: int) -> list[str]:
    eth = get_chain("ETH")
    with WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        return [
            store.add("ETH", True, {"privateKey": eth.generate_private_key(True)["privateKey"]}) for _ in range(wallets)
        ]


def pending(pid: str, wallet: str, value: int) -> dict[str, Any]:
    # No nonce: the signer looks it up, and the sandbox answers differently every time.
    tx = {"to": RECIPIENT, "value": str(value), "gasPrice": "20000000000", "gas": "21000", "chainId": 11155111}
    return {"id": pid, "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [wallet]}


def random_faults(rng: random.Random) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("status", "reset", "malformed", "trickle"))
        rule: dict[str, Any] = {"kind": kind, "path": rng.choice(FAULT_PATHS), "times": rng.randint(1, 3)}
        if kind == "status":
            rule["status"] = rng.choice((500, 502, 503, 504))
        if kind == "trickle":
            rule.update(seconds=0.5, times=1)
        rules.append(rule)
    return rules


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "kms", "daemon", *args], stdout=subprocess.DEVNULL, stderr=sink, env=env
        )


def started(log: Path) -> bool:
    return log.exists() and b"kms daemon:" in log.read_bytes()


class Tally:
    def __init__(self) -> None:
        self.approved: set[str] = set()
        self.denied: set[str] = set()
        self.kills = 0
        self.killed_before_start = 0
        self.faults = 0
        self.faults_fired = 0


def trial(n: int, admin: SandboxAdmin, rng: random.Random, run: dict[str, Any], tally: Tally) -> None:
    new = [pending(f"t{n:04d}-{i}", rng.choice(run["wallets"]), rng.randint(1, 10**6)) for i in range(run["per"])]
    denied = {item["id"] for item in new if rng.random() < 0.25}
    tally.denied |= denied
    tally.approved |= {item["id"] for item in new} - denied
    if denied:
        admin.configure(approval={"ids": dict.fromkeys(denied, "deny")})
    admin.enqueue(new)
    faults = random_faults(rng)
    tally.faults += len(faults)
    tally.faults_fired += sum(1 for rule in admin.state()["faults"] if rule["hits"])
    admin.configure(faults=faults)
    log = run["dir"] / f"daemon-{n:04d}.log"
    proc = start(run["args"], run["env"], log)
    if wait_for(lambda: started(log) or proc.poll() is not None, timeout=60):
        time.sleep(rng.uniform(0.0, run["max_run"]))
    else:
        tally.killed_before_start += 1
    if proc.poll() is not None:
        raise SystemExit(f"trial {n}: the daemon exited by itself ({proc.returncode}); see {log.read_text()[-1500:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tally.kills += 1


def drain(admin: SandboxAdmin, run: dict[str, Any], tally: Tally, timeout: float) -> None:
    tally.faults_fired += sum(1 for rule in admin.state()["faults"] if rule["hits"])
    admin.configure(faults=[])
    proc = start(run["args"], run["env"], run["dir"] / "daemon-drain.log")

    def done() -> bool:
        completed = {item["id"] for item in admin.state()["completed"]}
        return tally.approved <= completed

    wait_for(done, timeout=timeout, interval=0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def verdict(state: dict[str, Any], tally: Tally) -> dict[str, int]:
    payloads: dict[str, set[str]] = defaultdict(set)
    cut_off = 0
    for attempt in state["attempts"]:
        body = attempt["body"]
        if not isinstance(body, dict):  # the daemon was killed while sending it: the sandbox got half a body
            cut_off += 1
            continue
        payloads[str(body.get("signatureId"))].add(str(body.get("txData")))
    completed = {item["id"] for item in state["completed"]}
    return {
        "trials (kill -9)": tally.kills,
        "killed before the daemon started": tally.killed_before_start,
        "fault rules armed": tally.faults,
        "fault rules that fired": tally.faults_fired,
        "pending queued": len(tally.approved) + len(tally.denied),
        "approved": len(tally.approved),
        "denied": len(tally.denied),
        "broadcast attempts": len(state["attempts"]),
        "attempts cut off by a kill mid-request": cut_off,
        "ids broadcast": len(payloads),
        "ids with two different payloads": sum(1 for p in payloads.values() if len(p) > 1),
        "approved and broadcast": len(tally.approved & completed),
        "approved but not broadcast": len(tally.approved - completed),
        "denied but broadcast": len(tally.denied & set(payloads)),
        "nonce look-ups": sum(v for k, v in state["requests"].items() if "/transaction/count" in k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--per-trial", type=int, default=3, help="new pending transactions queued per trial")
    parser.add_argument("--wallets", type=int, default=4)
    parser.add_argument("--max-run", type=float, default=2.0, help="longest run (s) after start before the kill")
    parser.add_argument("--seed", type=int, default=15)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess() as sandbox:
        assert sandbox.admin is not None
        admin = sandbox.admin
        admin.configure(nonceStep=1)
        directory = Path(tmp)
        store_path = directory / "wallet.db"
        run = {
            "dir": directory,
            "wallets": make_store(store_path, options.wallets),
            "per": options.per_trial,
            "max_run": options.max_run,
            "env": daemon_env(sandbox.url, PASSWORD, directory, extra={"TATUM_KMS_LOG_LEVEL": "info"}),
            "args": ["--testnet", "--path", str(store_path), "--chain", "ETH", "--period", "0.2",
                     "--externalUrl", sandbox.approval_url],
        }  # fmt: skip
        started_at = time.monotonic()
        for n in range(options.trials):
            trial(n, admin, rng, run, tally)
            if (n + 1) % 10 == 0:
                print(f"  {n + 1} trials, {time.monotonic() - started_at:.0f} s", file=sys.stderr, flush=True)
        drain(admin, run, tally, timeout=300)
        state = admin.state()
    figures = verdict(state, tally)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    bad = (
        figures["ids with two different payloads"]
        or figures["approved but not broadcast"]
        or figures["denied but broadcast"]
    )
    print("FAILED" if bad else "ok: no double payload, every approved one broadcast, no denied one broadcast")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
