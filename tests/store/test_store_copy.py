"""`kms store copy` between a store file and a real PostgreSQL database, both ways: the same sealed bytes, the same
password, verified record by record; a failure leaves nothing at the destination and one error line."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from kms.approval.velocity import VelocityLedger
from kms.errors import StoreError, TamperedRecordError
from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore
from kms.store.backend import open_backend
from kms.store.copy import copy_store
from tests.cli_helpers import PASSWORD, kms_env, run_kms, snapshot
from tests.servers.postgres import PostgresServer

MNEMONIC = "abandon " * 11 + "about"


def make_file_store(path: Path) -> dict[str, dict[str, object]]:
    with WalletStore.open(
        path, SecretBuffer(PASSWORD.encode()), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        store.add("ETH", False, {"mnemonic": MNEMONIC, "xpub": "xpub6"})
        store.add("SOL", True, {"privateKey": "5" * 88, "address": "So1"})
        store.journal.put("p1", "ETH", "0xf86b", "ab" * 32, meta={"nonce": 3})
        store.journal.refuse("p2", "ETH", "403")
        store.journal.hold("p3", "audit log", chain="ETH")
        store.journal.release("p3")
        exported = store.export()
    with VelocityLedger(path) as ledger:  # the policy's 24-hour ledger moves with the store
        ledger.record("p1", "wallet-1", "ETH", {"native": 2**70, "0xdac17f958d2ee523a2206206994597c13d831ec7": 5}, 1.5)
    return exported


def velocity(location: str | Path) -> tuple[dict[str, int], int]:
    with VelocityLedger(open_backend(location)) as ledger:
        return ledger.totals("wallet-1", "ETH", 0)


def open_any(location: str | Path) -> WalletStore:
    backend = open_backend(location)
    return WalletStore.open(backend, SecretBuffer(PASSWORD.encode()), allow_weak_kdf=True)


def test_file_to_postgresql_and_back_keeps_every_record(tmp_path: Path, postgres_server: PostgresServer) -> None:
    source = tmp_path / "wallet.db"
    exported = make_file_store(source)
    before = snapshot(tmp_path)
    url = postgres_server.url(postgres_server.create_database())
    env = kms_env(tmp_path, TATUM_KMS_STORE_PASSWORD=postgres_server.password)
    bare = url.replace(f":{postgres_server.password}@", "@")
    done = run_kms(["store", "copy", "--from", str(source), "--to", bare], tmp_path, env=env)
    assert done.code == 0, done.stderr
    assert done.json()["copied"] == 2 and done.json()["journalEntries"] == 2
    assert postgres_server.password not in done.stdout + done.stderr
    assert snapshot(tmp_path) == before  # the source is only read
    with open_any(url) as pg, open_any(source) as original:
        assert pg.export() == exported
        assert pg.journal.entries() == original.journal.entries()
        assert pg.journal.was_released("p3", "")
        assert pg.counts() == original.counts()
    assert velocity(url) == velocity(source) == ({"native": 2**70, "0xdac17f958d2ee523a2206206994597c13d831ec7": 5}, 1)
    back = tmp_path / "back" / "wallet.db"
    back.parent.mkdir(mode=0o700)
    done = run_kms(["store", "copy", "--from", bare, "--to", f"sqlite://{back}"], tmp_path, env=env)
    assert done.code == 0, done.stderr
    with open_any(back) as copy, open_any(source) as original:
        assert copy.export() == exported
        assert copy.journal.entries() == original.journal.entries()
    assert velocity(back) == velocity(source)


def test_a_failed_copy_leaves_nothing_and_says_why_in_one_line(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database())
    source = tmp_path / "wallet.db"
    make_file_store(source)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE header (id int)")  # something already there
    done = run_kms(["store", "copy", "--from", str(source), "--to", url], tmp_path)
    assert done.code != 0 and "not empty" in done.error() and len(done.stderr.strip().splitlines()) == 1
    # A tampered source record stops the copy before anything is written.
    pg_source = postgres_server.url(postgres_server.create_database())
    with open_any(source) as original:
        copy_store(original, open_backend(pg_source))
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("UPDATE wallets SET chain = 'BTC' WHERE chain = 'ETH'")
    target = tmp_path / "copy.db"
    with open_any(pg_source) as tampered, pytest.raises(TamperedRecordError):
        copy_store(tampered, open_backend(target))
    assert not target.exists() and not list(tmp_path.glob(".copy.db.*"))
    fresh = postgres_server.url(postgres_server.create_database())
    with open_any(pg_source) as tampered, pytest.raises(TamperedRecordError):
        copy_store(tampered, open_backend(fresh))
    assert open_backend(fresh).probe() == "missing"
    with open_any(source) as original, pytest.raises(StoreError, match="not empty"):
        copy_store(original, open_backend(source))


def test_wallet_commands_work_on_a_database_store(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database(), password=False)
    env = kms_env(tmp_path, TATUM_KMS_STORE_PASSWORD=postgres_server.password, TATUM_KMS_STORE_URL=url)
    created = run_kms(["generatemanagedwallet", "ETH"], tmp_path, env=env)
    assert created.code == 0, created.stderr
    assert "creating a new wallet store at postgresql://kms@127.0.0.1" in created.stderr
    sid = created.json()["signatureId"]
    record = run_kms(["getmanagedwallet", sid], tmp_path, env=env)
    assert record.code == 0 and record.json()["chain"] == "ETH"
    assert not (tmp_path / ".tatumrc" / "wallet.dat").exists()  # nothing went to the default file
    file = run_kms(["getmanagedwallet", sid, "--path", str(tmp_path / "w.db")], tmp_path, env=env)
    assert file.code != 0 and "no wallet store at" in file.error()  # the flag wins over TATUM_KMS_STORE_URL
    both = run_kms(["getmanagedwallet", sid, "--path", str(tmp_path / "w.db"), "--store", url], tmp_path, env=env)
    assert both.code != 0 and "not both" in both.error()
