"""The gate the daemon calls around signing: policy before anything, v2 over the final digest, velocity counted once
signed; from settings like the daemon builds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kms.api import PendingTransaction
from kms.approval.approver import Approver, ApproverConfig
from kms.approval.gate import ApprovalGate
from kms.approval.intent import payload_digest
from kms.approval.keys import generate_signing_key, private_pem
from kms.daemon.four_eye import Verdict
from kms.errors import UsageError

ALICE = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


def pending(pending_id: str, value: int, **extra: object) -> PendingTransaction:
    tx = {"to": ALICE, "value": str(value), "gasPrice": "1", "gas": "21000", "nonce": 1, "chainId": 11155111, **extra}
    return PendingTransaction(id=pending_id, chain="ETH", serialized_transaction=json.dumps(tx), hashes=("w",))


def test_policy_then_v2_then_velocity(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("version = 1\n[chains.ETH]\ndaily_count = 1\n[chains.ETH.assets.native]\nmax_per_tx = 100\n")
    daemon_key = generate_signing_key("EdDSA")
    with Approver(ApproverConfig(daemon_key=daemon_key.public)) as approver:
        settings = {
            "TATUM_KMS_APPROVAL_KEY": private_pem(daemon_key).decode(),
            "TATUM_KMS_APPROVAL_URL": approver.url,
            "TATUM_KMS_APPROVER_PUBLIC_KEY": approver.public_key.pem(),
        }
        gate = ApprovalGate.from_options(
            settings, testnet=True, approval="v2", policy_path=policy, store=tmp_path / "wallet.dat"
        )
        try:
            assert gate.policy_sha256 is not None and len(gate.policy_sha256) == 64
            _, refused = gate.before_signing(pending("big", 101))
            assert refused is not None and refused.verdict is Verdict.REFUSED
            assert approver.config.answers == [], "a refused intent is never sent to the approver"

            intent, held = gate.before_signing(pending("ok", 100))
            assert held is None
            assert gate.approve(pending("ok", 100), intent, payload_digest(b"signed")).approved
            gate.signed(pending("ok", 100), intent)

            _, held = gate.before_signing(pending("next", 1))
            assert held is not None and held.verdict is Verdict.UNAVAILABLE and "daily_count" in held.reason
        finally:
            gate.close()


def test_without_policy_or_v2_the_gate_lets_four_eye_decide() -> None:
    gate = ApprovalGate.from_options({}, testnet=True)
    intent, held = gate.before_signing(pending("p", 5))
    assert held is None and intent.destinations[0].amount == 5
    assert gate.approve(pending("p", 5), intent, payload_digest(b"x")).approved
    with pytest.raises(UsageError):
        gate.reload_policy()
    with pytest.raises(UsageError, match="v1 or v2"):
        ApprovalGate.from_options({}, testnet=True, approval="v3")
