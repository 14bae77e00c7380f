"""Issue 15 items 6 and 7: the journal reconciled at start with the audit log (a rolled-back store never signs an id
twice) and with the Tatum API (entries stuck at `signed`), and pruned by the retention."""

from __future__ import annotations

import shutil
from pathlib import Path

from kms.audit import AuditLog
from kms.chains import get_chain
from kms.daemon.maintenance import Maintenance
from kms.hygiene import SecretBuffer
from kms.sandbox import SandboxAdmin
from kms.store import WalletStore
from kms.tatum import TatumClient
from tests.test_daemon_loop import admin, client, make_daemon, pending, sandbox, store

__all__ = ["admin", "client", "sandbox", "store"]  # fixtures


def _cycle(store: WalletStore, client: TatumClient, audit: AuditLog) -> None:
    maintenance = Maintenance(store, client.report_errors, audit_path=audit.path)
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
