"""The Tatum API sandbox: `kms sandbox` as a process, and its API, admin and fault injection over real sockets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kms.sandbox import Sandbox, SandboxAdmin
from kms.sandbox.harness import SandboxProcess


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, trust_env=False, timeout=10) as client:
        yield client


def test_kms_sandbox_command_announces_its_url_and_stops_cleanly() -> None:
    with SandboxProcess("--approval", "deny", "--latency", "0") as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        assert sb.admin is not None
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(f"{sb.approval_url}/anything").status_code == 403  # --approval deny
            assert client.post(f"{sb.url}/v3/kms/pending/ETH", json={"signatureIds": []}).json() == []
        assert sb.stop() == 0


def test_the_sandbox_refuses_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="0.0.0.0")


def test_pending_queue_and_broadcast(sandbox: Sandbox, http: httpx.Client) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        ids = admin.enqueue(
            [
                {"id": "q1", "chain": "eth", "serializedTransaction": "{}", "hashes": ["a"]},
                {"id": "q2", "chain": "ETH", "serializedTransaction": "{}", "signatures": [{"id": "b", "index": 1}]},
                {"id": "q3", "chain": "BTC", "serializedTransaction": "{}", "hashes": ["a"]},
            ]
        )
        assert ids == ["q1", "q2", "q3"]
        listed = http.post("/v3/kms/pending/ETH", json={"signatureIds": ["a", "b"]}).json()
        assert sorted(item["id"] for item in listed) == sorted(ids[:2])
        assert http.post("/v3/kms/pending/ETH", json={"signatureIds": ["c"]}).json() == []
        assert http.get(f"/v3/kms/{ids[0]}").json()["chain"] == "ETH"
        answer = http.post("/v3/ethereum/broadcast", json={"txData": "0x01", "signatureId": ids[0]}).json()
        assert answer["completed"] is True and answer["txId"]
        assert [item["id"] for item in http.post("/v3/kms/pending/ETH", json={"signatureIds": ["a"]}).json()] == []
        assert http.delete(f"/v3/kms/{ids[1]}").status_code == 200
        assert http.delete(f"/v3/kms/{ids[1]}").status_code == 404
        state = admin.state()
        assert [p["id"] for p in state["pending"]] == [ids[2]]
        assert state["completed"][0]["txId"] == answer["txId"]


@pytest.mark.parametrize(("verdict", "status"), [("approve", 200), ("deny", 403), ("notfound", 404), ("error", 500)])
def test_approval_verdicts(sandbox: Sandbox, http: httpx.Client, verdict: str, status: int) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(approval={"default": "approve", "ids": {"tx-1": verdict}})
        assert http.get("/approval/tx-1").status_code == status
        assert http.post("/approval/tx-2", json={"id": "tx-2"}).status_code == 200
        approvals = admin.state()["approvals"]
    assert [(a["id"], a["method"]) for a in approvals] == [("tx-1", "GET"), ("tx-2", "POST")]
    assert approvals[1]["body"] == {"id": "tx-2"}


def test_unknown_verdicts_and_faults_are_refused(sandbox: Sandbox, http: httpx.Client) -> None:
    assert http.post("/_sandbox/config", json={"approval": {"default": "maybe"}}).status_code == 400
    assert http.post("/_sandbox/config", json={"faults": [{"kind": "explode"}]}).status_code == 400


def test_faults_are_consumed_in_order(sandbox: Sandbox, http: httpx.Client) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(
            faults=[
                {"kind": "status", "status": 429, "retryAfter": 2, "times": 1},
                {"kind": "malformed", "times": 1},
                {"kind": "wrongshape", "times": 1},
                {"kind": "status", "status": 500, "signatureId": "only-this", "times": -1},
            ]
        )
        first = http.post("/v3/kms/pending/ETH", json={"signatureIds": []})
        assert first.status_code == 429 and first.headers["retry-after"] == "2"
        second = http.post("/v3/kms/pending/ETH", json={"signatureIds": []})
        assert second.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            second.json()
        assert http.post("/v3/kms/pending/ETH", json={"signatureIds": []}).json() == {
            "unexpected": "shape",
            "data": None,
        }
        assert http.post("/v3/kms/pending/ETH", json={"signatureIds": []}).json() == []
        other = http.post("/v3/ethereum/broadcast", json={"txData": "0x01", "signatureId": "other"})
        assert other.status_code == 200
        for _ in range(2):
            assert (
                http.post("/v3/ethereum/broadcast", json={"txData": "0x01", "signatureId": "only-this"}).status_code
                == 500
            )
        hits = [rule["hits"] for rule in admin.state()["faults"]]
    assert hits == [1, 1, 1, 2]


def test_reset_fault_drops_the_connection(sandbox: Sandbox, http: httpx.Client) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(faults=[{"kind": "reset", "times": 1}])
    with pytest.raises(httpx.TransportError):
        http.post("/v3/kms/pending/ETH", json={"signatureIds": []})
    assert http.post("/v3/kms/pending/ETH", json={"signatureIds": []}).status_code == 200


def test_a_request_held_across_a_reset_does_not_write_into_the_fresh_state(sandbox: Sandbox) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(faults=[{"kind": "delay", "seconds": 1.0, "path": "/v3/ethereum/broadcast"}])
        answers: list[int] = []

        def held() -> None:
            with httpx.Client(trust_env=False, timeout=10) as client:
                answers.append(
                    client.post(
                        f"{sandbox.url}/v3/ethereum/broadcast", json={"txData": "0x1", "signatureId": "x"}
                    ).status_code
                )

        thread = threading.Thread(target=held)
        thread.start()
        while not admin.state()["attempts"]:
            pass
        admin.reset()
        thread.join(10)
        assert answers == [503]
        assert admin.state()["broadcasts"] == []


def test_api_key_and_evm_lookups(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.api_key = "k-123"
    assert http.post("/v3/kms/pending/ETH", json={"signatureIds": []}).status_code == 401
    headers = {"x-api-key": "k-123"}
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(nonces={"0xABC": 7}, chainIds={"bsc": 97})
        assert http.get("/v3/ethereum/transaction/count/0xabc", headers=headers).json() == 7
        assert http.get("/v3/blockchain/fee/ETH", headers=headers).json()["medium"] == "20000000000"
        rpc = http.post("/v3/bsc/web3/k-123", json={"jsonrpc": "2.0", "id": 3, "method": "eth_chainId"}).json()
        assert rpc == {"jsonrpc": "2.0", "id": 3, "result": hex(97)}
        assert http.post("/v3/bsc/web3/wrong", json={"method": "eth_chainId"}).status_code == 401
        unknown = http.post("/v3/bsc/web3/k-123", json={"id": 1, "method": "eth_sendRawTransaction"}).json()
        assert unknown["error"]["code"] == -32601
        requests = admin.state()["requests"]
    assert "POST /v3/bsc/web3" in requests and not any("k-123" in key for key in requests)


def test_nonces_that_change_on_each_lookup(sandbox: Sandbox, http: httpx.Client) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(nonces={"0xabc": 5}, nonceStep=1)
        rest = [http.get("/v3/ethereum/transaction/count/0xABC").json() for _ in range(2)]
        rpc = http.post("/v3/polygon/web3/k", json={"id": 1, "method": "eth_getTransactionCount", "params": ["0xabc"]})
        assert [*rest, int(rpc.json()["result"], 16)] == [5, 6, 7]


def test_trickle_fault_sends_the_answer_slowly(sandbox: Sandbox) -> None:
    with SandboxAdmin(sandbox.url) as admin:
        admin.configure(faults=[{"kind": "trickle", "seconds": 0.5, "path": "/v3/kms/pending/", "times": 1}])
        with httpx.Client(trust_env=False, timeout=httpx.Timeout(0.2)) as client, pytest.raises(httpx.ReadTimeout):
            # each byte comes after more than the 0.2 s read timeout; a per-read timeout does trip here
            client.post(f"{sandbox.url}/v3/kms/pending/ETH", json={"signatureIds": []})
        with httpx.Client(trust_env=False, timeout=5) as client:
            answer = client.post(f"{sandbox.url}/v3/kms/pending/ETH", json={"signatureIds": []})
        assert answer.json() == [] and admin.state()["faults"][0]["hits"] == 1


def test_unknown_endpoints(sandbox: Sandbox, http: httpx.Client) -> None:
    assert http.get("/nothing").status_code == 404
    assert http.get("/_sandbox/nothing").status_code == 404
    assert http.post("/v3/kms/pending/ETH", json={"signatureIds": "a"}).status_code == 400


def test_sandbox_command_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kms", "sandbox"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    assert info["approvalUrl"] == info["url"] + "/approval"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0


def test_kms_sandbox_runs_an_approval_v2_approver_with_its_own_key_and_rules(tmp_path: Path) -> None:
    from kms.api import PendingTransaction
    from kms.approval.intent import NATIVE_TRANSFER, Destination, Intent, payload_digest
    from kms.approval.keys import generate_signing_key, public_key_from_pem
    from kms.approval.v2 import ApprovalV2
    from kms.daemon.four_eye import Verdict

    daemon_key = generate_signing_key("ES256")
    pinned = tmp_path / "daemon.pub"
    pinned.write_text(daemon_key.public.pem())
    rules = json.dumps([{"decision": "deny", "amountAbove": 1000}])
    with SandboxProcess("--approver-v2", "--approver-rules", rules, "--approver-daemon-key", str(pinned)) as sb:
        info = sb.info
        approver_key = public_key_from_pem(info["approverPublicKey"])
        assert approver_key.fingerprint == info["approverKeySha256"] and info["approverChecksDaemonKey"] is True
        pending = PendingTransaction(id="p", chain="ETH", serialized_transaction="{}", hashes=("w",))
        digest = payload_digest(b"bytes")

        def intent(amount: int) -> Intent:
            return Intent("ETH", "testnet", NATIVE_TRANSFER, destinations=(Destination("0x" + "22" * 20, amount),))

        with ApprovalV2(info["approvalV2Url"], daemon_key, approver_key, timeout=10) as v2:
            assert v2.check(pending, intent(1000), digest).approved
            denied = v2.check(pending, intent(1001), digest)
            assert denied.verdict is Verdict.REFUSED and denied.reason == "denied: rule 0"
        with ApprovalV2(info["approvalV2Url"], generate_signing_key(), approver_key, timeout=10) as stranger:
            assert stranger.check(pending, intent(1), digest).reason.startswith("http_status: ")
        assert sb.stop() == 0


def test_kms_sandbox_refuses_bad_approver_rules() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kms", "sandbox", "--approver-v2", "--approver-rules", '[{"decision": "maybe"}]'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert json.loads(result.stderr.strip().splitlines()[-1])["error"].startswith("--approver-rules: ")
