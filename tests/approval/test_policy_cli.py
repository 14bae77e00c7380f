"""`kms policy check` and `kms policy explain` as real subprocesses: normalised JSON out, one JSON line on error,
and explain reads the 24-hour figures from the store file without changing it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kms.approval.velocity import VelocityLedger
from tests.cli_helpers import run_kms
from tests.conftest import load_vectors

ALICE = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
POLICY = f"""version = 1
[chains.ETH]
allow_destinations = ["{ALICE}"]
[chains.ETH.assets.native]
max_per_tx = "1000"
daily_amount = "1500"
"""


def pending_file(tmp_path: Path) -> Path:
    raw = dict(load_vectors("daemon-eth.json")[0]["input"]["pending"])
    raw["hashes"] = ["wallet-1"]
    path = tmp_path / "pending.json"
    path.write_text(json.dumps(raw))
    return path


def test_policy_check_prints_the_normalised_policy_and_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY.replace(ALICE, ALICE.upper().replace("0X", "0x")))
    result = run_kms(["policy", "check", str(path)], tmp_path)
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert document["chains"]["ETH"]["allow_destinations"] == [ALICE]
    assert document["unlisted_chains"] == "deny"


def test_policy_check_refuses_a_bad_file_with_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("version = 1\n[chains.ETH]\nmax_per_tx = 5\n")
    result = run_kms(["policy", "check", str(path)], tmp_path)
    assert result.code == 2 and result.stdout == ""
    assert result.error() == "policy: chains.ETH has an unknown key 'max_per_tx'"
    assert len(result.stderr.strip().splitlines()) == 1
    missing = run_kms(["policy", "check", str(tmp_path / "absent.toml")], tmp_path)
    assert missing.code == 2 and "cannot read policy" in missing.error()


def test_policy_explain_shows_decision_rule_and_intent_without_signing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    store = tmp_path / "wallet.dat"
    result = run_kms(["policy", "explain", str(pending_file(tmp_path)), "--policy", str(policy), "--testnet",
                      "--path", str(store)], tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["decision"] == {"allowed": True, "rule": None, "reason": "every rule passed", "hold": False}
    assert document["velocityChecked"] is False and not store.exists(), "explain creates nothing"
    assert document["intent"]["destinations"][0] == {
        "address": ALICE, "amount": "1000", "asset": "native", "change": False
    }  # fmt: skip
    assert document["policySha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()

    with VelocityLedger(store) as ledger:
        ledger.record("earlier", "wallet-1", "ETH", {"native": 600})
    before = store.read_bytes()
    held = run_kms(["policy", "explain", str(pending_file(tmp_path)), "--policy", str(policy), "--testnet",
                    "--path", str(store)], tmp_path).json()  # fmt: skip
    assert held["velocityChecked"] is True
    assert held["decision"]["rule"] == "chains.ETH.assets.native.daily_amount" and held["decision"]["hold"]
    assert store.read_bytes() == before

    policy.write_text(POLICY.replace(ALICE, "0x" + "11" * 20))
    refused = run_kms(["policy", "explain", str(pending_file(tmp_path)), "--policy", str(policy)], tmp_path).json()
    assert refused["decision"]["rule"] == "chains.ETH.allow_destinations" and not refused["decision"]["allowed"]


def test_policy_explain_errors(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    no_policy = run_kms(["policy", "explain", str(pending_file(tmp_path))], tmp_path)
    assert no_policy.code == 2 and no_policy.error() == "policy explain needs --policy FILE"
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x"}')
    result = run_kms(["policy", "explain", str(bad), "--policy", str(policy)], tmp_path)
    assert result.code == 2 and "is not a pending transaction" in result.error()
    bad.write_text("{not json")
    assert (
        run_kms(["policy", "explain", str(bad), "--policy", str(policy)], tmp_path)
        .error()
        .endswith("is not valid JSON")
    )
