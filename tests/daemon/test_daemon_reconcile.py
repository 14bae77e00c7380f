"""Issue 15 items 6 and 7: the journal reconciled at start with the audit log (a rolled-back store never signs an id
twice) and with the Tatum API (entries stuck at `signed`), and pruned by the retention."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from kms.audit import AuditLog
from kms.chains import get_chain
from kms.daemon.maintenance import Maintenance
from kms.hygiene import SecretBuffer
from kms.sandbox import SandboxAdmin
from kms.store import WalletStore
from kms.tatum import TatumClient
from tests.daemon.test_daemon_loop import client, make_daemon, pending

__all__ = ["client"]  # a fixture of test_daemon_loop; store, sandbox and admin come from conftest


def _cycle(store: WalletStore, client: TatumClient, audit: AuditLog) -> None:
    maintenance = Maintenance(store, client, audit_path=audit.path)
    daemon = make_daemon(store, client, audit=audit.append, maintenance=maintenance)
    try:
        daemon.maintenance.before_cycle()
        daemon.run_cycle()
    finally:
        daemon.close()


def _copy_store(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for name in ("w.db", "w.db-wal", "w.db-shm"):
        if (source / name).exists():
            shutil.copy(source / name, target / name)
        else:
            (target / name).unlink(missing_ok=True)


def _broadcasts(admin: SandboxAdmin, pending_id: str) -> list[str]:
    return [b["txData"] for b in admin.state()["broadcasts"] if b["signatureId"] == pending_id]


def test_a_rolled_back_store_holds_what_the_audit_log_shows_signed(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    backup = tmp_path / "backup"
    _copy_store(tmp_path, backup)  # the operator's older copy: it has the wallet, not the signing below
    with AuditLog(tmp_path / "audit.log") as audit:
        admin.enqueue(pending("p1", hashes=[key]))
        _cycle(store, client, audit)
        assert len(_broadcasts(admin, "p1")) == 1
        store.close()
        _copy_store(backup, tmp_path)  # restore the older copy: the journal forgets p1
        with WalletStore.open(tmp_path / "w.db", SecretBuffer(b"pw"), allow_weak_kdf=True) as restored:
            assert restored.journal.lookup("p1") is None
            admin.enqueue(pending("p1", hashes=[key]))  # queued again
            _cycle(restored, client, audit)
            assert admin.state()["polls"][-1]["count"] == 1  # the restored store polled for the wallet
            assert len(_broadcasts(admin, "p1")) == 1  # no second payload
            entry = restored.journal.lookup("p1")
            assert entry is not None and entry.status == "held" and "audit log" in entry.reason
            restored.journal.release("p1")  # the operator's decision
            _cycle(restored, client, audit)  # a released signing is not held again
            assert len(_broadcasts(admin, "p1")) == 2
            after = restored.journal.lookup("p1")
            assert after is not None and after.status == "broadcast"


def test_entries_stuck_at_signed_are_reconciled_with_the_tatum_api_and_old_ones_pruned(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    for pid in ("s-done", "s-wait", "s-gone"):
        store.journal.put(pid, "ETH", f"0x{pid.encode().hex()}")
    admin.enqueue([pending("s-done", hashes=["w1"]), pending("s-wait", hashes=["w1"])])
    client.broadcast(get_chain("ETH").broadcast_route, "0xabc", "s-done")  # completed at the API, not in the journal
    now = [time.time()]
    ticks = [0.0]
    maintenance = Maintenance(store, client, retention_days=1, wall_clock=lambda: now[0], monotonic=lambda: ticks[0])
    maintenance.before_cycle()
    states = {e.pending_id: e for e in store.journal.entries()}
    assert {pid: e.status for pid, e in states.items()} == {
        "s-done": "completed",
        "s-wait": "signed",
        "s-gone": "failed",
    }
    assert states["s-wait"].reconciled_at is not None and states["s-done"].reconciled_at is not None
    now[0] += 2 * 86_400  # two days later, within the same day of the daemon's clock: not pruned yet
    ticks[0] += 3600
    maintenance.before_cycle()
    assert store.journal.lookup("s-done") is not None
    ticks[0] += 86_400  # the daily prune: the completed entry is older than the retention; the others are kept
    maintenance.before_cycle()
    assert {e.pending_id: e.status for e in store.journal.entries()} == {"s-wait": "signed", "s-gone": "failed"}
