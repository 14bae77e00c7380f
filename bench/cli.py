"""CLI mode at scale: `kms generatemanagedprivatekeybatch ETH 25000` and a `getaddress` on the filled store.

Run: .venv/bin/python bench/cli.py [--count N]
Real processes, the real default KDF (Argon2id, 64 MiB), a throwaway HOME. Prints wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kms", *args], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=25_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "KMS_"))}
        env.update(HOME=home, TATUM_KMS_PASSWORD="bench-password-not-secret")
        store = Path(home) / ".tatumrc" / "wallet.dat"
        seconds, out = _run(["generatemanagedprivatekeybatch", "ETH", str(options.count)], env)
        lines = out.splitlines()
        print(
            f"generatemanagedprivatekeybatch ETH {options.count}: {seconds:.1f} s "
            f"({len(lines) / seconds:.0f} keys/s, store {store.stat().st_size / 1e6:.1f} MB)"
        )
        signature_id = json.loads(lines[len(lines) // 2])["signatureId"]
        timings = [_run(["getaddress", signature_id, "0"], env)[0] for _ in range(5)]
        print(
            f"getaddress on a store of {len(lines)} wallets: median {sorted(timings)[2] * 1000:.0f} ms per command "
            "(process start + one Argon2id unlock + one decryption)"
        )
        timings = [_run(["checkconfig"], env)[0] for _ in range(5)]
        print(f"process start without unlock (checkconfig): median {sorted(timings)[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
