"""The PostgreSQL store backend against a real server started by the test session: the same sealed records (a swapped
ciphertext is detected), the per-chain limit in the database, the journal's state machine (the SQLite journal tests
run here again), claims and leases, replica shares, TLS and credential rules, and a database restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from kms.errors import (
    ClaimLostError,
    LimitExceededError,
    StoreUnavailableError,
    TamperedRecordError,
    UsageError,
    WrongPasswordError,
)
from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore
from kms.store.backend import open_backend
from kms.store.claims import Claims
from kms.store.postgres import PostgresBackend, from_location
from kms.store.replicas import Membership, owner, share
from kms.store_location import database_credentials, database_settings, open_location
from tests.servers.postgres import PostgresServer

# The same state-machine tests, run against PostgreSQL by the fixture below.
from tests.store.test_store_journal import (
    test_blocked_states_leave_only_through_release,
    test_held_ids_and_the_release_record,
    test_held_nonces_and_counts_per_state,
    test_invalid_states_ids_meta_and_reconciliations_are_refused,
    test_poisoned_is_reported_once_and_keeps_its_first_reason,
    test_prune_deletes_only_old_finished_entries,
    test_signed_broadcast_completed_and_the_payload_never_changes,
    test_stuck_signed_entries_and_reconciliation,
)

__all__ = [
    "test_blocked_states_leave_only_through_release",
    "test_held_ids_and_the_release_record",
    "test_held_nonces_and_counts_per_state",
    "test_invalid_states_ids_meta_and_reconciliations_are_refused",
    "test_poisoned_is_reported_once_and_keeps_its_first_reason",
    "test_prune_deletes_only_old_finished_entries",
    "test_signed_broadcast_completed_and_the_payload_never_changes",
    "test_stuck_signed_entries_and_reconciliation",
]

PASSWORD = b"correct horse"
MNEMONIC = "abandon " * 11 + "about"


def open_pg(url: str, create: bool = False, password: bytes = PASSWORD) -> WalletStore:
    return WalletStore.open(
        open_backend(url), SecretBuffer(password), create=create, kdf=KdfParams.insecure_for_tests(),
        allow_weak_kdf=True,
    )  # fmt: skip


@pytest.fixture
def store(postgres_url: str) -> Iterator[WalletStore]:
    with open_pg(postgres_url, create=True) as s:
        yield s


def raw(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def test_records_round_trip_and_the_database_sees_only_ciphertext(postgres_url: str) -> None:
    with open_pg(postgres_url, create=True) as store:
        sid = store.add("eth", False, {"mnemonic": MNEMONIC, "xpub": "xpub6"})
        key = store.add("BTC", True, {"privateKey": "L1aW4aubDFB7yfras2S1mN3bqg9nwySY8nkoLmJebSLD5BWv3ENZ"})
        assert store.counts() == {("ETH", False): 1, ("BTC", True): 1}
        assert store.signature_ids("ETH", False) == [sid]
    with raw(postgres_url) as conn:
        dump = repr(conn.execute("SELECT * FROM wallets").fetchall()) + repr(conn.execute("SELECT * FROM header"))
    assert "abandon" not in dump and "L1aW4" not in dump
    with pytest.raises(WrongPasswordError):
        open_pg(postgres_url, password=b"wrong")
    with open_pg(postgres_url) as store, store.get(sid) as wallet, store.get(key) as other:
        assert wallet.fields() == {"mnemonic": MNEMONIC, "xpub": "xpub6"}
        assert other.meta.chain == "BTC" and other.meta.testnet is True


def test_swapping_two_ciphertext_rows_is_detected_on_read(postgres_url: str) -> None:
    with open_pg(postgres_url, create=True) as store:
        a = store.add("ETH", False, {"privateKey": "0x" + "11" * 32})
        b = store.add("ETH", False, {"privateKey": "0x" + "22" * 32})
    with raw(postgres_url) as conn:
        conn.execute(
            "UPDATE wallets SET nonce = other.nonce, ciphertext = other.ciphertext FROM wallets AS other"
            " WHERE wallets.signature_id IN (%s, %s) AND other.signature_id IN (%s, %s)"
            " AND other.signature_id <> wallets.signature_id",
            (a, b, a, b),
        )
    with open_pg(postgres_url) as store:
        for sid in (a, b):
            with pytest.raises(TamperedRecordError):
                store.get(sid)


def test_the_per_chain_limit_holds_in_the_database(postgres_url: str) -> None:
    with open_pg(postgres_url, create=True) as store:
        store.add("ETH", False, {"privateKey": "0x" + "11" * 32})
        with raw(postgres_url) as conn:
            conn.execute("UPDATE chain_counts SET wallets = 24999 WHERE chain = 'ETH'")
        with pytest.raises(LimitExceededError, match="25000"):
            store.add_many([("ETH", False, {"privateKey": "0x" + "22" * 32})] * 2)
        store.add("ETH", False, {"privateKey": "0x" + "33" * 32})  # the 25,000th
        with raw(postgres_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
            # A client that skips kms's own check (another replica with a bug, a manual insert) is stopped too.
            conn.execute(
                "INSERT INTO wallets (signature_id, chain, testnet, kind, nonce, ciphertext)"
                " VALUES ('x', 'ETH', 0, 'privateKey', '\\x00', '\\x00')"
            )


def test_claims_one_holder_at_a_time_and_a_lease_runs_out(store: WalletStore) -> None:
    db = store.database
    first, second = Claims(db, "replica-a", lease_s=0.5), Claims(db, "replica-b", lease_s=60)
    assert first.acquire("p1") and first.acquire("p1")  # ours again: extended
    assert not second.acquire("p1") and first.holder_of("p1") == "replica-a"
    first.confirm("p1")
    time.sleep(0.6)
    with pytest.raises(ClaimLostError):
        first.confirm("p1")  # ran out: never broadcast on an expired lease
    assert second.acquire("p1") and second.holder_of("p1") == "replica-b"
    assert not first.acquire("p1")
    second.release("p1")
    assert first.holder_of("p1") is None and first.acquire("p1")


def test_a_replica_journals_a_signature_only_under_its_claim(postgres_url: str) -> None:
    backend = from_location(postgres_url).as_replica()
    with (
        open_pg(postgres_url, create=True),
        WalletStore.open(backend, SecretBuffer(PASSWORD), allow_weak_kdf=True) as replica,
    ):
        claims = Claims(replica.database, backend.replica_id)
        with pytest.raises(ClaimLostError):
            replica.journal.put("p1", "ETH", "0xf86b")  # no claim: the database refuses the signed entry
        assert replica.journal.lookup("p1") is None
        assert claims.acquire("p1")
        replica.journal.put("p1", "ETH", "0xf86b")
        replica.journal.refuse("p2", "ETH")  # a refusal is not a signature: no claim needed
        assert replica.journal.lookup("p1").payload == "0xf86b"  # type: ignore[union-attr]


def test_shares_split_the_ids_and_a_leave_moves_only_the_leavers(store: WalletStore) -> None:
    ids = [f"sid-{n}" for n in range(300)]
    replicas = ["a", "b", "c"]
    shares = {r: share(ids, r, replicas) for r in replicas}
    assert sorted(sid for ids_of in shares.values() for sid in ids_of) == sorted(ids)  # each id: one replica
    assert all(shares[r] for r in replicas)
    after = {r: share(ids, r, ["a", "c"]) for r in ("a", "c")}
    for r in ("a", "c"):
        assert set(shares[r]) <= set(after[r])  # the stayers keep theirs and take over b's
    assert set(after["a"]) | set(after["c"]) == set(ids)
    assert all(owner(sid, ["a", "c"]) in ("a", "c") for sid in shares["b"])
    db = store.database
    one, two = Membership(db, "a", ttl_s=0.5), Membership(db, "b", ttl_s=60)
    one.heartbeat()
    assert two.heartbeat() == ["a", "b"]
    time.sleep(0.6)
    assert Membership(db, "c", ttl_s=0.5).heartbeat() == ["c"]  # a and b are older than c's TTL
    assert two.heartbeat() == ["a", "b", "c"]
    two.leave()
    assert "b" not in Membership(db, "c", ttl_s=60).heartbeat()


def test_tls_is_required_except_to_loopback_and_the_location_hides_the_password() -> None:
    remote = from_location("postgresql://kms:s3cret@db.example.com/kms")
    assert "s3cret" not in remote.location and "sslmode=verify-full" in remote.location
    with pytest.raises(UsageError, match="sslmode=disable"):
        from_location("postgresql://kms@db.example.com/kms?sslmode=disable")
    assert "sslmode=require" in from_location("postgresql://kms@db.example.com/kms?sslmode=require").location
    assert "sslmode=disable" in from_location("postgresql://kms@127.0.0.1:5/kms?sslmode=disable").location
    with pytest.raises(UsageError, match="scheme"):
        open_backend("mysql://x/y")


def test_the_database_password_comes_from_the_provider_layer(postgres_server: PostgresServer, tmp_path) -> None:
    settings = {"TATUM_KMS_PASSWORD": "the wallet store password", "TATUM_KMS_STORE_PASSWORD": "db"}
    assert database_settings(settings, "env")["TATUM_KMS_PASSWORD"] == "db"
    assert database_credentials({"TATUM_KMS_PASSWORD": "the wallet store password"}) is None  # never reused
    secret = tmp_path / "db-password"
    secret.write_text(postgres_server.password + "\n")
    secret.chmod(0o400)
    url = postgres_server.url(postgres_server.create_database(), password=False)
    backend = open_location(url, {"TATUM_KMS_STORE_PASSWORD_FILE": str(secret)})
    with WalletStore.open(
        backend, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        assert store.add("ETH", False, {"privateKey": "0x" + "11" * 32})
    bad = open_location(url, {"TATUM_KMS_STORE_PASSWORD": "wrong"})
    with pytest.raises(StoreUnavailableError) as caught:
        bad.probe()
    assert "wrong" not in str(caught.value)


def test_a_database_restart_fails_calls_then_the_store_resumes(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with open_pg(postgres_url, create=True) as store:
        sid = store.add("ETH", False, {"privateKey": "0x" + "11" * 32})
        postgres_server.stop()
        try:
            with pytest.raises(StoreUnavailableError):
                store.signature_ids("ETH", False)
        finally:
            postgres_server.start()
        assert store.signature_ids("ETH", False) == [sid]  # reconnected, keys still in memory
        store.journal.put("p1", "ETH", "0xf86b")
        assert store.journal.payload("p1") == "0xf86b"


def test_backend_repr_holds_no_password(postgres_url: str) -> None:
    backend = from_location(postgres_url)
    assert isinstance(backend, PostgresBackend)
    assert postgres_url.split(":")[2].split("@")[0] not in repr(backend) + backend.location
