"""A daemon that starts sealed (prompt backend, no terminal): nothing is polled or signed until `kms unlock`;
`kms seal` wipes the keys and stops signing until the next unlock. Real processes, a real Unix socket."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess, wait_for
from kms.seal import is_sealed
from tests.daemon.test_daemon import PASSWORD, World, eth_pending, sender


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.TransportError:
        return None


def kms(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kms", *args], capture_output=True, text=True, env=env, timeout=60,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def test_sealed_start_unlock_seal_unlock(
    tmp_path: Path, sandbox_process: SandboxProcess, process_admin: SandboxAdmin
) -> None:
    world = World(tmp_path, sandbox_process)
    sid, address = world.wallets[0]
    socket_path = tmp_path / "run" / "unseal.sock"
    metrics_port = _free_port()
    sealed_env = {k: v for k, v in world.env.items() if k != "TATUM_KMS_PASSWORD"}
    process_admin.enqueue(eth_pending("first", sid))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "kms", "daemon", *world.args("--period", "0.2"), "--backend", "prompt",
         "--socket", str(socket_path), "--metrics-port", str(metrics_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=sealed_env,
        start_new_session=True,  # no controlling terminal: the prompt backend cannot ask, so the daemon starts sealed
    )  # fmt: skip
    try:
        assert wait_for(socket_path.exists, 30)
        assert is_sealed(socket_path)
        assert process_admin.state()["polls"] == []  # sealed: not even a poll
        assert wait_for(lambda: _status(metrics_port, "/healthz") == 200, 30)
        assert _status(metrics_port, "/readyz") == 503  # alive, but not ready while sealed

        wrong = kms(["unlock", "--socket", str(socket_path), "--backend", "env"],
                    {**sealed_env, "TATUM_KMS_PASSWORD": "not the password"})  # fmt: skip
        assert wrong.returncode != 0 and "wrong password" in wrong.stderr
        assert json.loads(wrong.stderr) == {"error": "wrong password; still sealed"}  # said once
        assert is_sealed(socket_path)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "kms_unlock_failures_total 1.0" in metrics

        unlock_env = {**sealed_env, "TATUM_KMS_PASSWORD": PASSWORD}
        opened = kms(["unlock", "--socket", str(socket_path), "--backend", "env"], unlock_env)
        assert opened.returncode == 0, opened.stderr
        assert json.loads(opened.stdout) == {"status": "unsealed"}
        assert PASSWORD not in opened.stdout + opened.stderr
        assert wait_for(lambda: [b["signatureId"] for b in process_admin.state()["broadcasts"]] == ["first"], 30)
        assert wait_for(lambda: _status(metrics_port, "/readyz") == 200, 30)

        closed = kms(["seal", "--socket", str(socket_path)], sealed_env)
        assert closed.returncode == 0, closed.stderr
        assert json.loads(closed.stdout) == {"status": "sealed"}
        assert is_sealed(socket_path)
        assert _status(metrics_port, "/readyz") == 503
        process_admin.enqueue(eth_pending("second", sid, value=5))
        polls_when_sealed = len(process_admin.state()["polls"])
        time.sleep(1.0)  # a window in which a loop that ignored the seal would have polled several times
        assert len(process_admin.state()["polls"]) == polls_when_sealed
        assert [b["signatureId"] for b in process_admin.state()["broadcasts"]] == ["first"]

        again = kms(["unlock", "--socket", str(socket_path), "--backend", "env"], unlock_env)
        assert again.returncode == 0, again.stderr
        assert wait_for(lambda: len(process_admin.state()["broadcasts"]) == 2, 30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "sealed: waiting for the store password" in err
    assert "unlock failed: wrong password from uid" in err  # the failed attempt is logged, its password is not
    assert PASSWORD not in err and "not the password" not in err
    assert not socket_path.exists()  # the gate removed its socket
    assert all(sender(b["txData"]) == address for b in process_admin.state()["broadcasts"])
