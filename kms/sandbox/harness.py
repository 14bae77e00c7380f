"""Running ``kms sandbox`` and ``kms daemon`` as real subprocesses (tests, the bench, staging scripts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kms.sandbox.admin import SandboxAdmin


class SandboxProcess:
    """``python -m kms sandbox`` on a free port; ``url`` / ``approval_url`` / ``admin`` once started."""

    def __init__(self, *extra_args: str, env: Mapping[str, str] | None = None, python: str = sys.executable) -> None:
        self._cmd = [python, "-m", "kms", "sandbox", "--port", "0", *extra_args]
        self._env = dict(env) if env is not None else dict(os.environ)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.approval_url = ""
        self.admin: SandboxAdmin | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 20.0) -> SandboxProcess:
        self.proc = subprocess.Popen(
            self._cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self._env
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.strip() or self.proc.poll() is not None:
                break
        if not line.strip():
            self.stop()
            raise RuntimeError("the sandbox did not start")
        info = self.info = json.loads(line)
        self.url = info["url"]
        self.approval_url = info["approvalUrl"]
        self.admin = SandboxAdmin(self.url)
        return self

    def stop(self) -> int | None:
        if self.admin is not None:
            self.admin.close()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def daemon_env(
    sandbox_url: str, password: str, home: Path, *, api_key: str = "test-api-key", extra: Mapping[str, str] = ()
) -> dict[str, str]:
    """An environment for a daemon subprocess: the sandbox as the Tatum API, the password from the env backend,
    a private HOME (no ~/.tatumrc/.env of the user's), and the cheap test KDF allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}
    env.update(
        {
            "HOME": str(home),
            "TATUM_API_URL": sandbox_url,
            "TATUM_API_KEY": api_key,
            "TATUM_KMS_PASSWORD": password,
            "KMS_INSECURE_TEST_KDF": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(dict(extra))
    return env


def start_daemon(
    args: Sequence[str], env: Mapping[str, str], python: str = sys.executable, stdout: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [python, "-m", "kms", "daemon", *args], stdout=stdout, stderr=subprocess.PIPE, text=True, env=dict(env)
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
