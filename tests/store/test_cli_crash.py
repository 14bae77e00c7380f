"""The real `kms generatemanagedprivatekeybatch` killed with SIGKILL at random instants, many times: every wallet
it had printed (so whose write had returned) must be in the store, which must open, pass SQLite's integrity check
and decrypt every one of them. Two concurrent batches must both land in full."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kms.hygiene import SecretBuffer
from kms.store import WalletStore
from tests.cli_helpers import PASSWORD, kms_env

BATCH = 15


def _batch_argv(path: Path, count: int = BATCH) -> list[str]:
    return [sys.executable, "-m", "kms", "generatemanagedprivatekeybatch", "ETH", str(count), "--path", str(path)]


def _run_and_maybe_kill(argv: list[str], env: dict[str, str], kill_after: float) -> tuple[list[str], bool]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=kill_after)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        killed = True
    out, err = proc.communicate(timeout=60)
    if not killed:
        assert proc.returncode == 0, err.decode(errors="replace")
    text = out.decode()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [json.loads(line)["signatureId"] for line in complete.splitlines()], killed


def _check(path: Path, acknowledged: set[str]) -> None:
    with WalletStore.open(path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        present = set(store.signature_ids("ETH", False))
        assert acknowledged <= present, f"{len(acknowledged - present)} acknowledged wallets lost"
        for sid in acknowledged:
            with store.get(sid) as wallet:
                assert wallet.fields()["privateKey"].startswith("0x")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def test_batch_killed_at_random_instants_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "wallet.dat"
    env = kms_env(tmp_path)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged: set[str] = set()
    kills = 0
    # Measure one uninterrupted run, then kill anywhere from interpreter start to just after it would have finished.
    start = time.perf_counter()
    ids, _ = _run_and_maybe_kill(_batch_argv(path), env, kill_after=120)
    full_run = time.perf_counter() - start
    acknowledged.update(ids)
    for _ in range(20):
        ids, killed = _run_and_maybe_kill(_batch_argv(path), env, rng.uniform(0.05, full_run * 1.1))
        kills += killed
        acknowledged.update(ids)
        assert WalletStore.probe(path) == "kms"
        _check(path, acknowledged)
    assert kills >= 5, "almost no run was interrupted; the test proved little"
    # A batch is one transaction: the store holds whole batches only.
    with WalletStore.open(path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        assert len(store.signature_ids("ETH", False)) % BATCH == 0


def test_two_concurrent_batches_of_200_end_with_400(tmp_path: Path) -> None:
    path = tmp_path / "wallet.dat"
    env = kms_env(tmp_path)
    first = subprocess.run(_batch_argv(path, 1), env=env, capture_output=True, text=True, check=True)
    seed = json.loads(first.stdout)["signatureId"]
    procs = [subprocess.Popen(_batch_argv(path, 200), env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    reader = subprocess.Popen(
        [sys.executable, "-m", "kms", "getmanagedwallet", seed, "--path", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert reader.wait(timeout=60) == 0
    printed = {json.loads(line)["signatureId"] for out in outputs for line in out.splitlines()}
    assert len(printed) == 400
    with WalletStore.open(path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        assert set(store.signature_ids("ETH", False)) == printed | {seed}
