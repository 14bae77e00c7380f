"""The local policy: each rule refuses by name, 24-hour limits survive a restart (the ledger is reopened), the file's
hash is taken at load and a reload reports old and new; `kms_policy_info`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kms.api import PendingTransaction
from kms.approval.decoders import decode_intent
from kms.approval.intent import NATIVE_TRANSFER, TOKEN_TRANSFER, UTXO_TRANSFER, Destination, Intent, unknown_intent
from kms.approval.policy import LocalPolicy, Policy, canonical_address, wallet_of
from kms.approval.velocity import VelocityLedger
from kms.daemon.four_eye import Verdict
from kms.errors import UsageError
from kms.metrics import PolicyInfo
from tests.conftest import load_vectors

ALICE = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
MALLORY = "0x" + "66" * 20
TOKEN = "0xdac17f958d2ee523a2206206994597c13d831ec7"
NOW = 1_800_000_000.0

POLICY = f"""
version = 1
allow_unknown = false

[chains.ETH]
allow_destinations = ["{ALICE.upper().replace("0X", "0x")}", "{MALLORY}"]
deny_destinations = ["{MALLORY}"]
allowed_types = ["native_transfer", "token_transfer"]
daily_count = 3

[chains.ETH.assets.native]
max_per_tx = "1000"
daily_amount = 2500

[chains.ETH.assets."{TOKEN.upper().replace("0X", "0x")}"]
max_per_tx = "100000000000000000000000000000"

[chains.BTC]
allow_unknown = true
unlisted_assets = "deny"
"""


def write_policy(tmp_path: Path, text: str = POLICY, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def pending(pending_id: str = "p1", wallet: str = "wallet-a") -> PendingTransaction:
    return PendingTransaction(id=pending_id, chain="ETH", serialized_transaction="{}", hashes=(wallet,))


def pay(to: str = ALICE, amount: int = 500, asset: str = "native", kind: str = NATIVE_TRANSFER) -> Intent:
    return Intent("ETH", "testnet", kind, destinations=(Destination(to, amount, asset),))


@pytest.fixture
def ledger(tmp_path: Path) -> VelocityLedger:
    with VelocityLedger(tmp_path / "wallet.dat") as opened:
        yield opened


@pytest.fixture
def local(tmp_path: Path, ledger: VelocityLedger) -> LocalPolicy:
    return LocalPolicy(write_policy(tmp_path), ledger)


def test_a_payment_within_every_rule_is_allowed(local: LocalPolicy) -> None:
    decision = local.check(pending(), pay(), NOW)
    assert decision.verdict is Verdict.APPROVED and decision.reason == "policy: every rule passed"


@pytest.mark.parametrize(
    ("intent", "rule"),
    [
        (pay(amount=1001), "chains.ETH.assets.native.max_per_tx"),
        (pay(to="0x" + "77" * 20), "chains.ETH.allow_destinations"),
        (pay(to=MALLORY), "chains.ETH.deny_destinations"),
        (pay(to=MALLORY.upper().replace("0X", "0x")), "chains.ETH.deny_destinations"),
        (pay(kind="token_transfer_from", asset=TOKEN), "chains.ETH.allowed_types"),
        (pay(amount=10**29 + 1, asset=TOKEN, kind=TOKEN_TRANSFER), f"chains.ETH.assets.{TOKEN}.max_per_tx"),
        (unknown_intent("ETH", True, "contract creation"), "allow_unknown"),
        (Intent("SOL", "mainnet", NATIVE_TRANSFER), "unlisted_chains"),
        (Intent("BTC", "mainnet", UTXO_TRANSFER, destinations=(Destination("bc1q", 1),)), "chains.BTC.unlisted_assets"),
    ],
)
def test_each_rule_refuses_by_name(local: LocalPolicy, intent: Intent, rule: str) -> None:
    verdict = local.evaluate(pending(), intent, NOW)
    assert not verdict.allowed and verdict.rule == rule and not verdict.hold
    decision = verdict.decision()
    assert decision.verdict is Verdict.REFUSED and decision.reason.startswith(f"policy {rule}: ")


def test_token_limits_are_per_asset(local: LocalPolicy) -> None:
    assert local.evaluate(pending(), pay(amount=10**29, asset=TOKEN, kind=TOKEN_TRANSFER), NOW).allowed


def test_unknown_intents_follow_allow_unknown(local: LocalPolicy) -> None:
    assert local.evaluate(pending(), unknown_intent("BTC", False, "odd script"), NOW).allowed  # chain override
    assert local.allows_unknown("BTC") and not local.allows_unknown("ETH")


def test_change_outputs_are_neither_payments_nor_counted(tmp_path: Path) -> None:
    vector = load_vectors("signing-btc.json")[0]
    raw = vector["input"]["pending"]
    intent = decode_intent(
        PendingTransaction(id=raw["id"], chain="BTC", serialized_transaction=raw["serializedTransaction"]), False
    )
    text = """version = 1
[chains.BTC]
allow_destinations = ["BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"]
[chains.BTC.assets.native]
max_per_tx = 25000
"""
    policy = Policy.load(write_policy(tmp_path, text))
    assert policy.evaluate(intent, "w").allowed
    tighter = Policy.load(write_policy(tmp_path, text.replace("25000", "24999"), "tight.toml"))
    assert tighter.evaluate(intent, "w").rule == "chains.BTC.assets.native.max_per_tx"


def test_velocity_amount_survives_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "wallet.dat"
    path = write_policy(tmp_path)
    with VelocityLedger(store) as ledger:
        first = LocalPolicy(path, ledger)
        for n in range(2):
            assert first.check(pending(f"p{n}"), pay(amount=1000), NOW + n).approved
            first.record(pending(f"p{n}"), pay(amount=1000), NOW + n)
        first.record(pending("p1"), pay(amount=1000), NOW + 5)  # the same pending id counts once
    with VelocityLedger(store) as reopened:  # a restarted daemon
        again = LocalPolicy(path, reopened)
        held = again.evaluate(pending("p2"), pay(amount=501), NOW + 10)
        assert held.rule == "chains.ETH.assets.native.daily_amount" and held.hold
        assert held.decision().verdict is Verdict.UNAVAILABLE
        assert again.evaluate(pending("p2"), pay(amount=500), NOW + 10).allowed
        assert again.evaluate(pending("p2", wallet="wallet-b"), pay(amount=1000), NOW + 10).allowed
        assert again.evaluate(pending("p2"), pay(amount=1000), NOW + 24 * 3600 + 1).allowed, "the window rolls"


def test_velocity_count_per_wallet(local: LocalPolicy) -> None:
    for n in range(3):
        local.record(pending(f"c{n}"), pay(amount=1), NOW)
    verdict = local.evaluate(pending("c3"), pay(amount=1), NOW + 1)
    assert verdict.rule == "chains.ETH.daily_count" and verdict.hold


def test_ledger_uses_its_own_table_in_the_stores_database(tmp_path: Path) -> None:
    store = tmp_path / "wallet.dat"
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("CREATE TABLE journal (pending_id TEXT PRIMARY KEY)")
    ledger = VelocityLedger(conn)
    ledger.record("p", "w", "ETH", {"native": 2**200, TOKEN: 1}, NOW)
    assert ledger.totals("w", "ETH", NOW - 1) == ({"native": 2**200, TOKEN: 1}, 1)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"journal", "policy_velocity"}
    assert ledger.prune(NOW + 1) == 2 and ledger.totals("w", "ETH", 0) == ({}, 0)
    conn.close()


def test_a_readonly_ledger_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "wallet.dat"
    sqlite3.connect(store).close()
    with VelocityLedger(store, readonly=True) as ledger:
        assert ledger.totals("w", "ETH", 0) == ({}, 0)
    tables = sqlite3.connect(store).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []


def test_hash_normalised_form_and_reload(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    local = LocalPolicy(path)
    import hashlib

    assert local.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    normal = local.policy.as_json()
    assert normal["chains"]["ETH"]["allow_destinations"] == [ALICE, MALLORY]
    assert TOKEN in normal["chains"]["ETH"]["assets"]
    assert normal["chains"]["ETH"]["assets"]["native"] == {"max_per_tx": "1000", "daily_amount": "2500"}
    json.dumps(normal)
    old = local.sha256
    path.write_text(POLICY.replace('max_per_tx = "1000"', 'max_per_tx = "2000"'))
    assert local.evaluate(pending(), pay(amount=1500), NOW).rule == "chains.ETH.assets.native.max_per_tx", (
        "a changed file is not read without a reload"
    )
    previous, new = local.reload()
    assert previous == old and new == local.sha256 != old
    assert local.evaluate(pending(), pay(amount=1500), NOW).allowed
    path.write_text("version = 2")
    with pytest.raises(UsageError, match="version = 1"):
        local.reload()
    assert local.sha256 == new, "a bad file leaves the policy in force"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 1\nallow_unknwon = true", "unknown key 'allow_unknwon'"),
        ("[chains.ETH]", "'version = 1' is required"),
        ("version = 1\n[chains.ETH]\nallowed_types = ['swap']", "unknown type 'swap'"),
        ("version = 1\n[chains.ETH.assets.native]\nmax_per_tx = -1", "whole number"),
        ("version = 1\n[chains.ETH.assets.native]\nmax_per_tx = 1.5", "whole number"),
        ("version = 1\n[chains.ETH]\nallow_destinations = 'x'", "list of addresses"),
        ("version = 1\nunlisted_chains = 'maybe'", "deny, allow"),
        ("version = 1\n[chains.eth]\n[chains.ETH]", "repeated chain code"),
        ("version = = 1", "not valid TOML"),
    ],
)
def test_invalid_policies_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        Policy.load(write_policy(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_addresses_are_compared_in_one_spelling() -> None:
    assert canonical_address("xdc" + "AB" * 20) == "0x" + "ab" * 20
    assert (
        canonical_address("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4") == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    )
    assert canonical_address("LToFPAxRhoaXNBWpNxwbevK657oLbqNmVY") == "LToFPAxRhoaXNBWpNxwbevK657oLbqNmVY"
    assert wallet_of(pending(wallet="b")) == "b"


def test_cashaddr_may_be_listed_without_its_prefix(tmp_path: Path) -> None:
    vector = load_vectors("signing-bch.json")[0]
    raw = vector["input"]["pending"]
    intent = decode_intent(
        PendingTransaction(id=raw["id"], chain="BCH", serialized_transaction=raw["serializedTransaction"]), False
    )
    listed = [d.address.split(":")[1] for d in intent.destinations]
    policy = Policy.load(
        write_policy(tmp_path, f"version = 1\n[chains.BCH]\nallow_destinations = {json.dumps(listed)}")
    )
    assert policy.evaluate(intent, "w").allowed
    one = Policy.load(
        write_policy(tmp_path, f"version = 1\n[chains.BCH]\nallow_destinations = {json.dumps(listed[:1])}", "one.toml")
    )
    assert one.evaluate(intent, "w").rule == "chains.BCH.allow_destinations"


def test_policy_info_metric_shows_the_hash_in_force() -> None:
    registry = CollectorRegistry()
    info = PolicyInfo(registry)
    info.set("a" * 64)
    info.set("b" * 64)
    text = generate_latest(registry).decode()
    assert f'kms_policy_info{{sha256="{"b" * 64}"}} 1.0' in text
    assert "a" * 64 not in text
    with pytest.raises(ValueError):
        info.set("not-a-hash")
