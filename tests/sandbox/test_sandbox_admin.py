"""The sandbox as a new operator meets it (issue 17): its printed hint starts a daemon as given, its admin API is
documented in `kms sandbox --help`, and bad admin bodies are refused with a one-line reason, changing nothing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kms.sandbox import Sandbox, SandboxAdmin
from kms.sandbox.admin_api import APPROVAL_KEYS, CONFIG_KEYS, PENDING_REQUIRED, PENDING_WALLETS
from tests.cli_helpers import kms_env, run_kms
from tests.conftest import REPO

GOOD = {"id": "p1", "chain": "ETH", "serializedTransaction": "{}", "hashes": ["w"]}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with Sandbox() as sandbox, httpx.Client(base_url=sandbox.url, trust_env=False, timeout=10) as client:
        yield client


def test_the_printed_hint_starts_a_daemon_as_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_kms(["generatemanagedwallet", "ETH", "--testnet"], home).code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "kms", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        announced = json.loads(proc.stdout.readline())
        words = shlex.split(announced["hint"])
        settings = dict(word.split("=", 1) for word in words if _is_assignment(word))
        command = [word for word in words if not _is_assignment(word)]
        assert command[0] == "kms" and settings["TATUM_API_URL"] == announced["url"]
        done = subprocess.run(
            [sys.executable, "-m", "kms", *command[1:], "--runOnce"],
            capture_output=True,
            text=True,
            env={**kms_env(home), **settings, "PYTHONPATH": str(REPO)},
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        with SandboxAdmin(announced["url"]) as admin:
            assert admin.state()["polls"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _is_assignment(word: str) -> bool:
    return "=" in word and not word.startswith("-")


def test_sandbox_help_documents_every_admin_body_field(home_dir: Path) -> None:
    shown = run_kms(["sandbox", "--help"], home_dir).stdout
    for endpoint in ("POST /_sandbox/pending", "POST /_sandbox/config", "GET /_sandbox/state", "POST /_sandbox/reset"):
        assert endpoint in shown
    for name in (*PENDING_REQUIRED, *PENDING_WALLETS, *CONFIG_KEYS, *APPROVAL_KEYS):
        assert f'"{name}"' in shown, name


@pytest.fixture
def home_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({k: v for k, v in GOOD.items() if k != "id"}, "'id' is required"),
        ({**GOOD, "id": ""}, "'id' is required"),
        ({k: v for k, v in GOOD.items() if k != "serializedTransaction"}, "'serializedTransaction' is required"),
        ({**GOOD, "serializedTransaction": 7}, "'serializedTransaction' is required"),
        ({k: v for k, v in GOOD.items() if k != "chain"}, "'chain' is required"),
        ({k: v for k, v in GOOD.items() if k != "hashes"}, "name its wallets in 'hashes' or 'signatures'"),
        ({**GOOD, "hashes": "w"}, "'hashes' must be a list"),
        ({**GOOD, "signatures": ["w"]}, "'signatures' must be a list"),
        ([GOOD, {"chain": "ETH", "hashes": ["w"]}], "pending transaction 1: 'id' is required"),
        ([GOOD, GOOD], "the same 'id' appears twice"),
        ([], "non-empty list"),
        ("not an object", "expected a JSON object"),
    ],
)
def test_bad_pending_entries_are_refused_and_nothing_is_queued(http: httpx.Client, body: Any, reason: str) -> None:
    answer = http.post("/_sandbox/pending", json=body)
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert reason in message and "\n" not in message
    assert http.get("/_sandbox/state").json()["pending"] == []


def test_a_good_pending_entry_is_queued(http: httpx.Client) -> None:
    answer = http.post("/_sandbox/pending", json=GOOD)
    assert answer.status_code == 200 and answer.json() == {"ids": ["p1"]}
    with_signatures = {**GOOD, "id": "p2", "hashes": None, "signatures": [{"id": "m", "index": 1}]}
    assert http.post("/_sandbox/pending", json=with_signatures).json() == {"ids": ["p2"]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"latencey": 1}, "unknown setting latencey"),
        ({"latency": -1}, "'latency' must be a number"),
        ({"latency": "fast"}, "'latency' must be a number"),
        ({"approval": "deny"}, "'approval' must be an object"),
        ({"approval": {"defualt": "deny"}}, "unknown approval setting defualt"),
        ({"approval": {"ids": ["p1"]}}, "'approval.ids' must be an object"),
        ({"faults": {"kind": "status"}}, "'faults' must be a list"),
        ({"fee": "1"}, "'fee' must be an object"),
        ({"estimateGas": "21000"}, "'estimateGas' must be a whole number"),
        ({"apiKey": 5}, "'apiKey' must be a string or null"),
        (["latency", 1], "expected a JSON object"),
    ],
)
def test_bad_config_bodies_are_refused_and_change_nothing(http: httpx.Client, body: Any, reason: str) -> None:
    before = http.get("/_sandbox/state").json()
    answer = http.post("/_sandbox/config", json=body)
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert reason in message and "\n" not in message
    assert http.get("/_sandbox/state").json() == before


def test_unchecked_queues_a_malformed_entry_on_purpose(http: httpx.Client) -> None:
    answer = http.post("/_sandbox/pending", params={"unchecked": "1"}, json={"chain": "ETH", "hashes": ["w"]})
    assert answer.status_code == 200
    (queued,) = http.get("/_sandbox/state").json()["pending"]
    assert queued["id"] == answer.json()["ids"][0] and "serializedTransaction" not in queued
