"""Sealed start end to end with real processes: a gate in one process, `unlock` typed through a pseudo-terminal.

The operator's side is tests/servers/unlock_with_prompt.py, run on the slave side of a pty so the prompt provider
reads /dev/tty with echo off, exactly as `kms unlock` at a terminal would.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.seal import is_sealed

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "tests" / "servers" / "unlock_with_prompt.py"
PASSWORD = "correct horse battery staple"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

GATE = textwrap.dedent(
    """
    import sys, time
    from kms.seal import SealedGate

    def verify(password):
        return password.bytes() == b"correct horse battery staple"

    def on_seal():
        print("SEALED", flush=True)

    with SealedGate(sys.argv[1], verify, on_seal) as gate:
        print("READY", flush=True)
        while True:
            gate.wait_unsealed()
            print("UNSEALED", flush=True)
            while not gate.sealed:
                time.sleep(0.05)
    """
)


class GateProcess:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.process = subprocess.Popen(
            [sys.executable, "-c", GATE, str(socket_path)], stdout=subprocess.PIPE, text=True, env=ENV, cwd=REPO
        )

    def next_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateProcess]:
    running = GateProcess(tmp_path / "run" / "unseal.sock")
    try:
        assert running.next_line() == "READY"
        yield running
    finally:
        running.process.kill()
        running.process.wait()


def unlock_at_terminal(socket_path: Path, typed: str) -> tuple[int, str]:
    """Run the unlock helper on a fresh pty, type ``typed`` at its prompt, return (exit code, everything shown)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty's slave side
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, str(HELPER), str(socket_path)], ENV)  # noqa: S606
    shown = b""
    deadline = time.monotonic() + 60
    typed_yet = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child has exited and closed the slave
                break
            if not chunk:
                break
            shown += chunk
            if not typed_yet and b"Enter password to access wallet store:" in shown:
                os.write(master, typed.encode() + b"\n")
                typed_yet = True
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    assert typed_yet, shown
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_wrong_password_keeps_it_sealed_then_the_right_one_unseals(gate: GateProcess) -> None:
    code, shown = unlock_at_terminal(gate.socket_path, "Tr0ub4dor&3")
    assert code == 3
    assert "wrong password" in shown
    assert "Tr0ub4dor&3" not in shown  # echo was off
    assert is_sealed(gate.socket_path)

    code, shown = unlock_at_terminal(gate.socket_path, PASSWORD)
    assert code == 0, shown
    assert "unsealed" in shown and PASSWORD not in shown
    assert gate.next_line() == "UNSEALED"
    assert not is_sealed(gate.socket_path)


def test_seal_command_reseals(gate: GateProcess) -> None:
    code, _ = unlock_at_terminal(gate.socket_path, PASSWORD)
    assert code == 0 and gate.next_line() == "UNSEALED"
    sealer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kms.seal import seal; print(seal(sys.argv[1]))",
            str(gate.socket_path),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert sealer.stdout.strip() == "sealed"
    assert gate.next_line() == "SEALED"
    assert is_sealed(gate.socket_path)
    code, _ = unlock_at_terminal(gate.socket_path, PASSWORD)
    assert code == 0 and gate.next_line() == "UNSEALED"


def test_unlock_without_a_daemon_is_reported(tmp_path: Path) -> None:
    code, shown = unlock_at_terminal(tmp_path / "nothing.sock", PASSWORD)
    assert code == 1
    assert "no unseal socket at" in shown


def test_prompt_without_a_terminal_names_the_other_backends() -> None:
    result = subprocess.run(
        [sys.executable, str(HELPER), "/nonexistent/unseal.sock"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=60,
        start_new_session=True,  # no controlling terminal, so /dev/tty cannot be opened
        check=False,
    )
    assert result.returncode == 1
    message = result.stdout.strip()
    assert message.startswith("prompt: no terminal to ask for the password")
    for backend in ("env", "vgs", "azure", "aws", "vault", "kms unlock"):
        assert backend in message
