"""The daemon's integration surface for issue 19: three calls around signing, in this order.

    gate = ApprovalGate.from_options(settings, testnet=..., policy_path=..., store=..., approval="v2", ...)
    intent, held = gate.before_signing(pending)      # decode + local policy; `held` is a Decision when it stops here
    ...  all look-ups, then the exact bytes to sign (or the signed transaction, not yet broadcast) ...
    decision = gate.approve(pending, intent, payload_digest(the_bytes))   # approval v2; APPROVED when v2 is off
    ...  sign / broadcast only if decision.approved ...
    gate.signed(pending, intent)                     # count it against the wallet's 24-hour limits (once per id)

With neither a policy nor v2 configured the gate approves everything and upstream's four-eye check (``FourEye``)
decides alone, as before; with v2 configured, the loop uses ``approve`` instead of ``FourEye.check``.
``policy_sha256`` goes into the audit log at start and after ``reload_policy`` (which returns old and new hash).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kms.api import PendingTransaction
from kms.approval.decoders import decode_intent
from kms.approval.intent import Intent
from kms.approval.policy import LocalPolicy
from kms.approval.v2 import ApprovalV2
from kms.approval.velocity import VelocityLedger
from kms.daemon.four_eye import Decision, Verdict
from kms.errors import UsageError
from kms.store.backend import StoreBackend


class ApprovalGate:
    def __init__(self, *, testnet: bool, policy: LocalPolicy | None = None, v2: ApprovalV2 | None = None) -> None:
        self.testnet = testnet
        self.policy = policy
        self.v2 = v2

    @classmethod
    def from_options(
        cls,
        settings: Mapping[str, str],
        *,
        testnet: bool,
        approval: str = "v1",
        policy_path: str | Path | None = None,
        store: StoreBackend | str | Path | None = None,
        approval_url: str | None = None,
        approver_key: str | None = None,
    ) -> ApprovalGate:
        """``approval`` is ``v1`` (upstream's four-eye, the default) or ``v2``; the velocity ledger lives in the
        store's own database (``store``: its file, or its backend, a file or PostgreSQL) when a policy is given."""
        if approval not in ("v1", "v2"):
            raise UsageError("--approval is v1 or v2")
        policy = None
        if policy_path:
            ledger = VelocityLedger(store) if store else None
            policy = LocalPolicy(policy_path, ledger)
        v2 = ApprovalV2.from_settings(settings, approval_url, approver_key) if approval == "v2" else None
        return cls(testnet=testnet, policy=policy, v2=v2)

    @property
    def policy_sha256(self) -> str | None:
        return self.policy.sha256 if self.policy is not None else None

    def before_signing(self, pending: PendingTransaction) -> tuple[Intent, Decision | None]:
        """The intent, and a Decision when the policy refuses or holds the transaction (then: do not sign)."""
        intent = decode_intent(pending, self.testnet)
        if self.policy is None:
            return intent, None
        decision = self.policy.check(pending, intent)
        return intent, None if decision.approved else decision

    def approve(self, pending: PendingTransaction, intent: Intent, payload_sha256: str) -> Decision:
        if self.v2 is None:
            return Decision(Verdict.APPROVED, "approval v2 not configured")
        unknown_allowed = self.policy.allows_unknown(intent.chain) if self.policy is not None else None
        return self.v2.check(pending, intent, payload_sha256, unknown_allowed=unknown_allowed)

    def signed(self, pending: PendingTransaction, intent: Intent) -> None:
        if self.policy is not None:
            self.policy.record(pending, intent)

    def reload_policy(self) -> tuple[str, str]:
        if self.policy is None:
            raise UsageError("no policy file is configured")
        return self.policy.reload()

    def close(self) -> None:
        if self.v2 is not None:
            self.v2.close()
        if self.policy is not None and self.policy.ledger is not None:
            self.policy.ledger.close()


__all__ = ["ApprovalGate"]
