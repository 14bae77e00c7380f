"""`kms daemon` as a real subprocess against `kms sandbox` as a real subprocess (sockets on 127.0.0.1 only).

ETH pending transactions are signed by the EVM signer through the chain registry; every broadcast is checked by
recovering its sender with eth-account.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import rlp
from eth_account import Account

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess, daemon_env, start_daemon, wait_for
from kms.store import KdfParams, WalletStore
from tests.conftest import load_vectors

PASSWORD = "correct horse battery staple"
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


class World:
    """A store of ETH testnet wallets and a daemon command line pointed at the sandbox."""

    def __init__(self, tmp: Path, sandbox: SandboxProcess, keys: int = 2) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.path = tmp / "wallet.db"
        eth = get_chain("ETH")
        self.wallets: list[tuple[str, str]] = []  # (signatureId, address)
        with WalletStore.open(
            self.path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
        ) as store:
            for _ in range(keys):
                generated = eth.generate_private_key(True)
                sid = store.add("ETH", True, {"privateKey": generated["privateKey"]})
                self.wallets.append((sid, generated["address"]))
        self.env = daemon_env(sandbox.url, PASSWORD, tmp, extra={"TATUM_KMS_EXTERNAL_URL_TIMEOUT": "0.5"})

    def args(self, *extra: str, four_eye: bool = True) -> list[str]:
        base = ["--testnet", "--path", str(self.path), "--chain", "ETH"]
        if four_eye:
            base += ["--externalUrl", self.sandbox.approval_url]
        return [*base, *extra]

    def run_once(self, *extra: str, four_eye: bool = True, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
        proc = start_daemon(self.args("--runOnce", *extra, four_eye=four_eye), self.env)
        out, err = proc.communicate(timeout=timeout)
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        return proc.returncode, summary, err

    def start(self, *extra: str, four_eye: bool = True) -> subprocess.Popen[str]:
        return start_daemon(self.args("--period", "0.2", *extra, four_eye=four_eye), self.env)

    def journal(self) -> dict[str, tuple[str, str]]:
        with WalletStore.open(self.path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
            return {e.pending_id: (e.status, e.tx_data) for e in store.journal_entries()}


def eth_pending(pid: str, wallet: str, *, nonce: int | None = 3, value: int = 1000) -> dict[str, Any]:
    tx: dict[str, Any] = {"to": RECIPIENT, "value": str(value), "gasPrice": "20000000000", "gas": "21000",
                          "chainId": 11155111}  # fmt: skip
    if nonce is not None:
        tx["nonce"] = nonce
    return {"id": pid, "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [wallet]}


def sender(tx_data: str) -> str:
    return str(Account.recover_transaction(tx_data)).lower()


def nonce_of(tx_data: str) -> int:
    return int.from_bytes(rlp.decode(bytes.fromhex(tx_data[2:]))[0], "big")


def broadcasts_by_id(state: dict[str, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for attempt in state["attempts"]:
        body = attempt["body"]
        result.setdefault(body["signatureId"], []).append(body["txData"])
    return result


# -- four-eye ----------------------------------------------------------------------------------------------------------


def test_four_eye_approve_deny_timeout_and_error(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, address = world.wallets[0]
    process_admin.enqueue([eth_pending(pid, sid) for pid in ("ok-1", "deny-1", "slow-1", "err-1", "gone-1")])
    process_admin.configure(
        approval={"default": "approve", "hang": 3,
                  "ids": {"deny-1": "deny", "slow-1": "timeout", "err-1": "error", "gone-1": "notfound"}}
    )  # fmt: skip

    code, summary, err = world.run_once()
    assert code == 0, err
    assert summary["broadcast"] == 1
    assert summary["refused"] == 2  # 403 and 404: explicit refusals
    assert summary["unavailable"] == 2  # timeout and 500: fail closed, ask again later
    state = process_admin.state()
    assert [b["signatureId"] for b in state["broadcasts"]] == ["ok-1"]
    assert sender(state["broadcasts"][0]["txData"]) == address
    reported = sorted(e["signatureId"] for e in state["errors"])
    assert reported == ["deny-1", "gone-1"]
    assert "four-eye" in state["errors"][0]["error"]

    code, summary, err = world.run_once()
    assert code == 0, err
    state = process_admin.state()
    asked = [a["id"] for a in state["approvals"]]
    assert asked.count("deny-1") == 1 and asked.count("gone-1") == 1  # a refusal is final, even across restarts
    assert asked.count("slow-1") == 2 and asked.count("err-1") == 2  # unavailability is asked again
    assert sorted(e["signatureId"] for e in state["errors"]) == ["deny-1", "gone-1"]  # reported once
    assert [b["signatureId"] for b in state["broadcasts"]] == ["ok-1"]
    journal = world.journal()
    assert journal["deny-1"][0] == "refused" and journal["ok-1"][0] == "broadcast"
    assert "slow-1" not in journal and "err-1" not in journal


def test_four_eye_post_sends_the_pending_transaction(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, _ = world.wallets[0]
    pending = eth_pending("post-1", sid)
    process_admin.enqueue(pending)
    code, summary, err = world.run_once("--external-url-method", "POST")
    assert code == 0, err
    approval = process_admin.state()["approvals"][0]
    assert approval["method"] == "POST"
    assert approval["body"] == pending
    assert summary["broadcast"] == 1


def test_mainnet_requires_external_url(tmp_path: Path, sandbox_process: SandboxProcess) -> None:
    world = World(tmp_path, sandbox_process, keys=0)
    proc = start_daemon(["--path", str(world.path), "--runOnce"], world.env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--externalUrl is required" in err


# -- a flaky Tatum API ---------------------------------------------------------------------------------------------


def test_retries_through_5xx_429_and_resets(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, address = world.wallets[0]
    process_admin.enqueue(eth_pending("flaky-1", sid, nonce=None))
    process_admin.configure(
        nonces={address: 12},
        faults=[
            {"kind": "status", "status": 503, "path": "/v3/kms/pending/", "times": 2},
            {"kind": "status", "status": 429, "retryAfter": 1, "path": "/v3/kms/pending/", "times": 1},
            {"kind": "reset", "path": "/v3/ethereum/transaction/count/", "times": 1},
            {"kind": "reset", "path": "/v3/ethereum/broadcast", "times": 1},
            {"kind": "status", "status": 502, "path": "/v3/ethereum/broadcast", "times": 1},
        ],
    )
    code, summary, err = world.run_once(four_eye=False)
    assert code == 0, err
    assert summary["broadcast"] == 1 and summary["failed"] == 0
    state = process_admin.state()
    assert all(rule["times"] == 0 for rule in state["faults"])
    assert state["requests"]["POST /v3/kms/pending/ETH"] == 4
    attempts = broadcasts_by_id(state)["flaky-1"]
    assert len(attempts) == 3 and len(set(attempts)) == 1  # the same payload each time
    assert nonce_of(attempts[0]) == 12 and sender(attempts[0]) == address
    assert state["errors"] == []


def test_malformed_responses_are_skipped_and_the_loop_goes_on(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, address = world.wallets[0]
    process_admin.enqueue(eth_pending("good-1", sid))
    process_admin.enqueue({"id": "broken-1", "chain": "ETH", "hashes": [sid]}, unchecked=True)
    process_admin.configure(
        faults=[
            {"kind": "malformed", "path": "/v3/kms/pending/", "times": 1},
            {"kind": "wrongshape", "path": "/v3/kms/pending/", "times": 1},
            {"kind": "malformed", "path": "/v3/ethereum/broadcast", "times": 1},
        ]
    )
    proc = world.start(four_eye=False)
    try:
        assert wait_for(lambda: any(b["signatureId"] == "good-1" for b in process_admin.state()["broadcasts"]), 30)
        assert wait_for(lambda: len(process_admin.state()["polls"]) >= 5, 30)  # still polling after all that
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    state = process_admin.state()
    attempts = broadcasts_by_id(state)["good-1"]
    assert len(attempts) == 2 and len(set(attempts)) == 1  # the malformed answer -> rebroadcast of the same txData
    assert sender(attempts[0]) == address
    errors = state["errors"]
    broken = [e for e in errors if e["signatureId"] == "broken-1"]
    assert len(broken) == 1 and "missing 'serializedTransaction'" in broken[0]["error"]
    assert "broken-1" not in broadcasts_by_id(state)
    assert "malformed response" in err


# -- exactly once ------------------------------------------------------------------------------------------------


def test_exactly_once_across_sigkill_and_restart(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, address = world.wallets[0]
    ids = [f"kill-{i}" for i in range(8)]
    process_admin.enqueue([eth_pending(pid, sid, nonce=None, value=1000 + i) for i, pid in enumerate(ids)])
    # Nonces come from the daemon (one look-up, then 5, 6, 7 ...): were anything signed twice, the second payload
    # would carry another nonce. At most 3 of the sender in flight: 3 are signed, then the broadcasts hang.
    process_admin.configure(nonces={address: 5}, faults=[{"kind": "delay", "seconds": 30,
                                                          "path": "/v3/ethereum/broadcast", "times": -1}])  # fmt: skip
    proc = world.start("--max-in-flight-per-sender", "3")
    try:
        assert wait_for(lambda: len(process_admin.state()["attempts"]) >= 3, 30)
    finally:
        proc.kill()  # SIGKILL mid-pipeline: no chance to clean up
        proc.communicate(timeout=30)
    first = broadcasts_by_id(process_admin.state())
    journal = world.journal()
    assert sorted(journal) == ids[:3]
    assert all(journal[pid][0] == "signed" for pid in first)  # journaled before any broadcast
    for pid, payloads in first.items():
        assert journal[pid][1] == payloads[0]
    assert [nonce_of(journal[pid][1]) for pid in ids[:3]] == [5, 6, 7]

    # The node still counts 5 (it never saw those broadcasts): the journaled nonces 5-7 are held, new ones follow.
    process_admin.configure(nonces={address: 5}, faults=[])
    code, summary, err = world.run_once()
    assert code == 0, err
    assert summary["rebroadcast"] == 3 and summary["broadcast"] == 5
    state = process_admin.state()
    assert sorted(b["signatureId"] for b in state["broadcasts"]) == sorted(ids)
    for pid, payloads in broadcasts_by_id(state).items():
        assert len(set(payloads)) == 1, f"{pid} was broadcast with two different payloads"
        assert sender(payloads[0]) == address
        if pid in journal:
            assert payloads[0] == journal[pid][1]  # re-sent, not re-signed
    nonces = [nonce_of(broadcasts_by_id(state)[pid][0]) for pid in ids]
    assert nonces == list(range(5, 13))  # every nonce once, in the API's order
    assert all(status == "broadcast" for status, _ in world.journal().values())


def test_sigterm_during_a_batch_finishes_in_flight_work(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, _address = world.wallets[0]
    ids = [f"term-{i}" for i in range(6)]
    process_admin.enqueue([eth_pending(pid, sid, value=2000 + i) for i, pid in enumerate(ids)])
    process_admin.configure(faults=[{"kind": "delay", "seconds": 1.5, "path": "/v3/ethereum/broadcast", "times": -1}])
    proc = world.start("--concurrency", "2")
    try:
        assert wait_for(lambda: len(process_admin.state()["attempts"]) >= 1, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in err and "secrets wiped" in err
    state = process_admin.state()
    attempted = {a["body"]["signatureId"] for a in state["attempts"]}
    completed = {b["signatureId"] for b in state["broadcasts"]}
    assert attempted and attempted == completed  # every broadcast in flight was finished
    assert len(completed) < len(ids)  # and no new work was started after the signal
    journal = world.journal()
    assert set(journal) == completed and all(status == "broadcast" for status, _ in journal.values())


def test_sigterm_past_the_deadline_abandons_safely(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, _address = world.wallets[0]
    process_admin.enqueue(eth_pending("stuck-1", sid))
    process_admin.configure(faults=[{"kind": "delay", "seconds": 20, "path": "/v3/ethereum/broadcast", "times": 1}])
    proc = world.start("--shutdown-timeout", "0.5", four_eye=False)
    try:
        assert wait_for(lambda: len(process_admin.state()["attempts"]) >= 1, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "abandoning" in err
    status, tx_data = world.journal()["stuck-1"]
    assert status == "signed"
    code, summary, err = world.run_once(four_eye=False)
    assert code == 0 and summary["rebroadcast"] == 1, err
    payloads = broadcasts_by_id(process_admin.state())["stuck-1"]
    assert set(payloads) == {tx_data}


# -- limits and filters -----------------------------------------------------------------------------------------


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def test_more_than_25000_signature_ids_is_an_error_and_no_request(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process, keys=0)
    too_many = ",".join(_base36(i) for i in range(25_001))
    code, summary, err = world.run_once("--wallets", too_many, four_eye=False)
    assert code == 0, err
    assert summary["chainErrors"] == {"ETH": "Error: Exceeded limit 25000 wallets for chain ETH."}
    assert process_admin.state()["polls"] == []

    exactly = ",".join(_base36(i) for i in range(25_000))
    code, summary, err = world.run_once("--wallets", exactly, four_eye=False)
    assert code == 0, err
    assert summary["chainErrors"] == {}
    assert process_admin.state()["polls"] == [{"chain": "ETH", "count": 25_000, "clientVersion": "8.0.1"}]


def test_run_once_with_wallets_and_transaction_ids(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process, keys=2)
    (sid_a, address_a), (sid_b, _) = world.wallets
    process_admin.enqueue([eth_pending("t1", sid_a), eth_pending("t2", sid_a, value=7), eth_pending("t3", sid_b)])
    code, summary, err = world.run_once("--wallets", sid_a, "--transaction-ids", "t1")
    assert code == 0, err
    assert summary["pending"] == 2 and summary["broadcast"] == 1 and summary["skipped"] == 1
    state = process_admin.state()
    assert state["polls"] == [{"chain": "ETH", "count": 1, "clientVersion": "8.0.1"}]
    assert [b["signatureId"] for b in state["broadcasts"]] == ["t1"]
    assert sender(state["broadcasts"][0]["txData"]) == address_a
    assert [a["id"] for a in state["approvals"]] == ["t1"]
    assert set(world.journal()) == {"t1"}


def test_wallets_filter_needs_run_once(tmp_path: Path, sandbox_process: SandboxProcess) -> None:
    world = World(tmp_path, sandbox_process, keys=0)
    proc = start_daemon(world.args("--wallets", "abc"), world.env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "only with --runOnce" in err


def _wallet_fields(wallet: dict[str, str]) -> dict[str, str]:
    if "mnemonic" in wallet:
        return get_chain("ETH").wallet_from_mnemonic(wallet["mnemonic"], True)
    return {"privateKey": wallet["privateKey"]}


def test_upstream_vector_through_the_whole_daemon(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    vectors = load_vectors("daemon-eth.json")
    world = World(tmp_path, sandbox_process, keys=0)
    with WalletStore.open(world.path, SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        sids = [store.add("ETH", True, _wallet_fields(v["input"]["wallet"])) for v in vectors]
    for number, (vector, sid) in enumerate(zip(vectors, sids, strict=True)):
        pending = {**vector["input"]["pending"], "id": f"vector-{number}", "hashes": [sid]}
        process_admin.enqueue(pending)
    code, _summary, err = world.run_once()
    assert code == 0, err
    sent = {b["signatureId"]: b for b in process_admin.state()["broadcasts"]}
    for number, vector in enumerate(vectors):
        assert sent[f"vector-{number}"]["txData"] == vector["expected"]["txData"]
        assert sent[f"vector-{number}"]["path"] == vector["expected"]["broadcastPath"]
