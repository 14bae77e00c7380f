"""Issue 15 item 1: a pending transaction that takes the whole process down (here: SIGKILL from inside its signer, as
a SIGSEGV would) is quarantined after a restart, reported once, never retried; the other ids keep being signed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox import Sandbox, SandboxAdmin
from kms.store import KdfParams, WalletStore
from tests.daemon.test_daemon_loop import errors, pending, sent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin() -> Iterator[SandboxAdmin]:
    with Sandbox() as sb, SandboxAdmin(sb.url) as a:
        yield a


def _store(path: Path) -> list[str]:
    with WalletStore.open(
        path, SecretBuffer(b"pw"), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        return [
            store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
            for _ in range(3)
        ]


def _run(store: Path, url: str, inflight: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.crash_daemon", str(store), url, str(inflight)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120).returncode


def test_a_transaction_that_kills_the_process_is_quarantined_and_reported_once(
    tmp_path: Path, admin: SandboxAdmin
) -> None:
    store, inflight = tmp_path / "w.db", tmp_path / "inflight"
    keys = _store(store)
    admin.enqueue(pending("poison-1", hashes=[keys[0]]))
    admin.enqueue(pending("ok-1", hashes=[keys[1]]))
    assert _run(store, admin.url, inflight) == -signal.SIGKILL
    # Restarted: the id found in flight runs alone, and kills the process again.
    assert _run(store, admin.url, inflight) == -signal.SIGKILL
    admin.enqueue(pending("ok-2", hashes=[keys[2]]))
    # Restarted again: it is quarantined and reported; the others are signed and sent.
    assert _run(store, admin.url, inflight) == 0
    assert "quarantined" in errors(admin)["poison-1"] and "poison-1" not in sent(admin)
    # Still pending at the API: neither signed nor reported again. (Another id found in flight at the first crash runs
    # alone in the third run, and a normal id skipped meanwhile goes out now at the latest.)
    assert _run(store, admin.url, inflight) == 0
    assert set(sent(admin)) == {"ok-1", "ok-2"}
    reports = [e for e in admin.state()["errors"] if e["signatureId"] == "poison-1"]
    assert len(reports) == 1
    with WalletStore.open(store, SecretBuffer(b"pw"), allow_weak_kdf=True) as opened:
        entry = opened.journal.lookup("poison-1")
        assert entry is not None and entry.status == "poisoned" and entry.reported and entry.payload is None
        opened.journal.release("poison-1")
    assert list(inflight.glob("*.inflight")) == []


def _marker(directory: Path, pending_id: str, *, alone: bool, boot: str | None = None) -> None:
    from kms.daemon.quarantine import InFlight

    name = hashlib.sha256(pending_id.encode()).hexdigest() + ".inflight"
    marker = {"pendingId": pending_id, "chain": "ETH", "boot": boot or InFlight(directory)._boot, "alone": alone}
    (directory / name).write_text(json.dumps(marker))


def test_a_suspect_runs_alone_and_nothing_waits_long_for_it(tmp_path: Path) -> None:
    from kms.api import PendingTransaction
    from kms.daemon.quarantine import InFlight, NotAloneYet

    def tx(pid: str) -> PendingTransaction:
        return PendingTransaction(id=pid, chain="ETH", serialized_transaction="{}", hashes=("w",))

    directory = tmp_path / "inflight"
    directory.mkdir()
    _marker(directory, "suspect-1", alone=False)
    _marker(directory, "old-boot", alone=True, boot="another boot")
    inflight = InFlight(directory, solo_wait_s=0.2)
    assert inflight.suspects == {"suspect-1"} and inflight.poisoned == []  # a marker of another boot is no evidence
    inflight.enter(tx("normal-1"))
    with pytest.raises(NotAloneYet):
        inflight.enter(tx("suspect-1"))  # others still run: not now
    inflight.leave("normal-1")
    inflight.enter(tx("suspect-1"))
    with pytest.raises(NotAloneYet):
        inflight.enter(tx("normal-2"))  # the suspect runs alone
    assert len(list(directory.glob("*.inflight"))) == 1  # only the suspect's marker, now saying "alone"
    inflight.leave("suspect-1")
    inflight.enter(tx("normal-2"))
    inflight.leave("normal-2")
    assert list(directory.glob("*.inflight")) == [] and inflight.suspects == set()
