"""The audit log: hash chain, HMAC, fsync per record, concurrency, and `kms audit verify` on tampered files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kms.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditLogError,
    derive_hmac_key,
    hmac_key_from_settings,
    line_hash,
    verify_file,
)
from kms.errors import UsageError
from kms.hygiene import SecretBuffer

REPO = Path(__file__).resolve().parents[1]
KEY_TEXT = "a3f1c9e07b2d4f68a1b3c5d7e9f10234a3f1c9e07b2d4f68a1b3c5d7e9f10234"
N = 6


def decision(i: int) -> dict[str, Any]:
    return {
        "pendingId": f"65a1b2c3d4e5f6a7b8c9d0{i:02d}",
        "chain": "ETH",
        "signatureIds": [f"2f6e0c8a-1b2c-4d5e-8f90-0000000000{i:02d}"],
        "fourEye": {"verdict": "approved", "status": 200},
        "payloadSha256": hashlib.sha256(f"tx{i}".encode()).hexdigest(),
        "broadcast": {"ok": True, "txId": f"0x{i:064x}"},
    }


def key() -> SecretBuffer:
    return derive_hmac_key(SecretBuffer.from_str(KEY_TEXT))


def write_log(path: Path, n: int = N, hmac_key: SecretBuffer | None = None) -> list[dict[str, Any]]:
    with AuditLog(path, hmac_key=hmac_key) as log:
        return [log.append(decision(i)) for i in range(1, n + 1)]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TATUM_KMS_AUDIT")}
    env["HOME"] = str(tmp_path)  # no ~/.tatumrc/.env of the machine's user
    env.update(extra)
    return env


def run_verify(path: Path, tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kms", "audit", "verify", str(path), *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(tmp_path, **env),
        timeout=60,
    )


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# --- the chain -------------------------------------------------------------------------------------------------------


def test_records_carry_seq_time_and_the_hash_of_the_previous_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    written = write_log(path)
    raw = path.read_bytes().splitlines()
    assert len(raw) == N
    assert [r["seq"] for r in written] == list(range(1, N + 1))
    assert written[0]["prev"] == GENESIS_HASH
    for previous, record in zip(raw, written[1:], strict=False):
        assert record["prev"] == hashlib.sha256(previous).hexdigest()
    for line, record in zip(raw, written, strict=True):
        assert json.loads(line) == record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
        assert "hmac" not in record
    assert written[2]["fourEye"] == {"verdict": "approved", "status": 200}
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_clean_log_verifies_in_process_and_via_cli(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    result = verify_file(path)
    assert (result.ok, result.count, result.first_bad) == (True, N, None)
    assert result.last_hash == line_hash(path.read_bytes().splitlines()[-1])
    proc = run_verify(path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["count"] == N and report["hmacChecked"] is False
    assert report["lastHash"] == result.last_hash


def test_empty_log_verifies_with_count_zero(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    assert verify_file(path).ok and verify_file(path).count == 0


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    with AuditLog(path) as log:
        assert log.seq == 3
        record = log.append(decision(4))
    assert record["seq"] == 4
    assert record["prev"] == line_hash(path.read_bytes().splitlines()[2])
    assert verify_file(path).count == 4


def _edit_field(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[2])
    record["broadcast"] = {"ok": True, "txId": "0x" + "ee" * 32}
    lines[2] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    return lines


def _delete_line(lines: list[bytes]) -> list[bytes]:
    del lines[2]
    return lines


def _swap_lines(lines: list[bytes]) -> list[bytes]:
    lines[1], lines[2] = lines[2], lines[1]
    return lines


def _cut_block_from_middle(lines: list[bytes]) -> list[bytes]:
    return lines[:1] + lines[3:]


def _truncate_through_the_middle(lines: list[bytes]) -> list[bytes]:
    # Bytes from the middle of record 3 to the middle of record 4 are gone: two records fused into garbage.
    fused = lines[2][: len(lines[2]) // 2] + lines[3][len(lines[3]) // 2 :]
    return [*lines[:2], fused, *lines[4:]]


def _truncate_final_line(lines: list[bytes]) -> list[bytes]:
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


def _duplicate_key(lines: list[bytes]) -> list[bytes]:
    lines[1] = lines[1].replace(b'{"seq":2,', b'{"seq":2,"seq":2,', 1)
    return lines


TAMPERING = [
    # (name, change, first bad record without the key, first bad record with the key)
    ("edit a field", _edit_field, 4, 3),
    ("delete a line", _delete_line, 3, 3),
    ("swap two lines", _swap_lines, 2, 2),
    ("cut records out of the middle", _cut_block_from_middle, 2, 2),
    ("truncate through the middle", _truncate_through_the_middle, 3, 3),
    ("truncate the final line", _truncate_final_line, N, N),
    ("duplicate a key", _duplicate_key, 2, 2),
]


@pytest.mark.parametrize(("change", "first_bad"), [(t[1], t[2]) for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_cli_reports_the_first_bad_record_and_exits_non_zero(tmp_path: Path, change: Any, first_bad: int) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    path.write_bytes(b"".join(change(lines_of(path))))
    proc = run_verify(path, tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["firstBad"] == first_bad
    assert report["count"] == first_bad - 1
    assert report["reason"].startswith(f"record {first_bad}:")
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert f"record {first_bad}:" in error and "\n" not in error


@pytest.mark.parametrize(("change", "first_bad"), [(t[1], t[3]) for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_with_the_key_the_altered_record_itself_is_named(tmp_path: Path, change: Any, first_bad: int) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, hmac_key=key())
    path.write_bytes(b"".join(change(lines_of(path))))
    result = verify_file(path, key())
    assert (result.ok, result.first_bad) == (False, first_bad)


def test_cli_exit_codes_for_a_missing_file_and_a_password_backend(tmp_path: Path) -> None:
    missing = run_verify(tmp_path / "nope.jsonl", tmp_path)
    assert missing.returncode == 1
    assert "no audit log" in json.loads(missing.stderr)["error"]
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    backend = run_verify(path, tmp_path, "--backend", "env")
    assert backend.returncode == 2
    assert "HMAC key is its own secret" in json.loads(backend.stderr)["error"]
    bad_action = subprocess.run(
        [sys.executable, "-m", "kms", "audit", "repair", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(tmp_path),
        timeout=60,
    )
    assert bad_action.returncode == 2


# --- refusing to extend a broken tail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b'{"seq":7,"time":"2024', b"not json\n", b'{"seq":"x","prev":"00"}\n', b"[1,2]\n"],
    ids=["torn write", "garbage", "bad header", "not an object"],
)
def test_append_refuses_a_file_whose_tail_is_broken(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("ab") as f:
        f.write(tail)
    before = path.read_bytes()
    with pytest.raises(AuditLogError, match="refusing to append") as info:
        AuditLog(path)
    assert "kms audit verify" in str(info.value)
    assert path.read_bytes() == before


def test_append_refuses_a_tail_that_grew_broken_after_opening(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append(decision(1))
        with path.open("ab") as f:
            f.write(b'{"seq":2,"tim')
        with pytest.raises(AuditLogError, match="refusing to append"):
            log.append(decision(2))


def test_append_refuses_a_file_truncated_under_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append(decision(1))
        log.append(decision(2))
        os.truncate(path, 0)
        with pytest.raises(AuditLogError, match="shrank"):
            log.append(decision(3))
    assert path.read_bytes() == b""


def test_keyed_and_unkeyed_records_are_never_mixed(tmp_path: Path) -> None:
    plain, keyed = tmp_path / "plain.jsonl", tmp_path / "keyed.jsonl"
    write_log(plain, 2)
    write_log(keyed, 2, hmac_key=key())
    with pytest.raises(AuditLogError, match="no 'hmac'"):
        AuditLog(plain, hmac_key=key())
    with pytest.raises(AuditLogError, match="no audit HMAC key is configured"):
        AuditLog(keyed)
    other = derive_hmac_key(SecretBuffer.from_str("another key of at least thirty-two characters"))
    with pytest.raises(AuditLogError, match="HMAC does not match"):
        AuditLog(keyed, hmac_key=other)


def test_reserved_and_unserialisable_fields_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        with pytest.raises(AuditLogError, match="set by the audit log"):
            log.append({"seq": 99, "chain": "ETH"})
        with pytest.raises(AuditLogError, match="not JSON"):
            log.append({"chain": "ETH", "when": object()})
        with pytest.raises(AuditLogError, match="not JSON"):
            log.append({"chain": "ETH", "amount": float("nan")})
        assert path.read_bytes() == b""
        assert log.append(decision(1))["seq"] == 1
    assert verify_file(path).count == 1


# --- HMAC ------------------------------------------------------------------------------------------------------------


def _rewrite_chain(path: Path, edit_line: int) -> None:
    """What an attacker who can write the file but lacks the key does: edit, then recompute every later 'prev'."""
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    records[edit_line - 1]["broadcast"] = {"ok": True, "txId": "0x" + "66" * 32}
    prev = GENESIS_HASH
    out = []
    for record in records:
        record["prev"] = prev
        line = json.dumps(record, separators=(",", ":")).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line + b"\n")
    path.write_bytes(b"".join(out))


def test_a_recomputed_chain_passes_without_the_key_and_fails_with_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    written = write_log(path, hmac_key=key())
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["hmac"]) for r in written)
    assert verify_file(path, key()).ok
    _rewrite_chain(path, edit_line=2)
    assert verify_file(path).ok, "without the key a rewritten chain is indistinguishable"
    result = verify_file(path, key())
    assert (result.ok, result.first_bad) == (False, 2)
    assert "HMAC does not match" in result.reason

    proc = run_verify(path, tmp_path, "--hmac-key-env", "MY_AUDIT_KEY", MY_AUDIT_KEY=KEY_TEXT)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["firstBad"] == 2
    proc = run_verify(path, tmp_path, TATUM_KMS_AUDIT_HMAC_KEY=KEY_TEXT)
    assert proc.returncode == 1 and json.loads(proc.stdout)["hmacChecked"] is True
    assert KEY_TEXT not in proc.stdout + proc.stderr


def test_cli_verifies_hmacs_with_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, hmac_key=key())
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY_TEXT + "\n")
    key_file.chmod(0o600)
    proc = run_verify(path, tmp_path, "--hmac-key-file", str(key_file))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) | {"lastHash": None} == {
        "ok": True,
        "count": N,
        "reason": f"{N} records, chain intact",
        "lastHash": None,
        "hmacChecked": True,
    }
    key_file.chmod(0o644)
    proc = run_verify(path, tmp_path, "--hmac-key-file", str(key_file))
    assert proc.returncode == 2 and "chmod 600" in proc.stderr


def test_a_record_without_hmac_fails_when_the_key_is_given(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    result = verify_file(path, key())
    assert (result.ok, result.first_bad) == (False, 1)
    assert "no 'hmac'" in result.reason


def test_without_the_key_a_record_appended_without_hmac_fails(tmp_path: Path) -> None:
    """Issue 15 item 8: earlier records carry HMACs, an appended one (chained correctly) does not."""
    path = tmp_path / "audit.jsonl"
    written = write_log(path, 3, hmac_key=key())
    forged = {"record": "decision", "pendingId": "forged", "seq": 4, "time": written[-1]["time"]}
    forged["prev"] = hashlib.sha256(path.read_bytes().splitlines()[-1]).hexdigest()
    with path.open("ab") as f:
        f.write(json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    result = verify_file(path)
    assert (result.ok, result.first_bad, result.count) == (False, 4, 3)
    assert "appended without the key" in result.reason


def test_without_the_key_a_record_with_hmac_after_plain_ones_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    lines = path.read_bytes().splitlines()
    odd = {"record": "decision", "seq": 3, "time": "x", "prev": hashlib.sha256(lines[-1]).hexdigest(), "hmac": "00"}
    with path.open("ab") as f:
        f.write(json.dumps(odd, separators=(",", ":")).encode() + b"\n")
    assert (verify_file(path).ok, verify_file(path).first_bad) == (False, 3)


def test_key_material_must_be_long_and_configured_once() -> None:
    with pytest.raises(UsageError, match="at least 32"):
        derive_hmac_key(SecretBuffer.from_str("short"))
    with pytest.raises(UsageError, match="not both"):
        hmac_key_from_settings({"TATUM_KMS_AUDIT_HMAC_KEY": KEY_TEXT, "TATUM_KMS_AUDIT_HMAC_KEY_FILE": "/x"})
    assert hmac_key_from_settings({}) is None
    derived = hmac_key_from_settings({"TATUM_KMS_AUDIT_HMAC_KEY": f"  {KEY_TEXT}\n"})
    assert derived is not None and len(derived) == 32
    assert derived == key()
    assert KEY_TEXT.encode() not in derived.bytes()


# --- durability and concurrency --------------------------------------------------------------------------------------


def test_every_append_is_fsynced_and_visible_to_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    log = AuditLog(path)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    reader = (
        "import json, sys; lines = open(sys.argv[1], 'rb').read().splitlines(); "
        "print(len(lines), json.loads(lines[-1])['seq'])"
    )
    try:
        for i in range(1, 4):
            log.append(decision(i))
            assert synced.count(log._fd) == i
            seen = subprocess.run(
                [sys.executable, "-c", reader, str(path)], capture_output=True, text=True, timeout=60, check=True
            )
            assert seen.stdout.split() == [str(i), str(i)]
    finally:
        log.close()


def test_concurrent_threads_keep_one_unbroken_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    threads_n, per_thread = 8, 25
    with AuditLog(path) as log:
        barrier = threading.Barrier(threads_n)

        def worker(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                log.append({"pendingId": f"t{t}-{i}", "chain": "BTC"})

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    result = verify_file(path)
    assert (result.ok, result.count) == (True, threads_n * per_thread)
    pending = {json.loads(line)["pendingId"] for line in path.read_bytes().splitlines()}
    assert len(pending) == threads_n * per_thread


def test_two_processes_appending_to_one_file_do_not_fork_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    script = (
        "import sys; from pathlib import Path; from kms.audit import AuditLog\n"
        "log = AuditLog(Path(sys.argv[1]))\n"
        "for i in range(40): log.append({'pendingId': sys.argv[2] + str(i), 'chain': 'ETH'})\n"
        "log.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name], cwd=REPO) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    result = verify_file(path)
    assert (result.ok, result.count) == (True, 80)
