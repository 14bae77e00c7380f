"""Approval protocol v2 against a real approver HTTP server on 127.0.0.1: the one way to approve, and every way an
answer is refused (with its reason code), plus the keys' settings and `kms approval pubkey`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from kms.api import PendingTransaction
from kms.approval.approver import Approver, ApproverConfig, Rule
from kms.approval.intent import NATIVE_TRANSFER, Destination, Intent, payload_digest, unknown_intent
from kms.approval.keys import (
    SigningKey,
    generate_signing_key,
    load_pinned_key,
    load_signing_key,
    private_pem,
)
from kms.approval.protocol import ReplayCache, verify_request
from kms.approval.v2 import ApprovalV2
from kms.daemon.four_eye import Verdict
from kms.errors import UsageError
from tests.cli_helpers import kms_env

PENDING = PendingTransaction(id="pending-1", chain="ETH", serialized_transaction="{}", hashes=("w",))
INTENT = Intent("ETH", "testnet", NATIVE_TRANSFER, destinations=(Destination("0x" + "22" * 20, 1000),))
DIGEST = payload_digest(b"the exact bytes to be signed")


@pytest.fixture(params=["ES256", "EdDSA"])
def daemon_key(request: pytest.FixtureRequest) -> SigningKey:
    return generate_signing_key(request.param)


@pytest.fixture
def approver(daemon_key: SigningKey) -> Iterator[Approver]:
    with Approver(ApproverConfig(key=generate_signing_key("EdDSA"), daemon_key=daemon_key.public)) as server:
        yield server


@pytest.fixture
def client(approver: Approver, daemon_key: SigningKey) -> Iterator[ApprovalV2]:
    v2 = ApprovalV2(approver.url, daemon_key, approver.public_key, timeout=1.5)
    yield v2
    v2.close()


def test_a_signed_approve_for_this_request_and_digest_approves(client: ApprovalV2, approver: Approver) -> None:
    decision = client.check(PENDING, INTENT, DIGEST)
    assert decision.verdict is Verdict.APPROVED and decision.approved
    answer = jwt.decode(approver.config.answers[-1], options={"verify_signature": False})
    assert answer["payloadSha256"] == DIGEST and answer["decision"] == "approve"
    assert decision.reason == f"approved: request {answer['requestId']}"


def test_the_request_is_signed_by_the_daemon_and_carries_intent_digest_and_expiry(daemon_key: SigningKey) -> None:
    seen: list[dict] = []

    class Recording(ApproverConfig):
        def decide(self, claims: dict) -> tuple[str, str]:  # type: ignore[override]
            seen.append(claims)
            return "approve", "recorded"

    with Approver(Recording(daemon_key=daemon_key.public)) as server:
        with ApprovalV2(server.url, daemon_key, server.public_key, timeout=20) as v2:
            assert v2.check(PENDING, INTENT, DIGEST).approved
            assert v2.check(PENDING, INTENT, DIGEST).approved
    first, second = seen
    assert first["pendingId"] == "pending-1" and first["payloadSha256"] == DIGEST
    assert first["intent"]["destinations"] == [
        {"address": "0x" + "22" * 20, "amount": "1000", "asset": "native", "change": False}
    ]
    assert first["intent"]["payloadSha256"] == DIGEST
    assert first["exp"] - first["iat"] == 20
    assert str(uuid.UUID(first["jti"], version=4)) == first["jti"] != second["jti"]


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("tamper", "bad_signature"),
        ("other_key", "bad_signature"),
        ("other_digest", "other_digest"),
        ("expired", "expired"),
        ("replay", "other_request"),
        ("bad_json", "bad_answer"),
        ("redirect", "redirect"),
        ("oversized", "oversized"),
        ("oversized_chunked", "oversized"),
        ("trickle", "timeout"),
        ("timeout", "timeout"),
        ("server_error", "http_status"),
    ],
)
def test_every_bad_answer_is_refused_with_its_reason(
    client: ApprovalV2, approver: Approver, fault: str, code: str
) -> None:
    assert client.check(PENDING, INTENT, DIGEST).approved  # a first, good answer (the one "replay" resends)
    approver.config.fault = fault
    approver.config.fault_seconds = 4.0
    decision = client.check(PENDING, INTENT, DIGEST)
    assert not decision.approved
    assert decision.verdict is Verdict.UNAVAILABLE, "an unproven answer must not make a final refusal"
    assert decision.reason.startswith(f"{code}: "), decision.reason
    assert "\n" not in decision.reason


def test_a_signed_deny_is_a_final_refusal_with_the_approvers_reason(client: ApprovalV2, approver: Approver) -> None:
    approver.config.rules = [Rule.from_json({"decision": "deny", "destination": "0x" + "22" * 20})]
    decision = client.check(PENDING, INTENT, DIGEST)
    assert decision.verdict is Verdict.REFUSED
    assert decision.reason == "denied: rule 0"


def test_an_approval_cannot_be_used_twice(approver: Approver, daemon_key: SigningKey) -> None:
    fixed = "3b0e7c55-0d7e-4a43-9f3a-6b0c1b1f1f10"
    with ApprovalV2(approver.url, daemon_key, approver.public_key, request_ids=lambda: fixed) as v2:
        assert v2.check(PENDING, INTENT, DIGEST).approved
        decision = v2.check(PENDING, INTENT, DIGEST)
    assert decision.reason.startswith("replayed: ") and not decision.approved


def test_replay_cache_is_bounded_and_forgets_expired_ids() -> None:
    cache = ReplayCache(capacity=3)
    assert cache.claim("a", until=100, now=0) and not cache.claim("a", until=100, now=1)
    for name in "bcde":
        assert cache.claim(name, until=100, now=2)
    assert len(cache) == 3
    assert cache.claim("x", until=300, now=200)  # every other entry expired
    assert len(cache) == 1


def test_a_request_from_another_daemon_key_gets_no_answer(approver: Approver) -> None:
    stranger = generate_signing_key("ES256")
    with ApprovalV2(approver.url, stranger, approver.public_key) as v2:
        decision = v2.check(PENDING, INTENT, DIGEST)
    assert decision.reason == "http_status: the approver answered HTTP 400"
    assert approver.config.answers == []


def test_unknown_intents_are_refused_unless_allowed(client: ApprovalV2, approver: Approver) -> None:
    unknown = unknown_intent("ETH", True, "contract creation")
    refused = client.check(PENDING, unknown, DIGEST)
    assert refused.verdict is Verdict.REFUSED and refused.reason == "unknown_intent: contract creation"
    assert approver.config.answers == [], "nothing was asked"
    assert client.check(PENDING, unknown, DIGEST, unknown_allowed=True).approved


def test_a_malformed_digest_is_never_sent(client: ApprovalV2, approver: Approver) -> None:
    decision = client.check(PENDING, INTENT, "abc")
    assert decision.verdict is Verdict.UNAVAILABLE and decision.reason.startswith("bad_request: ")
    assert approver.config.answers == []


def test_approver_verifies_request_claims(daemon_key: SigningKey) -> None:
    from kms.approval.protocol import sign_request

    request = sign_request(
        daemon_key, request_id="r", pending_id="p", chain="ETH", payload_sha256=DIGEST, intent={}, ttl=30
    )
    claims = verify_request(request.token, daemon_key.public)
    assert (claims["jti"], claims["pendingId"], claims["payloadSha256"]) == ("r", "p", DIGEST)
    assert claims["exp"] - claims["iat"] == 30


# -- keys from the settings -----------------------------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_signing_key_from_text_and_from_a_private_file(tmp_path: Path) -> None:
    key = generate_signing_key("ES256")
    pem = private_pem(key)
    from_text = load_signing_key({"TATUM_KMS_APPROVAL_KEY": pem.decode()})
    assert from_text.public.fingerprint == key.public.fingerprint and from_text.algorithm == "ES256"
    path = _write(tmp_path / "approval.pem", pem, 0o600)
    assert load_signing_key({"TATUM_KMS_APPROVAL_KEY_FILE": str(path)}).public.pem() == key.public.pem()
    credentials = load_signing_key(
        {"TATUM_KMS_APPROVAL_KEY_FILE": "approval.pem", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert credentials.public.fingerprint == key.public.fingerprint
    assert "PRIVATE" not in repr(from_text) and pem.decode()[40:80] not in repr(from_text)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "approval.pem", private_pem(generate_signing_key()), 0o644)
    with pytest.raises(UsageError, match="readable by others"):
        load_signing_key({"TATUM_KMS_APPROVAL_KEY_FILE": str(path)})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set TATUM_KMS_APPROVAL_KEY"),
        ({"TATUM_KMS_APPROVAL_KEY": "not a key"}, "not an unencrypted PEM private key"),
        ({"TATUM_KMS_APPROVAL_KEY_FILE": "relative.pem"}, "absolute path"),
    ],
)
def test_bad_signing_key_settings(settings: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_signing_key(settings)


def test_pinned_key_from_flag_file_or_setting(tmp_path: Path) -> None:
    approver_key = generate_signing_key("EdDSA").public
    path = _write(tmp_path / "approver.pub", approver_key.pem().encode(), 0o644)
    assert load_pinned_key({}, str(path)).fingerprint == approver_key.fingerprint
    assert load_pinned_key({"TATUM_KMS_APPROVER_PUBLIC_KEY": approver_key.pem()}).algorithm == "EdDSA"
    with pytest.raises(UsageError, match="approver's public key"):
        load_pinned_key({})


def test_kms_approval_pubkey_prints_only_the_public_key(tmp_path: Path) -> None:
    key = generate_signing_key("EdDSA")
    path = _write(tmp_path / "approval.pem", private_pem(key), 0o600)
    env = kms_env(tmp_path, TATUM_KMS_APPROVAL_KEY_FILE=str(path))
    result = subprocess.run(
        [sys.executable, "-m", "kms", "approval", "pubkey"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"algorithm": "EdDSA"' in result.stdout and key.public.fingerprint in result.stdout
    assert "PRIVATE" not in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "kms", "approval", "pubkey"],
        capture_output=True,
        text=True,
        env=kms_env(tmp_path),
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith('{"error": "approval v2 needs the daemon')
