"""`kms demo`: the whole job offline, as a real process (with proxies pointing nowhere: nothing may leave loopback)."""

from __future__ import annotations

import os
import subprocess
import sys

from kms.chains import get_chain, supported_codes
from kms.demo import REFUSED_ID, run_demo


def test_kms_demo_signs_verifies_and_refuses_offline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "HOME": str(tmp_path), "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "ALL_PROXY": "http://127.0.0.1:9"}  # fmt: skip
    env.pop("TATUM_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "kms", "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "demo finished: all good" in out
    signable = [code for code in supported_codes() if get_chain(code).signer is not None]
    assert signable, "the registry has no chain that can sign"
    for code in signable:
        assert f"demo-{code.lower()}" in out
    assert out.count("signed+verified") == len(signable)
    assert REFUSED_ID in out and "refused" in out
    assert list(tmp_path.iterdir()) == []  # nothing written to HOME


def test_run_demo_lines() -> None:
    said: list[str] = []
    lines = run_demo(said.append)
    assert lines and all(line.ok for line in lines), [(line.pending_id, line.detail) for line in lines]
    refused = [line for line in lines if line.pending_id == REFUSED_ID]
    assert len(refused) == 1 and refused[0].outcome == "refused" and "HTTP 403" in refused[0].detail
    assert any("real Argon2id KDF" in text for text in said)
