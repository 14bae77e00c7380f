"""The backup commands in ops/README.md, run for real: against a live kms store (WAL mode, another connection open),
they produce a private, self-contained copy that kms opens with the same password and the same wallets."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "ops" / "README.md"


def backup_snippets() -> list[str]:
    """The Python programs of the README's `python -c "..."` backup commands (the pod one and the host one)."""
    snippets = re.findall(r'python -c "(import os, sqlite3;[^"]*)"', README.read_text())
    assert len(snippets) == 2, "expected the pod and the host backup command in ops/README.md"
    return snippets


def _kms(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    password = tmp_path / "password"
    if not password.exists():
        password.write_bytes(b"a long enough store password\n")
        password.chmod(stat.S_IRUSR)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "TATUM_KMS_PASSWORD_FILE": str(password),
        "KMS_INSECURE_TEST_KDF": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "kms", *args, "--backend", "env"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("which", ["pod", "host"])
def test_readme_backup_command_copies_a_live_store(tmp_path: Path, which: str) -> None:
    store = tmp_path / "wallet.dat"
    created = _kms(tmp_path, "generatemanagedwallet", "ETH", "--path", str(store))
    if created.returncode != 0:
        pytest.skip(f"kms cannot create a store here: {created.stderr.strip()[-200:]}")
    signature_id = json.loads(created.stdout)["signatureId"]
    address = json.loads(_kms(tmp_path, "getaddress", signature_id, "7", "--path", str(store)).stdout)["address"]

    snippet = backup_snippets()[0 if which == "pod" else 1]
    backup = tmp_path / "backup" / "wallet-backup.dat"
    backup.parent.mkdir()
    program = re.sub(r"/var/lib/kms/wallet\.dat", str(store), snippet)
    program = re.sub(r"/(tmp|var/lib/kms)/wallet-backup\.dat", str(backup), program)
    assert program != snippet

    live = sqlite3.connect(store)  # the daemon's connection, open throughout
    try:
        assert live.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
    finally:
        live.close()

    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert (
        not backup.with_name(backup.name + "-wal").exists()
        or backup.with_name(backup.name + "-wal").stat().st_size == 0
    )
    # The copy stands alone: move it away from the original and open it.
    restored = tmp_path / "restored" / "wallet.dat"
    restored.parent.mkdir()
    backup.rename(restored)
    again = _kms(tmp_path, "getaddress", signature_id, "7", "--path", str(restored))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["address"] == address
