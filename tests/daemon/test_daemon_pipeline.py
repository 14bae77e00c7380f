"""The pipelined daemon as a real process against the sandbox as a real process: many transactions from one sender
with and without nonces, a broadcast failing for good in the middle (nonce gap), a 429 storm. (The SIGKILL mid-pipeline
case is tests/test_daemon.py::test_exactly_once_across_sigkill_and_restart.) No timing assertions: what is checked is
which nonce each id got, how often and with which payload each id was sent, and what was reported."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess
from tests.daemon.test_daemon import World, broadcasts_by_id, eth_pending, nonce_of, sender


def one_payload_each(state: dict[str, object]) -> dict[str, str]:
    """Every id's broadcast attempts carried one payload: id -> that payload."""
    payloads = {}
    for pid, sent in broadcasts_by_id(state).items():  # type: ignore[arg-type]
        assert len(set(sent)) == 1, f"{pid} was sent with {len(set(sent))} different payloads"
        payloads[pid] = sent[0]
    return payloads


def test_one_sender_with_explicit_nonces(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process, keys=1)
    sid, address = world.wallets[0]
    ids = [f"x-{i:03d}" for i in range(60)]
    process_admin.enqueue([eth_pending(pid, sid, nonce=100 + i, value=1000 + i) for i, pid in enumerate(ids)])
    process_admin.configure(faults=[{"kind": "delay", "seconds": 0.1, "path": "/v3/ethereum/broadcast", "times": -1}])
    code, summary, err = world.run_once("--concurrency", "8")
    assert code == 0, err
    assert summary["broadcast"] == 60 and summary["failed"] == 0
    state = process_admin.state()
    assert sorted(b["signatureId"] for b in state["broadcasts"]) == ids  # each once
    payloads = one_payload_each(state)
    assert {pid: nonce_of(p) for pid, p in payloads.items()} == {pid: 100 + i for i, pid in enumerate(ids)}
    assert all(sender(p) == address for p in payloads.values())
    assert len(state["approvals"]) == 60  # four-eye asked once per transaction
    assert state["requests"].get("GET /v3/ethereum/transaction/count", 0) == 0  # nothing to look up
    # --concurrency matters for one sender: its broadcasts overlapped.
    assert state["peakInflight"]["POST /v3/ethereum/broadcast"] > 1


def test_one_sender_without_nonces(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process, keys=1)
    sid, address = world.wallets[0]
    ids = [f"n-{i:03d}" for i in range(60)]
    process_admin.enqueue([eth_pending(pid, sid, nonce=None, value=1000 + i) for i, pid in enumerate(ids)])
    process_admin.configure(
        nonces={address: 40},
        nodeNonces=True,
        faults=[{"kind": "delay", "seconds": 0.1, "path": "/v3/ethereum/broadcast", "times": -1}],
    )
    code, summary, err = world.run_once("--concurrency", "8")
    assert code == 0, err
    assert summary["broadcast"] == 60
    state = process_admin.state()
    payloads = one_payload_each(state)
    assert sorted(payloads) == ids and len(state["broadcasts"]) == 60
    # One look-up for the sender, then every nonce once, in the order the API listed the transactions.
    assert state["requests"]["GET /v3/ethereum/transaction/count"] == 1
    assert [nonce_of(payloads[pid]) for pid in ids] == list(range(40, 100))
    assert state["peakInflight"]["POST /v3/ethereum/broadcast"] > 1
    journal = world.journal()
    assert all(journal[pid] == ("broadcast", payloads[pid]) for pid in ids)


def test_a_broadcast_failing_for_good_in_the_middle(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process, keys=1)
    sid, address = world.wallets[0]
    ids = [f"g-{i:02d}" for i in range(12)]
    process_admin.enqueue([eth_pending(pid, sid, nonce=None, value=1000 + i) for i, pid in enumerate(ids)])
    process_admin.configure(
        nonces={address: 7},
        nodeNonces=True,
        faults=[
            {"kind": "status", "status": 400, "path": "/v3/ethereum/broadcast", "signatureId": "g-05", "times": 1},
            {"kind": "delay", "seconds": 0.2, "path": "/v3/ethereum/broadcast", "times": -1},
        ],
    )
    code, summary, err = world.run_once("--concurrency", "4", "--max-in-flight-per-sender", "4")
    assert code == 0, err
    state = process_admin.state()
    first = one_payload_each(state)
    errors = {e["signatureId"]: e["error"] for e in state["errors"]}
    assert "g-05" in errors and "g-05" not in {b["signatureId"] for b in state["broadcasts"]}
    failed_nonce = nonce_of(first["g-05"])
    assert failed_nonce == 12
    # The gap is reported: later transactions of the sender were held (signed, not sent) or not signed, saying why.
    later = [pid for pid in ids[6:] if pid in errors]
    assert later, "no later transaction reports the gap"
    assert all("nonce 12" in errors[pid] for pid in later)
    assert summary["broadcast"] + summary["failed"] + summary["held"] == 12, summary
    journal_after_first = world.journal()
    for pid in later:  # a held transaction was never sent; an unsigned one has no journal entry
        assert pid not in first and (pid not in journal_after_first or journal_after_first[pid][0] == "signed")

    process_admin.configure(faults=[])
    code, summary, err = world.run_once()
    assert code == 0, err
    state = process_admin.state()
    payloads = one_payload_each(state)  # over both runs: nothing was sent twice with different payloads
    assert sorted(b["signatureId"] for b in state["broadcasts"]) == ids  # each accepted exactly once
    assert payloads["g-05"] == first["g-05"]  # the failed payload was sent again, not re-signed
    for pid, (_status, payload) in journal_after_first.items():
        assert payloads[pid] == payload  # whatever was journaled is what went out
    assert [nonce_of(payloads[pid]) for pid in ids] == list(range(7, 19))  # no nonce twice, none skipped
    assert all(status == "broadcast" for status, _ in world.journal().values())


def test_a_429_storm(tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin) -> None:
    world = World(tmp_path, sandbox_process, keys=2)
    ids = [f"r-{i:02d}" for i in range(24)]
    process_admin.enqueue(
        [eth_pending(pid, world.wallets[i % 2][0], nonce=(i // 2), value=1000 + i) for i, pid in enumerate(ids)]
    )
    process_admin.configure(
        faults=[
            {"kind": "status", "status": 429, "retryAfter": 0.05, "path": "/v3/ethereum/broadcast", "times": 12},
            {"kind": "status", "status": 429, "path": "/v3/kms/pending/ETH", "times": 2},
        ]
    )
    code, summary, err = world.run_once("--concurrency", "6")
    assert code == 0, err
    assert summary["broadcast"] == 24, err[-2000:]
    state = process_admin.state()
    payloads = one_payload_each(state)
    assert sorted(b["signatureId"] for b in state["broadcasts"]) == ids
    attempts = Counter(a["body"]["signatureId"] for a in state["attempts"])
    assert sum(attempts.values()) == 24 + 12  # every 429 was answered by a retry of the same payload
    assert {pid: nonce_of(p) for pid, p in payloads.items()} == {pid: i // 2 for i, pid in enumerate(ids)}
    assert state["errors"] == []
