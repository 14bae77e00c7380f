"""Running the real `kms` CLI in a subprocess, with an isolated HOME and the explicit test KDF."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error(self) -> str:
        lines = self.stderr.strip().splitlines()
        payload = json.loads(lines[-1])
        return str(payload["error"])


def kms_env(home: Path, password: str | None = PASSWORD, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "KMS_"))}
    env["HOME"] = str(home)
    env["KMS_INSECURE_TEST_KDF"] = "1"
    if password is not None:
        env["TATUM_KMS_PASSWORD"] = password
    env.update(extra)
    return env


def run_kms(
    args: list[str],
    home: Path,
    *,
    stdin: str | None = None,
    password: str | None = PASSWORD,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "kms", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env if env is not None else kms_env(home, password),
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under a directory and the SHA-256 of its bytes, to prove a command left it untouched."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
