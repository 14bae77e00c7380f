"""Issue 15 item 1: a deeply nested JSON (300 KB) from outside must give a clean error, never kill the process.

Importing the EVM signer pulls in py_ecc, which used to raise the recursion limit to 100,000; with that limit Python's
JSON parser overflowed the C stack (SIGSEGV) on ``'[' * 150000``. Run in a fresh interpreter, as the daemon is, so
nothing the test process imported changes the outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from kms.chains.evm import evm_signer  # the EVM signer, imported first as the daemon's warm-up does
    from kms.errors import SigningError
    from kms.api import PendingTransaction
    from kms.chains import get_chain
    from kms.tatum import MalformedResponseError, RetryPolicy, TatumClient
    from tests.hostile_servers import Answer, hostile_server

    print("recursion limit", sys.getrecursionlimit(), flush=True)
    import eth_account  # noqa: F401 - py_ecc raises the recursion limit: the bounded parser must hold even then
    BOMB = "[" * 150_000 + "]" * 150_000
    ITEM = {"id": "p1", "chain": "ETH", "hashes": ["w1"], "serializedTransaction": BOMB}

    def answer(method, path):
        if path.endswith("/ETH"):
            return Answer(body=json.dumps([ITEM]).encode())
        return Answer(body=BOMB.encode())

    with hostile_server(answer) as server, TatumClient(server.url, "key", retry=RetryPolicy.none()) as client:
        try:
            client.pending("BTC", ["w1"])
            print("pending list: accepted", flush=True)
        except MalformedResponseError as exc:
            print("pending list: refused:", exc, flush=True)
        pending = client.pending("ETH", ["w1"]).transactions[0]
    try:
        evm_signer("ETH").sign(pending, [], True, None)
        print("evm: signed", flush=True)
    except SigningError as exc:
        print("evm: refused:", exc, flush=True)
    for code, serialized in (("BTC", BOMB), ("BCH", "0100000000000000000000:" + BOMB)):
        bombed = PendingTransaction(id="p2", chain=code, serialized_transaction=serialized, hashes=("w1",))
        try:
            get_chain(code).signer.sign(bombed, [], True, None)
            print(code + ": signed", flush=True)
        except SigningError as exc:
            print(code + ": refused:", exc, flush=True)
    """
)


def test_nested_json_bombs_are_refused_cleanly_after_the_evm_signer_is_loaded() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}; stdout: {done.stdout[-500:]} stderr: {done.stderr[-500:]}"
    lines = done.stdout.splitlines()
    assert int(lines[0].split()[-1]) <= 10_000, lines[0]
    assert "pending list: refused:" in done.stdout and "nested too deeply" in done.stdout
    assert "evm: refused:" in done.stdout
    assert "BTC: refused:" in done.stdout
    assert "BCH: refused:" in done.stdout
