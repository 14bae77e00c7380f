"""The store under real processes: SIGKILL at random instants, concurrent writers, a reader that must never fail."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "crash-test password"

# A stand-in for `kms generatemanagedprivatekeybatch`: it prints each signatureId only after add() returned, so every
# printed id must survive a SIGKILL. Every 7th write rotates the data key, so some kills land inside a rotation.
WRITER = """
import os, sys
from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore
path, count = sys.argv[1], int(sys.argv[2])
password = SecretBuffer(os.environ["TATUM_KMS_PASSWORD"])
with WalletStore.open(path, password, create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True) as store:
    for i in range(count):
        sid = store.add("ETH", False, {"privateKey": "0x%064x" % i})
        print(sid, flush=True)
        if i % 7 == 6:
            store.rotate_data_key()
"""

# Reads until the stop file appears; any exception ends it with a traceback and a non-zero status.
READER = """
import os, sys
from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore
path, stop = sys.argv[1], sys.argv[2]
rounds = 0
with WalletStore.open(path, SecretBuffer(os.environ["TATUM_KMS_PASSWORD"]), allow_weak_kdf=True) as store:
    while not os.path.exists(stop) or rounds < 3:
        metas = store.list_meta()
        for meta in metas[-20:]:
            with store.get(meta.signature_id) as wallet:
                assert wallet.fields()["privateKey"].startswith("0x")
        assert sum(store.counts().values()) >= len(metas)
        rounds += 1
print("rounds", rounds, flush=True)
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TATUM_KMS_PASSWORD"] = PASSWORD
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def writer_argv(path: Path, count: int = 100_000) -> list[str]:
    return [sys.executable, "-c", WRITER, str(path), str(count)]


def run_writer_and_kill(argv: Sequence[str], env: Mapping[str, str], kill_after_s: float) -> list[str]:
    """Start a writer that prints one signatureId per line once that write returned, SIGKILL it after kill_after_s,
    and return the ids it had printed in full. (Swap argv for the real CLI batch command to test it the same way.)"""
    proc = subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        time.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    text = out.decode()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # drop a half-printed last line
    return complete.split()


def check_store_holds(path: Path, expected: set[str]) -> int:
    """Open after a crash: it must open, pass SQLite's integrity check and decrypt every expected wallet."""
    with WalletStore.open(path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        present = {meta.signature_id for meta in store.list_meta()}
        assert expected <= present, f"{len(expected - present)} acknowledged wallets lost"
        for sid in expected:
            with store.get(sid) as wallet:
                assert wallet.fields()["privateKey"].startswith("0x")
        total = len(present)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        counted = conn.execute("SELECT COALESCE(SUM(wallets), 0) FROM chain_counts").fetchone()[0]
        assert counted == total  # the per-chain counters moved with the rows
    finally:
        conn.close()
    return total


def test_sigkill_at_random_instants_loses_no_acknowledged_wallet(tmp_path: Path) -> None:
    path = tmp_path / "wallet.dat"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged: set[str] = set()
    env = child_env()
    kills = 25
    for round_no in range(kills):
        # Early kills land during interpreter start-up and store creation; later ones among writes and rotations.
        delay = rng.uniform(0.05, 0.35) if round_no < 3 else rng.uniform(0.3, 0.9)
        printed = run_writer_and_kill(writer_argv(path), env, delay)
        acknowledged.update(printed)
        if WalletStore.probe(path) == "missing":
            assert not acknowledged  # killed before the store existed: nothing was promised
            continue
        assert WalletStore.probe(path) == "kms"
        check_store_holds(path, acknowledged)
    assert len(acknowledged) > 50, "the writer never got going; the test proved nothing"
    leftovers = {p.name for p in tmp_path.iterdir()} - {"wallet.dat", "wallet.dat-wal", "wallet.dat-shm"}
    assert all(name.startswith(".wallet.dat.") and name.endswith(".creating") for name in leftovers), leftovers


def test_concurrent_writers_lose_nothing_and_reader_never_fails(tmp_path: Path) -> None:
    path = tmp_path / "wallet.dat"
    WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ).close()
    stop = tmp_path / "stop"
    env = child_env()

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)

    reader = spawn([sys.executable, "-c", READER, str(path), str(stop)])
    writers = [spawn(writer_argv(path, 200)) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in writers]
    stop.touch()
    reader_out, reader_err = reader.communicate(timeout=300)
    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err.decode(errors="replace")[-2000:]
    assert reader.returncode == 0, reader_err.decode(errors="replace")[-2000:]
    assert int(reader_out.split()[1]) >= 3
    ids = [set(out.decode().split()) for out, _ in outputs]
    assert len(ids[0]) == len(ids[1]) == 200
    assert check_store_holds(path, ids[0] | ids[1]) == 400


def test_two_processes_creating_the_same_store_share_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "wallet.dat"
    go = tmp_path / "go"
    creator = (
        "import os, sys, time\n"
        "from kms.hygiene import SecretBuffer\n"
        "from kms.store import KdfParams, WalletStore\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "with WalletStore.open(sys.argv[1], SecretBuffer(os.environ['TATUM_KMS_PASSWORD']), create=True,\n"
        "                      kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True) as store:\n"
        "    print(store.add('BTC', False, {'privateKey': '0x01'}))\n"
    )
    env = child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", creator, str(path), str(go)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    time.sleep(0.5)  # let all three reach the start line
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    printed = {out.decode().strip() for out, _ in results}
    assert len(printed) == 3
    assert check_store_holds(path, printed) == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["wallet.dat"]


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_polite_signal_also_keeps_acknowledged_wallets(tmp_path: Path, signal_number: int) -> None:
    path = tmp_path / "wallet.dat"
    proc = subprocess.Popen(writer_argv(path), env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline() if proc.stdout else b""
    assert first.strip(), proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    time.sleep(0.2)
    proc.send_signal(signal_number)
    out, _ = proc.communicate(timeout=60)
    text = (first + out).decode()
    printed = (text if text.endswith("\n") else text[: text.rfind("\n") + 1]).split()
    check_store_holds(path, set(printed))


# Takes the daemon lock, says so, and holds it until killed.
LOCK_HOLDER = """
import sys, time
from kms.store import acquire_daemon_lock
lock = acquire_daemon_lock(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_daemon_on_one_store_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    import socket

    from kms.store import DaemonLockedError, acquire_daemon_lock

    store_path = tmp_path / "wallet.dat"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(store_path)], env=child_env(), stdout=subprocess.PIPE, cwd=REPO
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(DaemonLockedError) as refused:
            acquire_daemon_lock(store_path)
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}, since 20" in message
        assert str(store_path) in message and "\n" not in message
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock, the stale file must not block the next daemon
        holder.wait()
    with acquire_daemon_lock(store_path) as lock:
        assert lock.held
        contender = subprocess.run(
            [sys.executable, "-c", LOCK_HOLDER, str(store_path)], env=child_env(), capture_output=True, cwd=REPO
        )
        assert contender.returncode != 0 and b"locked" not in contender.stdout
        assert f"pid {os.getpid()} on host".encode() in contender.stderr
    assert not lock.held
