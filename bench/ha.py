"""Replicas on a shared PostgreSQL store: N approved pending ETH transactions from many senders, a sandbox that
answers every Tatum API and approval request after 50 ms, run by 1 daemon and then by 3 daemons of which one is
SIGKILLed halfway.

Starts its own PostgreSQL (initdb/pg_ctl in a temporary directory, as the tests do), `kms sandbox` and the daemons as
real processes on 127.0.0.1. Prints the time until every transaction was broadcast and the rate, and checks, before
printing a figure, that every pending id was broadcast, every broadcast of an id carried the same payload, and that
payload is the one journaled in the database (a takeover re-sends the journaled bytes, never a new signature).

    .venv/bin/python bench/ha.py [--count 10000] [--senders 200] [--latency 0.05] [--replicas 1 3] [--lease 5]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess, daemon_env
from kms.store import KdfParams, WalletStore
from kms.store.backend import open_backend
from tests.servers.postgres import PostgresServer, start_server

PASSWORD = "bench-password"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


def make_store(server: PostgresServer, senders: int) -> tuple[str, list[str]]:
    dbname = server.create_database()
    eth = get_chain("ETH")
    with WalletStore.open(
        open_backend(server.url(dbname)), SecretBuffer(PASSWORD.encode()), create=True,
        kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True,
    ) as store:  # fmt: skip
        ids = store.add_many(("ETH", True, {"privateKey": eth.generate_private_key(True)["privateKey"]})
                             for _ in range(senders))  # fmt: skip
    return dbname, ids


def pending(i: int, sids: list[str]) -> dict[str, object]:
    sid, nonce = sids[i % len(sids)], i // len(sids)
    tx = {"to": RECIPIENT, "value": str(1000 + i), "gasPrice": "20000000000", "gas": "21000", "nonce": nonce,
          "chainId": 11155111}  # fmt: skip
    return {"id": f"ha-{i:05d}", "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [sid]}


def check(admin: SandboxAdmin, server: PostgresServer, dbname: str, count: int) -> None:
    state = admin.state()
    payloads: dict[str, set[str]] = {}
    for attempt in state["attempts"]:
        payloads.setdefault(attempt["body"]["signatureId"], set()).add(attempt["body"]["txData"])
    with psycopg.connect(server.url(dbname)) as conn:
        journal = dict(conn.execute("SELECT pending_id, payload FROM journal").fetchall())
    ids = {f"ha-{i:05d}" for i in range(count)}
    missing = ids - set(payloads)
    twice = [pid for pid, sent in payloads.items() if len(sent) != 1]
    differs = [pid for pid in ids & set(payloads) if journal.get(pid) not in payloads[pid]]
    if missing or twice or differs or state["pending"]:
        raise SystemExit(f"FAILED: {len(missing)} unsent, {len(twice)} with two payloads, {len(differs)} not the "
                         f"journaled payload, {len(state['pending'])} still pending")  # fmt: skip
    resent = sum(1 for a in state["attempts"]) - len(ids)
    print(f"    checked: {count} ids, each broadcast with one payload (the journaled one); {resent} re-sends",
          flush=True)  # fmt: skip


def _daemon(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """A daemon whose log goes to a file (a pipe nobody reads would stall it once full)."""
    with log.open("w") as sink:
        return subprocess.Popen([sys.executable, "-m", "kms", "daemon", *args], stdout=subprocess.DEVNULL,
                                stderr=sink, text=True, env=env)  # fmt: skip


def run(server: PostgresServer, options: argparse.Namespace, replicas: int, kill: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess("--latency", str(options.latency)) as sandbox:
        admin = sandbox.admin
        assert admin is not None
        dbname, sids = make_store(server, options.senders)
        admin.enqueue([pending(i, sids) for i in range(options.count)])
        env = daemon_env(sandbox.url, PASSWORD, Path(tmp), extra={
            "TATUM_KMS_STORE_PASSWORD": server.password, "TATUM_KMS_CLAIM_LEASE_S": str(options.lease)})  # fmt: skip
        args = ["--testnet", "--store", server.url(dbname, password=False), "--chain", "ETH", "--period", "1",
                "--concurrency", str(options.concurrency), "--externalUrl", sandbox.approval_url]  # fmt: skip
        started = time.monotonic()
        procs = [_daemon(args, env, Path(tmp) / f"daemon-{n}.log") for n in range(replicas)]
        killed_at = None
        try:
            while True:
                state = admin.state()
                done = options.count - len(state["pending"])
                if kill and killed_at is None and done >= options.count // 2:
                    procs[0].send_signal(signal.SIGKILL)
                    killed_at = time.monotonic() - started
                    print(f"    SIGKILLed one replica at {killed_at:.1f} s ({done} broadcast)", flush=True)
                if not state["pending"]:
                    break
                if all(p.poll() is not None for p in procs):
                    raise SystemExit("every daemon exited: " + (Path(tmp) / "daemon-0.log").read_text()[-2000:])
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
        check(admin, server, dbname, options.count)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--lease", type=float, default=5.0, help="claim lease in seconds (takeover after a kill)")
    options = parser.parse_args()
    server = start_server()
    try:
        print(f"{options.count} approved pending ETH transactions from {options.senders} senders; every Tatum API and "
              f"approval answer after {options.latency * 1000:.0f} ms; concurrency {options.concurrency} per daemon; "
              f"claim lease {options.lease:g} s", flush=True)  # fmt: skip
        for replicas in options.replicas:
            kill = replicas > 1
            print(f"  {replicas} replica(s){', one SIGKILLed halfway' if kill else ''}:", flush=True)
            elapsed = run(server, options, replicas, kill)
            print(f"  {replicas} replica(s): {elapsed:.1f} s, {options.count / elapsed:.1f} tx/s", flush=True)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
