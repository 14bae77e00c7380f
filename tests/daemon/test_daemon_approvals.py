"""Issue 19 in the daemon: the local policy before any approval and signature, approval v2 of exactly the journaled
payload before any broadcast, velocity across a restart, the policy hash audited at start and on reload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kms.approval.approver import Approver, ApproverConfig, Rule
from kms.approval.gate import ApprovalGate
from kms.approval.keys import SigningKey, generate_signing_key
from kms.approval.policy import LocalPolicy
from kms.approval.v2 import ApprovalV2
from kms.approval.velocity import VelocityLedger
from kms.audit import AuditLog
from kms.chains import get_chain
from kms.daemon.approvals import Approvals
from kms.daemon.loop import DaemonConfig
from kms.metrics import PolicyInfo
from kms.sandbox import SandboxAdmin
from kms.store import WalletStore
from kms.tatum import TatumClient
from tests.daemon.test_daemon_loop import RECIPIENT, client, errors, make_daemon, pending, sent

__all__ = ["client"]  # a fixture of test_daemon_loop; store, sandbox and admin come from conftest

RUN_ONCE = DaemonConfig(chains=("ETH",), testnet=True, concurrency=4, run_once=True)


@pytest.fixture
def daemon_key() -> SigningKey:
    return generate_signing_key("EdDSA")


@pytest.fixture
def approver(daemon_key: SigningKey) -> Iterator[Approver]:
    with Approver(ApproverConfig(key=generate_signing_key("EdDSA"), daemon_key=daemon_key.public)) as server:
        yield server


def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f"version = 1\n\n[chains.ETH]\n{body}\n")
    return path


def _run(
    store: WalletStore,
    client: TatumClient,
    audit_path: Path,
    *,
    approver: Approver | None = None,
    daemon_key: SigningKey | None = None,
    policy: Path | None = None,
) -> list[dict[str, Any]]:
    """One daemon run (start-up work, one cycle) with a fresh gate, as a restart would; the audit records it wrote."""
    v2 = ApprovalV2(approver.url, daemon_key, approver.public_key, timeout=5) if approver and daemon_key else None
    local = LocalPolicy(policy, VelocityLedger(store.path)) if policy else None
    gate = ApprovalGate(testnet=True, policy=local, v2=v2)
    with AuditLog(audit_path) as audit:
        daemon = make_daemon(store, client, config=RUN_ONCE, audit=audit.append, approvals=Approvals(gate, store))
        try:
            daemon.run_forever()
        finally:
            daemon.close()
            gate.close()
    return [json.loads(line) for line in audit_path.read_text().splitlines()]


def _wallet(store: WalletStore) -> str:
    return store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})


def _decision(records: list[dict[str, Any]], pending_id: str) -> dict[str, Any]:
    return [r for r in records if r.get("record") == "decision" and r["pendingId"] == pending_id][-1]


def test_v2_approves_the_digest_of_the_broadcast_payload(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin, approver: Approver, daemon_key: Any
) -> None:
    admin.enqueue(pending("p1", hashes=[_wallet(store)]))
    records = _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key)
    payload = sent(admin)["p1"]
    digest = hashlib.sha256(payload.encode()).hexdigest()
    assert [r["payloadSha256"] for r in _answers(approver)] == [digest]
    assert _decision(records, "p1")["approval"]["verdict"] == "approved"


def _answers(approver: Approver) -> list[dict[str, Any]]:
    import jwt

    return [jwt.decode(token, options={"verify_signature": False}) for token in approver.config.answers]


def test_a_denied_payload_is_held_never_sent_and_named_in_report_and_audit(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin, approver: Approver, daemon_key: Any
) -> None:
    approver.config.rules = [Rule.from_json({"decision": "deny", "destination": RECIPIENT})]
    admin.enqueue(pending("p1", hashes=[_wallet(store)]))
    records = _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key)
    assert sent(admin) == {}
    assert "denied: rule 0" in errors(admin)["p1"]
    assert "denied: rule 0" in _decision(records, "p1")["approval"]["reason"]
    entry = store.journal.lookup("p1")
    assert entry is not None and entry.status == "held" and entry.payload is not None
    _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key)
    assert sent(admin) == {} and len(approver.config.answers) == 1  # never asked again, never signed anew


def test_a_tampered_answer_sends_nothing_and_a_later_approval_covers_the_same_journaled_bytes(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin, approver: Approver, daemon_key: Any
) -> None:
    approver.config.fault = "tamper"
    admin.enqueue(pending("p1", hashes=[_wallet(store)]))
    records = _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key)
    assert sent(admin) == {}
    assert "bad_signature" in errors(admin)["p1"] and "bad_signature" in _decision(records, "p1")["error"]
    journaled = store.journal.lookup("p1")
    assert journaled is not None and journaled.status == "signed"
    approver.config.fault = None
    _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key)
    assert sent(admin) == {"p1": journaled.payload}
    assert {a["payloadSha256"] for a in _answers(approver)} == {journaled.payload_sha256}


def test_a_policy_refusal_never_reaches_the_approver_nor_the_signer(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin, approver: Approver, daemon_key: Any
) -> None:
    policy = _policy(tmp_path, f'deny_destinations = ["{RECIPIENT}"]')
    admin.enqueue(pending("p1", hashes=[_wallet(store)]))
    records = _run(store, client, tmp_path / "audit.log", approver=approver, daemon_key=daemon_key, policy=policy)
    assert sent(admin) == {} and approver.config.answers == []
    assert "local policy" in errors(admin)["p1"] and "deny_destinations" in errors(admin)["p1"]
    assert _decision(records, "p1")["policy"]["verdict"] == "refused"
    assert _decision(records, "p1")["payloadSha256"] is None and store.journal.lookup("p1") is None
    assert [r["sha256"] for r in records if r.get("record") == "policy"] == [
        hashlib.sha256(policy.read_bytes()).hexdigest()
    ]


def test_the_24_hour_count_survives_a_restart(
    tmp_path: Path, store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    policy = _policy(tmp_path, "daily_count = 1")
    wallet = _wallet(store)
    admin.enqueue(pending("p1", hashes=[wallet]))
    _run(store, client, tmp_path / "audit.log", policy=policy)
    assert set(sent(admin)) == {"p1"}
    admin.enqueue(pending("p2", hashes=[wallet]))
    _run(store, client, tmp_path / "audit.log", policy=policy)  # a new process: the ledger is read from the store
    assert set(sent(admin)) == {"p1"} and "daily_count" in errors(admin)["p2"]
    assert store.journal.lookup("p2") is None


def test_a_policy_reload_is_audited_with_old_and_new_hash(tmp_path: Path, store: WalletStore) -> None:
    policy = _policy(tmp_path, "daily_count = 1")
    old = hashlib.sha256(policy.read_bytes()).hexdigest()
    records: list[Any] = []
    registry = CollectorRegistry()
    approvals = Approvals(ApprovalGate(testnet=True, policy=LocalPolicy(policy)), store, PolicyInfo(registry))
    approvals.before_cycle(records.append)
    policy.write_text(policy.read_text() + "daily_count_note = 1\n")  # a bad file: refused, the old one stays
    approvals.request_reload()
    approvals.before_cycle(records.append)
    _policy(tmp_path, "daily_count = 2")
    approvals.request_reload()
    approvals.before_cycle(records.append)
    new = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert [(r["event"], r["sha256"]) for r in records] == [("start", old), ("reload-refused", old), ("reload", new)]
    assert records[-1]["previousSha256"] == old
    metrics = generate_latest(registry).decode()
    assert f'kms_policy_info{{sha256="{new}"}} 1.0' in metrics and old not in metrics


def test_daemon_flags_for_approvals(tmp_path: Path) -> None:
    from kms.cli.main import build_parser
    from kms.daemon.options import options_from_args
    from kms.errors import UsageError

    settings = {"TATUM_API_KEY": "k"}
    parse = build_parser().parse_args
    default = options_from_args(parse(["daemon", "--testnet"]), settings)
    assert (default.approval, default.policy, default.approval_url) == ("v1", None, None)
    with pytest.raises(UsageError, match="externalUrl"):
        options_from_args(parse(["daemon"]), settings)  # mainnet, upstream's mode: the four-eye URL is required
    args = ["daemon", "--approval", "v2", "--approval-url", "https://approver.example/v2", "--approver-key", "a.pem"]
    v2 = options_from_args(parse([*args, "--policy", str(tmp_path / "p.toml")]), settings)
    assert (v2.approval, v2.approval_url, v2.approver_key) == ("v2", "https://approver.example/v2", "a.pem")
    assert v2.policy == tmp_path / "p.toml" and v2.external_url is None


def test_kms_daemon_with_approval_v2_against_kms_sandbox_approver_v2(tmp_path: Path) -> None:
    """The whole wiring as an operator runs it: `kms sandbox --approver-v2` pinning the daemon's key, and `kms daemon
    --approval v2 --approval-url --approver-key --policy` (processes, 127.0.0.1 only)."""
    from kms.approval.keys import private_pem
    from kms.hygiene import SecretBuffer
    from kms.sandbox.harness import SandboxProcess, daemon_env, start_daemon
    from kms.store import KdfParams

    key = generate_signing_key("EdDSA")
    key_file, daemon_pub = tmp_path / "daemon.pem", tmp_path / "daemon.pub.pem"
    key_file.write_bytes(private_pem(key))
    key_file.chmod(0o600)
    daemon_pub.write_text(key.public.pem())
    deny = json.dumps([{"decision": "deny", "pendingId": "p-deny"}])
    policy = _policy(tmp_path, f'deny_destinations = ["0x{"66" * 20}"]')
    with SandboxProcess("--approver-v2", "--approver-daemon-key", str(daemon_pub), "--approver-rules", deny) as sb:
        assert sb.admin is not None
        approver_pub = tmp_path / "approver.pub.pem"
        approver_pub.write_text(sb.info["approverPublicKey"])
        with WalletStore.open(
            tmp_path / "w.db", SecretBuffer(b"pw"), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
        ) as store:
            wallets = [_wallet(store) for _ in range(3)]
        sb.admin.enqueue([pending("p-ok", hashes=[wallets[0]]), pending("p-deny", hashes=[wallets[1]])])
        sb.admin.enqueue(pending("p-policy", hashes=[wallets[2]], serializedTransaction=_to(f"0x{'66' * 20}")))
        env = daemon_env(sb.url, "pw", tmp_path, extra={"TATUM_KMS_APPROVAL_KEY_FILE": str(key_file)})
        args = ["--testnet", "--path", str(tmp_path / "w.db"), "--chain", "ETH", "--runOnce", "--auditLog",
                str(tmp_path / "audit.log"), "--approval", "v2", "--approval-url", sb.info["approvalV2Url"],
                "--approver-key", str(approver_pub), "--policy", str(policy)]  # fmt: skip
        proc = start_daemon(args, env)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert set(sent(sb.admin)) == {"p-ok"}
        reported = errors(sb.admin)
    assert "denied" in reported["p-deny"] and "local policy" in reported["p-policy"]
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["sha256"] for r in records if r.get("record") == "policy"] == [
        hashlib.sha256(policy.read_bytes()).hexdigest()
    ]
    assert _decision(records, "p-ok")["approval"]["verdict"] == "approved"


def _to(address: str) -> str:
    tx = {"to": address, "value": "1", "gasPrice": "1000000000", "gas": "21000", "nonce": 1, "chainId": 11155111}
    return json.dumps(tx)
