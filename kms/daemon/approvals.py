"""The daemon's side of issue 19: the local policy and approval protocol v2 (kms.approval.gate) inside a cycle.

Order for a pending id the journal does not know yet:
1. ``screen``: decode the intent; the local policy decides before any approval request and any signature. A refusal
   is named in the batch report and the audit log, and nothing is signed (it is evaluated again each cycle, so a
   reloaded policy takes effect; the report is sent once per reason).
2. upstream's four-eye check (v1) when configured, then signing: all look-ups are done and the bytes are fixed and
   journaled before anything is asked.
3. ``approve``: counts the new signature against the wallet's 24-hour limits, then, with v2, asks the approver about
   the SHA-256 of exactly the journaled payload. Only an approval lets it be broadcast. A signed deny holds the entry
   (``held``, payload kept, never sent until ``kms journal release``); anything else (timeout, bad answer) leaves it
   ``signed`` and unsent, and the next cycle asks again about the same journaled bytes: a later approval can only
   ever approve the payload already in the journal, never a new signature.
A journaled id (re-send after a crash or a failed broadcast) skips the policy (it passed when signed, and counting it
again would double its velocity) but, with v2, is approved again for its journaled payload before each send.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from kms.api import PendingTransaction
from kms.approval.gate import ApprovalGate
from kms.approval.intent import Intent
from kms.daemon.four_eye import Decision, Verdict
from kms.daemon.journal import JournalStore, State
from kms.daemon.model import CycleReport, Outcome
from kms.errors import KmsError

log = logging.getLogger("kms.daemon")

AuditWrite = Callable[[Mapping[str, object]], object]
Screened = tuple[Intent | None, Outcome | None]


class Approvals:
    """Thread-safe. ``gate`` None: neither a policy nor v2 (upstream's mode); every call is then a no-op."""

    def __init__(self, gate: ApprovalGate | None, store: JournalStore, policy_metric: Any = None) -> None:
        self.gate = gate
        self.store = store
        self.policy_metric = policy_metric
        self._reload_requested = threading.Event()
        self._announced = False

    @property
    def v2(self) -> bool:
        return self.gate is not None and self.gate.v2 is not None

    # -- the policy file's hash: at start and on reload (SIGHUP), audited ---------------------------------------------

    def request_reload(self) -> None:
        """From a signal handler: the reload itself happens before the next cycle."""
        self._reload_requested.set()

    def before_cycle(self, audit: AuditWrite) -> None:
        policy_hash = self.gate.policy_sha256 if self.gate is not None else None
        if policy_hash is None:
            self._reload_requested.clear()
            return
        if not self._announced:
            self._announced = True
            self._policy_in_force("start", policy_hash, None, audit)
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self._reload(audit)

    def _reload(self, audit: AuditWrite) -> None:
        assert self.gate is not None
        try:
            old, new = self.gate.reload_policy()
        except KmsError as exc:
            log.error("policy reload refused, the old policy stays in force: %s", exc)
            audit({"record": "policy", "event": "reload-refused", "sha256": self.gate.policy_sha256, "error": str(exc)})
            return
        self._policy_in_force("reload", new, old, audit)

    def _policy_in_force(self, event: str, sha256: str, previous: str | None, audit: AuditWrite) -> None:
        record: dict[str, object] = {"record": "policy", "event": event, "sha256": sha256}
        if previous is not None:
            record["previousSha256"] = previous
        audit(record)
        if self.policy_metric is not None:
            self.policy_metric.set(sha256)
        log.info("local policy in force (%s): sha256 %s", event, sha256)

    # -- per transaction ----------------------------------------------------------------------------------------------

    def screen(
        self, pending: PendingTransaction, state: State, report: CycleReport, record: MutableMapping[str, object]
    ) -> Screened:
        """(the intent, None to go on) or (None, the outcome when the policy stops it here)."""
        if self.gate is None:
            return None, None
        intent, refusal = self.gate.before_signing(pending)
        if state is not State.NEW or refusal is None:
            return intent, None
        record["policy"] = {"verdict": refusal.verdict.value, "reason": refusal.reason}
        record["error"] = f"Transaction refused by the local policy ({refusal.reason})"
        report.error(pending.id, str(record["error"]))
        log.warning("%s: %s; not signed", pending.id, record["error"])
        return None, Outcome.REFUSED if refusal.verdict is Verdict.REFUSED else Outcome.UNAVAILABLE

    def approve(
        self,
        pending: PendingTransaction,
        intent: Intent | None,
        payload_sha256: str,
        newly_signed: bool,
        report: CycleReport,
        record: MutableMapping[str, object],
    ) -> Outcome | None:
        """After signing and journaling: None lets the payload go out; otherwise the outcome (nothing is sent)."""
        if self.gate is None or intent is None:
            return None
        if newly_signed:
            self.gate.signed(pending, intent)
        if self.gate.v2 is None:
            return None
        decision = self.gate.approve(pending, intent, payload_sha256)
        record["approval"] = {"protocol": "v2", "verdict": decision.verdict.value, "reason": decision.reason}
        if decision.approved:
            return None
        return self._not_approved(pending, decision, report, record)

    def _not_approved(
        self, pending: PendingTransaction, decision: Decision, report: CycleReport, record: MutableMapping[str, object]
    ) -> Outcome:
        message = f"Transaction not approved by the approval v2 server ({decision.reason}); not broadcast"
        record["error"] = message
        report.error(pending.id, message)
        log.warning("%s: %s", pending.id, message)
        if decision.verdict is Verdict.REFUSED:
            # The signed payload stays in the journal, held: never sent, never signed anew, until released.
            self.store.journal.hold(pending.id, f"approval v2 refused: {decision.reason}")
            return Outcome.REFUSED
        return Outcome.UNAVAILABLE

    def close(self) -> None:
        if self.gate is not None:
            self.gate.close()
