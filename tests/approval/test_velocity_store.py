"""The velocity ledger in the store's own database: its table comes with the store (SQLite file and PostgreSQL
alike), 24-hour limits survive a restart on PostgreSQL, and two replicas of a shared store add up to one ledger."""

from __future__ import annotations

from pathlib import Path

import psycopg

from kms.approval.policy import LocalPolicy
from kms.approval.velocity import VelocityLedger
from kms.store.backend import open_backend
from kms.store.sqlite import SqliteBackend
from tests.approval.test_policy import NOW, TOKEN, pay, pending, write_policy
from tests.store.test_store_journal import open_store
from tests.store.test_store_postgres import open_pg

BIG = 2**200  # over any 64-bit integer column: amounts are decimal text


def test_the_table_comes_with_a_sqlite_store_and_the_backend_ledger_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "wallet.dat"
    open_store(path, create=True).close()
    with VelocityLedger(SqliteBackend(path), readonly=True) as untouched:
        assert untouched.totals("w", "ETH", 0) == ({}, 0), "the store created the table; nothing else did"
    with VelocityLedger(SqliteBackend(path)) as ledger:
        ledger.record("p", "w", "ETH", {"native": BIG, TOKEN: 1}, NOW)
    with VelocityLedger(SqliteBackend(path)) as reopened:
        assert reopened.totals("w", "ETH", NOW - 1) == ({"native": BIG, TOKEN: 1}, 1)


def test_velocity_survives_a_restart_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    open_pg(postgres_url, create=True).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        assert raw.execute("SELECT to_regclass('policy_velocity')").fetchone()[0] is not None, "made by the schema"
    path = write_policy(tmp_path)
    with VelocityLedger(open_backend(postgres_url)) as ledger:
        first = LocalPolicy(path, ledger)
        for n in range(2):
            assert first.check(pending(f"p{n}"), pay(amount=1000), NOW + n).approved
            first.record(pending(f"p{n}"), pay(amount=1000), NOW + n)
        first.record(pending("p1"), pay(amount=1000), NOW + 5)  # the same pending id counts once
        ledger.record("big", "other", "ETH", {"native": BIG}, NOW)
    with VelocityLedger(open_backend(postgres_url)) as reopened:  # a restarted daemon
        again = LocalPolicy(path, reopened)
        held = again.evaluate(pending("p2"), pay(amount=501), NOW + 10)
        assert held.rule == "chains.ETH.assets.native.daily_amount" and held.hold
        assert again.evaluate(pending("p2"), pay(amount=500), NOW + 10).allowed
        assert again.evaluate(pending("p2"), pay(amount=1000), NOW + 24 * 3600 + 1).allowed, "the window rolls"
        assert reopened.totals("other", "ETH", NOW) == ({"native": BIG}, 1)
        assert reopened.prune(NOW + 3) == 3 and reopened.totals("wallet-a", "ETH", 0) == ({}, 0)


def test_two_replicas_ledgers_add_up(postgres_url: str, tmp_path: Path) -> None:
    open_pg(postgres_url, create=True).close()
    path = write_policy(tmp_path)
    with (
        VelocityLedger(open_backend(postgres_url).as_replica()) as one,
        VelocityLedger(open_backend(postgres_url).as_replica()) as two,
    ):
        replica_one, replica_two = LocalPolicy(path, one), LocalPolicy(path, two)
        replica_one.record(pending("r1"), pay(amount=1000), NOW)
        replica_two.record(pending("r2"), pay(amount=1000), NOW + 1)
        replica_two.record(pending("r1"), pay(amount=1000), NOW + 2)  # one id, whichever replica: counted once
        assert one.totals("wallet-a", "ETH", 0) == two.totals("wallet-a", "ETH", 0) == ({"native": 2000}, 2)
        for replica in (replica_one, replica_two):
            held = replica.evaluate(pending("r3"), pay(amount=501), NOW + 3)
            assert held.rule == "chains.ETH.assets.native.daily_amount" and held.hold
            assert replica.evaluate(pending("r3"), pay(amount=500), NOW + 3).allowed
        replica_one.record(pending("r3"), pay(amount=1), NOW + 4)
        counted = replica_two.evaluate(pending("r4"), pay(amount=1), NOW + 5)
        assert counted.rule == "chains.ETH.daily_count" and counted.hold, "the third payment, from the other replica"
