"""The signing journal's state machine: legal and illegal transitions, meta, poisoned, held and released ids, stuck
entries and reconciliation, pruning, and the upgrade of a schema-1 journal at open."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.errors import StoreError
from kms.hygiene import SecretBuffer
from kms.store import JournalConflictError, JournalState, JournalStateError, KdfParams, WalletStore
from kms.store import database as store_database
from kms.store.journal import DEFAULT_RETENTION_DAYS, RETENTION_SETTING, retention_days
from tests.store.test_store import make_schema_1_journal

S = JournalState
HASH = "ab" * 32


def open_store(path: Path, create: bool = False) -> WalletStore:
    return WalletStore.open(
        path, SecretBuffer(b"pw"), create=create, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with open_store(tmp_path / "w.db", create=True) as s:
        yield s


def states(store: WalletStore) -> dict[str, str]:
    return {e.pending_id: e.status for e in store.journal.entries()}


def test_signed_broadcast_completed_and_the_payload_never_changes(store: WalletStore) -> None:
    journal = store.journal
    journal.put("p1", "sol", "AQID", HASH, meta={"blockhash": "9xQ", "lastValidBlockHeight": 1234})
    entry = journal.lookup("p1")
    assert entry is not None and entry.state is S.SIGNED and entry.chain == "SOL"
    assert entry.meta == {"blockhash": "9xQ", "lastValidBlockHeight": 1234}
    assert entry.payload_sha256 == hashlib.sha256(b"AQID").hexdigest() and entry.request_sha256 == HASH
    journal.put("p1", "SOL", "AQID")  # the same payload again: nothing changes, the first meta stays
    assert journal.lookup("p1") == entry
    with pytest.raises(JournalConflictError):
        journal.put("p1", "SOL", "BBBB")
    journal.mark_broadcast("p1")
    journal.mark_broadcast("p1")  # a re-send of a broadcast entry accepted again
    journal.reconcile("p1", S.COMPLETED)
    journal.mark_broadcast("p1")  # a late re-send does not move a completed entry back
    entry = journal.lookup("p1")
    assert entry is not None and entry.state is S.COMPLETED and entry.reconciled_at is not None
    assert entry.payload == "AQID"
    with pytest.raises(JournalStateError, match=r"completed .* cannot become signed"):
        journal.transition("p1", S.SIGNED)


@pytest.mark.parametrize(
    ("start", "target"),
    [("refused", "broadcast"), ("refused", "signed"), ("poisoned", "broadcast"), ("held", "completed")],
)
def test_blocked_states_leave_only_through_release(store: WalletStore, start: str, target: str) -> None:
    journal = store.journal
    {"refused": lambda: journal.refuse("p1", "ETH", "403 from the approval server"),
     "poisoned": lambda: journal.quarantine("p1", "ETH", "worker died"),
     "held": lambda: journal.hold("p1", "audit log shows it signed", chain="ETH")}[start]()  # fmt: skip
    with pytest.raises(JournalStateError, match=f"is {start} in the journal"):
        journal.transition("p1", target)
    with pytest.raises(JournalStateError):
        journal.put("p1", "ETH", "0xf86b")
    assert states(store) == {"p1": start}
    released = journal.release("p1")
    assert released.status == start and journal.lookup("p1") is None
    journal.put("p1", "ETH", "0xf86b")  # an operator's release: the id may be signed now
    assert states(store) == {"p1": "signed"}


def test_invalid_states_ids_meta_and_reconciliations_are_refused(store: WalletStore) -> None:
    journal = store.journal
    journal.put("p1", "ETH", "0xf86b")
    for call in (
        lambda: journal.transition("p1", "Bad Status!"),
        lambda: journal.put("bad id!", "ETH", "0x01"),
        lambda: journal.put("p2", "ETH", "0x01", meta={"x": float("nan")}),
        lambda: journal.put("p2", "ETH", "0x01", meta={"x": "y" * 5000}),
        lambda: journal.put("p2", "ETH", "0x01", request_sha256="not a hash"),
        lambda: journal.reconcile("p1", S.REFUSED),
        lambda: journal.mark_reported("p1"),
        lambda: journal.transition("p404", S.BROADCAST),
    ):
        with pytest.raises(StoreError):
            call()
    assert states(store) == {"p1": "signed"}
    journal.refuse("p3", "ETH")
    with pytest.raises(JournalStateError):
        journal.reconcile("p3", S.COMPLETED)


def test_poisoned_is_reported_once_and_keeps_its_first_reason(store: WalletStore) -> None:
    journal = store.journal
    journal.put("signed-then-crashed", "ETH", "0xf86b")
    journal.quarantine("signed-then-crashed", "ETH", "worker died while broadcasting")
    journal.quarantine("never-signed", "BTC", "worker died\nwhile parsing")
    journal.quarantine("never-signed", "BTC", "a second crash")
    assert [(e.pending_id, e.reason) for e in journal.unreported_poisoned()] == [
        ("signed-then-crashed", "worker died while broadcasting"),
        ("never-signed", "worker died while parsing"),
    ]
    kept = journal.lookup("signed-then-crashed")
    assert kept is not None and kept.payload == "0xf86b"  # the evidence stays
    journal.mark_reported("never-signed")
    assert [e.pending_id for e in journal.unreported_poisoned()] == ["signed-then-crashed"]
    entry = journal.lookup("never-signed")
    assert entry is not None and entry.reported and entry.state is S.POISONED


def test_held_ids_and_the_release_record(store: WalletStore) -> None:
    journal = store.journal
    journal.hold("lost-1", "signed per the audit log, not in this journal", chain="eth", payload_sha256=HASH)
    journal.put("ours-1", "ETH", "0xf86b")
    journal.hold("ours-1", "the audit log shows another payload")
    journal.hold("ours-1", "held again")  # already held: the first reason stays
    held = {e.pending_id: e for e in journal.entries("held")}
    assert held["lost-1"].payload is None and held["lost-1"].payload_sha256 == HASH
    assert held["ours-1"].payload == "0xf86b" and held["ours-1"].reason == "the audit log shows another payload"
    with pytest.raises(StoreError):
        journal.hold("x", "bad hash", payload_sha256="xyz")
    assert not journal.was_released("lost-1", HASH)
    journal.release("lost-1")
    assert journal.was_released("lost-1", HASH) and not journal.was_released("lost-1", "cd" * 32)
    assert journal.lookup("lost-1") is None
    journal.refuse("denied-1", "ETH")
    journal.hold("denied-1", "the audit log shows it signed after all")  # held wins over every other state
    assert states(store)["denied-1"] == "held"


def test_stuck_signed_entries_and_reconciliation(store: WalletStore) -> None:
    journal = store.journal
    for pid in ("a", "b", "c"):
        journal.put(pid, "ETH", f"0x0{pid}")
    journal.mark_broadcast("c")
    assert [e.pending_id for e in journal.stuck()] == ["a", "b"]
    assert journal.stuck(older_than_s=3600) == []  # just written: not stuck for an hour
    assert [e.pending_id for e in journal.stuck(older_than_s=3600, now=time.time() + 7200)] == ["a", "b"]
    journal.reconcile("a", S.COMPLETED)
    journal.reconcile("b", S.SIGNED)  # Tatum still lists it pending: same payload is sent again later
    journal.reconcile("c", S.FAILED, "the Tatum API reports it failed")
    assert states(store) == {"a": "completed", "b": "signed", "c": "failed"}
    b = journal.lookup("b")
    assert b is not None and b.reconciled_at is not None
    assert journal.entries("failed")[0].reason == "the Tatum API reports it failed"


def test_prune_deletes_only_old_finished_entries(store: WalletStore) -> None:
    journal = store.journal
    for pid in ("done", "confirmed", "stuck", "failed"):
        journal.put(pid, "ETH", f"0x{pid.encode().hex()}")
    journal.mark_broadcast("done")
    journal.reconcile("confirmed", S.COMPLETED)
    journal.reconcile("failed", S.FAILED)
    journal.refuse("refused", "ETH")
    journal.quarantine("poisoned", "ETH", "crash")
    journal.hold("held", "audit")
    assert journal.prune(30) == 0  # nothing is 30 days old yet
    assert journal.prune(30, now=time.time() + 31 * 86_400) == 2
    assert sorted(states(store)) == ["failed", "held", "poisoned", "refused", "stuck"]
    with pytest.raises(StoreError):
        journal.prune(0)


def test_retention_setting() -> None:
    assert retention_days({}) == DEFAULT_RETENTION_DAYS
    assert retention_days({RETENTION_SETTING: " 7 "}) == 7
    for bad in ("0", "-1", "seven", "1e3", "99999"):
        with pytest.raises(StoreError, match=RETENTION_SETTING):
            retention_days({RETENTION_SETTING: bad})


def test_a_schema_1_journal_is_upgraded_at_open(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    open_store(path, create=True).close()
    make_schema_1_journal(
        path,
        [
            ("sent-1", "ETH", "0xaa", "broadcast"),
            ("stuck-1", "BTC", "0200", "signed"),
            ("denied-1", "ETH", "kms:four-eye-refused", "refused"),
            ("odd-1", "ETH", "0xbb", "something-else"),
        ],
        request_column=True,
    )
    with open_store(path) as store:
        entries = {e.pending_id: e for e in store.journal.entries()}
    assert {pid: e.status for pid, e in entries.items()} == {
        "sent-1": "broadcast",
        "stuck-1": "signed",
        "denied-1": "refused",
        "odd-1": "signed",  # unknown to this kms: asked about, never signed anew
    }
    assert entries["denied-1"].payload is None and entries["denied-1"].payload_sha256 == ""
    assert entries["sent-1"].payload_sha256 == hashlib.sha256(b"0xaa").hexdigest()
    assert entries["stuck-1"].created_at == 1700000000 and entries["stuck-1"].updated_at == 1700000001
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_database.SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "journal_schema1" not in tables and "journal_releases" in tables
        assert "policy_velocity" in tables, "the migration adds the velocity ledger's table"
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def test_a_schema_2_store_gains_the_velocity_table_on_open(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    open_store(path, create=True).close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TABLE policy_velocity")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    finally:
        conn.close()
    with open_store(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_database.SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM policy_velocity").fetchone() == (0,)
    finally:
        conn.close()


def test_a_wrong_password_does_not_upgrade_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    open_store(path, create=True).close()
    make_schema_1_journal(path, [("p1", "ETH", "0xaa", "signed")])
    with pytest.raises(StoreError):
        WalletStore.open(path, SecretBuffer(b"wrong"), allow_weak_kdf=True)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        conn.execute(f"PRAGMA user_version = {store_database.SCHEMA_VERSION + 1}")
        conn.commit()
    finally:
        conn.close()
    newer, known = store_database.SCHEMA_VERSION + 1, store_database.SCHEMA_VERSION
    with pytest.raises(StoreError, match=f"schema version {newer}; this kms knows up to {known}"):
        open_store(path)


def test_kms_journal_shows_every_state_releases_a_held_id_and_prunes(tmp_path: Path) -> None:
    from tests.cli_helpers import PASSWORD, kms_env, run_kms

    store_path = tmp_path / ".tatumrc" / "wallet.dat"
    with WalletStore.open(
        store_path,
        SecretBuffer(PASSWORD.encode()),
        create=True,
        kdf=KdfParams.insecure_for_tests(),
        allow_weak_kdf=True,
    ) as store:
        store.journal.put("sol-1", "SOL", "AQID", meta={"blockhash": "9xQ", "lastValidBlockHeight": 7})
        store.journal.quarantine("crash-1", "ETH", "worker died")
        store.journal.hold("lost-1", "signed per the audit log", chain="ETH", payload_sha256=HASH)
        store.journal.refuse("denied-1", "ETH")
    listed = {e["pendingId"]: e for e in run_kms(["journal", "list"], tmp_path).json()}
    assert {pid: e["status"] for pid, e in listed.items()} == {
        "sol-1": "signed", "crash-1": "poisoned", "lost-1": "held", "denied-1": "refused",
    }  # fmt: skip
    assert listed["sol-1"]["meta"] == {"blockhash": "9xQ", "lastValidBlockHeight": 7}
    assert listed["crash-1"]["reported"] is False and listed["crash-1"]["reason"] == "worker died"
    assert listed["lost-1"]["txDataSha256"] == HASH and listed["denied-1"]["txDataSha256"] is None
    held = run_kms(["journal", "list", "--status", "held"], tmp_path).json()
    assert [e["pendingId"] for e in held] == ["lost-1"]
    bad = run_kms(["journal", "list", "--status", "stuck"], tmp_path)
    assert bad.code != 0 and "invalid journal status" in bad.error()
    released = run_kms(["journal", "release", "lost-1"], tmp_path).json()
    assert released == {"released": "lost-1", "status": "held", "txDataSha256": HASH}
    with open_store_at(store_path, PASSWORD) as store:
        assert store.journal.lookup("lost-1") is None and store.journal.was_released("lost-1", HASH)
        store.journal.mark_broadcast("sol-1")
    assert run_kms(["journal", "prune"], tmp_path).json() == {"pruned": 0, "olderThanDays": DEFAULT_RETENTION_DAYS}
    env = kms_env(tmp_path, **{RETENTION_SETTING: "0"})
    refused = run_kms(["journal", "prune"], tmp_path, env=env)
    assert refused.code != 0 and RETENTION_SETTING in refused.error()


def open_store_at(path: Path, password: str) -> WalletStore:
    return WalletStore.open(path, SecretBuffer(password.encode()), allow_weak_kdf=True)


def test_resign_is_the_one_explicit_way_a_payload_is_replaced(store: WalletStore) -> None:
    journal = store.journal
    journal.put("p1", "SOL", "OLD", HASH, meta={"blockhash": "9xQ", "lastValidBlockHeight": 1234})
    with pytest.raises(StoreError, match="reason"):
        journal.resign("p1", "OLD", "NEW", {"blockhash": "7yR"}, "")
    with pytest.raises(StoreError, match="must be new"):
        journal.resign("p1", "OLD", "OLD", {"blockhash": "7yR"}, "expired")
    with pytest.raises(JournalConflictError, match="no longer holds"):
        journal.resign("p1", "SOMETHING ELSE", "NEW", {"blockhash": "7yR"}, "expired")
    assert journal.payload("p1") == "OLD"  # a refused re-signing changes nothing
    journal.resign("p1", "OLD", "NEW", {"blockhash": "7yR", "lastValidBlockHeight": 1500}, "expired unsent")
    entry = journal.lookup("p1")
    assert entry is not None and entry.state is S.SIGNED and entry.payload == "NEW"
    assert entry.payload_sha256 == hashlib.sha256(b"NEW").hexdigest() and entry.request_sha256 == HASH
    assert entry.meta == {
        "blockhash": "7yR",
        "lastValidBlockHeight": 1500,
        "replacedPayloadSha256": hashlib.sha256(b"OLD").hexdigest(),
    }
    assert entry.reason == "expired unsent"
    with pytest.raises(JournalConflictError):  # a second re-signing of the old payload (another process) loses
        journal.resign("p1", "OLD", "NEWER", {}, "expired")
    journal.mark_broadcast("p1")
    with pytest.raises(JournalStateError, match="broadcast; it is not re-signed"):
        journal.resign("p1", "NEW", "NEWER", {}, "expired")
    journal.refuse("p2", "SOL")
    with pytest.raises(JournalStateError, match="refused; it is not re-signed"):
        journal.resign("p2", "OLD", "NEW", {}, "expired")
    with pytest.raises(StoreError, match="no journal entry"):
        journal.resign("p3", "OLD", "NEW", {}, "expired")


def test_held_nonces_and_counts_per_state(store: WalletStore) -> None:
    """The nonces a sender's unsettled payloads hold (the daemon never hands them out again) and the entries per
    state, read with the backend's own SQL (the file and PostgreSQL alike)."""
    journal = store.journal
    sender, other = "0x" + "ab" * 20, "0x" + "cd" * 20
    journal.put("n5", "ETH", "0xaa", meta={"from": sender, "nonce": 5})
    journal.put("n6", "ETH", "0xbb", meta={"from": sender, "nonce": 6})
    journal.put("n7", "ETH", "0xcc", meta={"from": sender, "nonce": 7})
    journal.put("x9", "ETH", "0xdd", meta={"from": other, "nonce": 9})
    journal.put("odd", "ETH", "0xee", meta={"from": sender, "nonce": "8"})  # not an integer: holds nothing
    journal.put("bsc", "BSC", "0xff", meta={"from": sender, "nonce": 4})
    journal.mark_broadcast("n6")
    journal.reconcile("n7", "completed")
    assert journal.nonces_held("ETH", sender) == {5, 6}
    assert journal.nonces_held("eth", sender, at_least=6) == {6}
    assert journal.nonces_held("ETH", other) == {9}
    assert journal.counts() == {"signed": 4, "broadcast": 1, "completed": 1}
