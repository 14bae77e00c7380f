"""The canary test: plant secrets (mnemonics, private keys, passwords, an API key, the audit HMAC key), run every CLI
command and a full daemon cycle with failures, and search everything kms wrote (stdout, stderr, the audit log, the
/metrics, /healthz and /readyz answers) for them.

Only the commands whose job is to print a secret (generatewallet, getmanagedwallet, getprivatekey, export) may print
that secret, and only on stdout. Everything else is clean, and stderr always is.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bip_utils import Bip39MnemonicGenerator, Bip39WordsNum

from kms.masking import mask_api_key
from tests.cli_helpers import Result, kms_env, run_kms

TOKEN = secrets.token_hex(6)
PASSWORD = f"canary-password-{TOKEN}"
WRONG_PASSWORD = f"canary-wrong-password-{TOKEN}"
API_KEY = f"t-canaryapikey-{TOKEN}-0123456789abcdef"
HMAC_KEY = f"canary-audit-hmac-key-{TOKEN}-{secrets.token_hex(16)}"
MNEMONIC = str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24))
PRIVATE_KEY = "0x" + secrets.token_hex(32)
PRIVATE_KEY_TAMPERED = "0x" + secrets.token_hex(32)
BODY_MARKER = f"txbodycanary{TOKEN}"
CHAIN_ID = 11155111
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


@dataclass(frozen=True)
class Canary:
    name: str
    value: str

    def found_in(self, text: str) -> bool:
        words = self.value.split()
        if len(words) >= 12:
            # Any five consecutive words, whatever separates them (spaces, JSON list, newlines).
            flat = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
            return any(f" {' '.join(words[i : i + 5])} " in flat for i in range(len(words) - 4))
        if re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", self.value):
            return self.value.lower().removeprefix("0x") in text.lower()
        return self.value in text


@dataclass
class World:
    home: Path
    env: dict[str, str]
    canaries: dict[str, Canary] = field(default_factory=dict)
    runs: list[tuple[str, Result, frozenset[str]]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    def plant(self, name: str, value: str) -> None:
        self.canaries[name] = Canary(name, value)

    def run(
        self, label: str, args: list[str], *, allowed: set[str] | frozenset[str] = frozenset(), **kwargs: Any
    ) -> Result:
        env = kwargs.pop("env", self.env)
        result = run_kms(args, self.home, env=env, **kwargs)
        self.runs.append((label, result, frozenset(allowed)))
        return result

    def leaks(self, text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
        return [name for name, canary in self.canaries.items() if name not in allowed and canary.found_in(text)]


def _secrets_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [str(v) for k, v in value.items() if k in ("mnemonic", "privateKey", "secret") and v]
        return found + [s for v in value.values() for s in _secrets_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secrets_in(v)]
    return []


def _tamper(store: Path, signature_id: str) -> None:
    with sqlite3.connect(store) as db:
        (ciphertext,) = db.execute("SELECT ciphertext FROM wallets WHERE signature_id = ?", (signature_id,)).fetchone()
        flipped = bytearray(ciphertext)
        flipped[len(flipped) // 2] ^= 0x01
        db.execute("UPDATE wallets SET ciphertext = ? WHERE signature_id = ?", (bytes(flipped), signature_id))
    db.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("canary-home")
    env = kms_env(home, PASSWORD, TATUM_API_KEY=API_KEY, TATUM_KMS_AUDIT_HMAC_KEY=HMAC_KEY)
    w = World(home, env)
    for name, value in [
        ("password", PASSWORD),
        ("wrong password", WRONG_PASSWORD),
        ("api key", API_KEY),
        ("audit HMAC key", HMAC_KEY),
        ("stored mnemonic", MNEMONIC),
        ("stored private key", PRIVATE_KEY),
        ("tampered private key", PRIVATE_KEY_TAMPERED),
    ]:
        w.plant(name, value)

    # Commands that create secrets print them: each such secret is a canary for every other command.
    generated = w.run("generatewallet ETH", ["generatewallet", "ETH"], allowed={"generated ETH"})
    assert generated.code == 0, generated.stderr
    w.plant("generated ETH", generated.json()["mnemonic"])

    r = w.run("storemanagedwallet", ["storemanagedwallet", "ETH", "--testnet"], stdin=MNEMONIC + "\n")
    assert r.code == 0, r.stderr
    w.ids["mnemonic"] = r.json()["signatureId"]
    r = w.run("storemanagedprivatekey", ["storemanagedprivatekey", "ETH", "--testnet"], stdin=PRIVATE_KEY + "\n")
    assert r.code == 0, r.stderr
    w.ids["key"] = r.json()["signatureId"]
    r = w.run("storemanagedprivatekey (2)", ["storemanagedprivatekey", "ETH", "--testnet"], stdin=PRIVATE_KEY_TAMPERED)
    assert r.code == 0, r.stderr
    w.ids["tampered"] = r.json()["signatureId"]
    r = w.run("generatemanagedwallet", ["generatemanagedwallet", "BTC"])
    assert r.code == 0, r.stderr
    w.ids["btc"] = r.json()["signatureId"]
    r = w.run("generatemanagedprivatekeybatch", ["generatemanagedprivatekeybatch", "ETH", "3", "--testnet"])
    assert r.code == 0, r.stderr
    batch = [json.loads(line)["signatureId"] for line in r.stdout.splitlines() if line.strip()]
    assert len(batch) == 3

    exported = w.run("export", ["export"], allowed=set())
    assert exported.code == 0, exported.stderr
    dump = exported.json()
    for signature_id, wallet in dump.items():
        for value in _secrets_in(wallet):
            if value not in (MNEMONIC, PRIVATE_KEY, PRIVATE_KEY_TAMPERED):
                w.plant(f"generated secret of {signature_id}", value)
    assert MNEMONIC in exported.stdout and PRIVATE_KEY in exported.stdout
    store_secrets = {n for n in w.canaries if n.startswith("generated secret") or n.startswith("stored")}
    store_secrets |= {"tampered private key"}
    w.runs[-1] = ("export", exported, frozenset(store_secrets))

    r = w.run("getmanagedwallet mnemonic", ["getmanagedwallet", w.ids["mnemonic"]], allowed={"stored mnemonic"})
    assert r.code == 0 and r.json()["mnemonic"] == MNEMONIC, r.stderr
    r = w.run("getmanagedwallet key", ["getmanagedwallet", w.ids["key"]], allowed={"stored private key"})
    assert r.code == 0, r.stderr
    btc_secret = f"generated secret of {w.ids['btc']}"
    r = w.run("getmanagedwallet BTC", ["getmanagedwallet", w.ids["btc"]], allowed={btc_secret})
    assert r.code == 0, r.stderr

    r = w.run("getprivatekey", ["getprivatekey", w.ids["mnemonic"], "1", "--testnet"], allowed={"derived key 1"})
    assert r.code == 0, r.stderr
    w.plant("derived key 1", r.json()["privateKey"])
    r = w.run("getprivatekey BTC", ["getprivatekey", w.ids["btc"], "0"], allowed={"derived BTC key 0"})
    assert r.code == 0, r.stderr
    w.plant("derived BTC key 0", r.json()["privateKey"])

    r = w.run("getaddress", ["getaddress", w.ids["mnemonic"], "1", "--testnet"])
    assert r.code == 0, r.stderr
    w.ids["address 1"] = r.json()["address"]
    r = w.run("checkconfig", ["checkconfig"])
    assert r.code == 0, r.stderr
    assert mask_api_key(API_KEY) in r.stdout, "checkconfig shows the API key as upstream's mask"
    r = w.run("report", ["report"])
    assert r.code == 0, r.stderr
    r = w.run("report IDS", ["report", f"{w.ids['mnemonic']},{w.ids['key']},{w.ids['btc']}"])
    assert r.code == 0, r.stderr
    r = w.run("removewallet", ["removewallet", batch[0]])
    assert r.code == 0, r.stderr

    # Failures: a wrong password, bad input that contains secret-like text, a tampered store.
    wrong_env = {**env, "TATUM_KMS_PASSWORD": WRONG_PASSWORD}
    r = w.run("wrong password", ["getmanagedwallet", w.ids["mnemonic"]], env=wrong_env)
    assert r.code != 0
    r = w.run("wrong password export", ["export"], env=wrong_env)
    assert r.code != 0
    bad_checksum = " ".join([*MNEMONIC.split()[:-1], "zoo" if MNEMONIC.split()[-1] != "zoo" else "abandon"])
    r = w.run("bad mnemonic", ["storemanagedwallet", "ETH"], stdin=bad_checksum + "\n")
    assert r.code != 0
    r = w.run("bad key", ["storemanagedprivatekey", "ETH"], stdin=PRIVATE_KEY[:-2] + "zz\n")
    assert r.code != 0
    store = home / ".tatumrc" / "wallet.dat"
    tampered = home / "tampered.dat"
    shutil.copyfile(store, tampered)
    _tamper(tampered, w.ids["mnemonic"])
    r = w.run("tampered getmanagedwallet", ["getmanagedwallet", w.ids["mnemonic"], "--path", str(tampered)])
    assert r.code != 0
    r = w.run("tampered getprivatekey", ["getprivatekey", w.ids["mnemonic"], "1", "--path", str(tampered)])
    assert r.code != 0
    r = w.run("tampered export", ["export", "--path", str(tampered)])
    assert r.code != 0
    return w


def test_every_cli_command_keeps_its_secrets(world: World) -> None:
    problems = []
    for label, result, allowed in world.runs:
        for name in world.leaks(result.stderr):
            problems.append(f"{label}: {name} on stderr")
        for name in world.leaks(result.stdout, allowed):
            problems.append(f"{label}: {name} on stdout")
    assert not problems, problems
    labels = [label for label, _, _ in world.runs]
    for expected in ("generatewallet ETH", "export", "checkconfig", "report", "removewallet", "wrong password"):
        assert expected in labels


def test_the_commands_that_print_secrets_print_them(world: World) -> None:
    # Guards against a vacuous pass: the canaries are really there when a command is meant to print them.
    printed = {label: result for label, result, _ in world.runs}
    assert world.canaries["stored mnemonic"].found_in(printed["getmanagedwallet mnemonic"].stdout)
    assert world.canaries["stored private key"].found_in(printed["getmanagedwallet key"].stdout)
    assert world.canaries["derived key 1"].found_in(printed["getprivatekey"].stdout)
    assert world.canaries["generated ETH"].found_in(printed["generatewallet ETH"].stdout)
    failures = [printed[k] for k in ("wrong password", "tampered getmanagedwallet", "bad mnemonic", "bad key")]
    for result in failures:
        error = result.error()
        assert error and "\n" not in error


# --------------------------------------------------------------------------------------------- the daemon cycle


def _daemon_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "kms", "sandbox", "--help"], capture_output=True, text=True, timeout=60
    )
    daemon = subprocess.run(
        [sys.executable, "-m", "kms", "daemon", "--help"], capture_output=True, text=True, timeout=60
    )
    return probe.returncode == 0 and daemon.returncode == 0 and "--audit-log" in daemon.stdout


@dataclass
class DaemonRun:
    stdout: str
    stderr: str
    code: int
    audit: str
    endpoints: dict[str, httpx.Response]
    sandbox_state: dict[str, Any]
    ids: dict[str, str]
    verify: subprocess.CompletedProcess[str] | None = None
    extra_runs: list[tuple[str, Result]] = field(default_factory=list)


def _tx(nonce: int, data: str = "") -> str:
    tx: dict[str, Any] = {"to": RECIPIENT, "value": "1000", "gasPrice": "20000000000", "gas": "21000"}
    tx |= {"nonce": nonce, "chainId": CHAIN_ID}
    if data:
        tx["data"] = data
    return json.dumps(tx)


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _audit_pending_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text().splitlines():
        try:
            ids.add(json.loads(line).get("pendingId"))
        except ValueError:
            continue
    return ids


@pytest.fixture(scope="module")
def daemon_run(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonRun]:
    if not _daemon_available():
        pytest.skip("daemon not landed")
    from kms.sandbox.admin import SandboxAdmin

    work = tmp_path_factory.mktemp("canary-daemon")
    store = world.home / ".tatumrc" / "wallet.dat"
    _tamper(store, world.ids["tampered"])

    sandbox_out = (work / "sandbox.out").open("w+")
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "kms", "sandbox"],
        stdout=sandbox_out,
        stderr=subprocess.DEVNULL,
        env=world.env,
    )
    try:
        _wait_for(lambda: (work / "sandbox.out").read_text().strip() != "", 30, "the sandbox to start")
        announced = json.loads((work / "sandbox.out").read_text().splitlines()[0])
        url, approval_url = announced["url"], announced["approvalUrl"]
        ids = {
            "ok key": f"ok-key-{TOKEN}",
            "ok mnemonic": f"ok-mnemonic-{TOKEN}",
            "refused": f"refused-{TOKEN}",
            "unavailable": f"unavailable-{TOKEN}",
            "broadcast fails": f"broadcast-fails-{TOKEN}",
            "tampered": f"tampered-{TOKEN}",
            "malformed": f"malformed-{TOKEN}",
        }
        key_id, mnemonic_id = world.ids["key"], world.ids["mnemonic"]
        with SandboxAdmin(url) as admin:
            admin.configure(
                approval={"ids": {ids["refused"]: "deny", ids["unavailable"]: "error"}},
                faults=[
                    {
                        "kind": "status",
                        "path": "/v3/ethereum/broadcast",
                        "signatureId": ids["broadcast fails"],
                        "status": 400,
                        "times": -1,
                    }
                ],
            )
            admin.enqueue(
                [
                    {"id": ids["ok key"], "chain": "ETH", "serializedTransaction": _tx(1), "hashes": [key_id]},
                    {
                        "id": ids["ok mnemonic"],
                        "chain": "ETH",
                        "serializedTransaction": _tx(2),
                        "hashes": [mnemonic_id],
                        "index": 1,
                    },
                    {"id": ids["refused"], "chain": "ETH", "serializedTransaction": _tx(3), "hashes": [key_id]},
                    {"id": ids["unavailable"], "chain": "ETH", "serializedTransaction": _tx(4), "hashes": [key_id]},
                    {"id": ids["broadcast fails"], "chain": "ETH", "serializedTransaction": _tx(5), "hashes": [key_id]},
                    {
                        "id": ids["tampered"],
                        "chain": "ETH",
                        "serializedTransaction": _tx(6),
                        "hashes": [world.ids["tampered"]],
                    },
                    {
                        "id": ids["malformed"],
                        "chain": "ETH",
                        "serializedTransaction": "{not json " + BODY_MARKER,
                        "hashes": [key_id],
                    },
                ]
            )

            audit_path = work / "audit.jsonl"
            daemon_env = {**world.env, "TATUM_API_URL": url, "TATUM_KMS_LOG_LEVEL": "DEBUG"}
            out_path, err_path = work / "daemon.out", work / "daemon.err"
            daemon_args = ["daemon", "--testnet", "--chain", "ETH", "--period", "0.2", "--externalUrl", approval_url]
            daemon_args += ["--metrics-port", "0", "--audit-log", str(audit_path), "--log-format", "json"]
            with out_path.open("w") as out, err_path.open("w") as err:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "kms", *daemon_args],
                    stdout=out,
                    stderr=err,
                    env=daemon_env,
                )
                try:
                    health_line = re.compile(r"health listener on (http://127\.0\.0\.1:\d+)")
                    _wait_for(lambda: health_line.search(err_path.read_text()), 60, "the health listener")
                    health = health_line.search(err_path.read_text())
                    assert health is not None
                    audited = {v for k, v in ids.items() if k != "unavailable"}
                    _wait_for(
                        lambda: (
                            audited <= _audit_pending_ids(audit_path)
                            and any(a["id"] == ids["unavailable"] for a in admin.state()["approvals"])
                        ),
                        90,
                        "every pending transaction to be decided",
                    )
                    with httpx.Client(base_url=health.group(1), timeout=10) as client:
                        _wait_for(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
                        endpoints = {
                            path: client.get(path)
                            for path in ("/healthz", "/readyz", "/metrics", f"/{key_id}", "/wallets")
                        }
                    state = admin.state()
                finally:
                    daemon.send_signal(signal.SIGTERM)
                    code = daemon.wait(timeout=60)

            run = DaemonRun(
                stdout=out_path.read_text(),
                stderr=err_path.read_text(),
                code=code,
                audit=audit_path.read_text(),
                endpoints=endpoints,
                sandbox_state=state,
                ids=ids,
            )
            run.verify = subprocess.run(
                [sys.executable, "-m", "kms", "audit", "verify", str(audit_path)],
                capture_output=True,
                text=True,
                env=world.env,
                timeout=60,
            )

            # One more cycle with text logs, --runOnce, and a daemon that cannot unlock the store.
            admin.enqueue({"id": f"text-{TOKEN}", "chain": "ETH", "serializedTransaction": _tx(7), "hashes": [key_id]})
            once = ["daemon", "--testnet", "--chain", "ETH", "--externalUrl", approval_url, "--runOnce"]
            run.extra_runs.append(
                ("daemon --runOnce text", run_kms([*once, "--log-format", "text"], world.home, env=daemon_env))
            )
            wrong = {**daemon_env, "TATUM_KMS_PASSWORD": WRONG_PASSWORD}
            run.extra_runs.append(("daemon wrong password", run_kms(once, world.home, env=wrong)))
        yield run
    finally:
        sandbox.send_signal(signal.SIGTERM)
        try:
            sandbox.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sandbox.kill()
        sandbox_out.close()


def test_daemon_cycle_with_failures_leaks_nothing(world: World, daemon_run: DaemonRun) -> None:
    assert daemon_run.code == 0, daemon_run.stderr[-2000:]
    places = {
        "daemon stdout": daemon_run.stdout,
        "daemon stderr": daemon_run.stderr,
        "audit log": daemon_run.audit,
        "audit verify": daemon_run.verify.stdout + daemon_run.verify.stderr if daemon_run.verify else "",
        **{f"endpoint {path}": response.text for path, response in daemon_run.endpoints.items()},
        **{f"{label} stdout": r.stdout for label, r in daemon_run.extra_runs},
        **{f"{label} stderr": r.stderr for label, r in daemon_run.extra_runs},
    }
    problems = [f"{name} in {place}" for place, text in places.items() for name in world.leaks(text)]
    assert not problems, problems


def test_daemon_cycle_really_ran_its_failures(daemon_run: DaemonRun) -> None:
    records = [json.loads(line) for line in daemon_run.audit.splitlines()]
    by_id: dict[str, set[str]] = {}
    for record in records:
        by_id.setdefault(record.get("pendingId"), set()).add(record.get("outcome") or "")
    ids = daemon_run.ids
    for name in ("refused", "broadcast fails", "tampered", "malformed"):
        assert ids[name] in by_id, name
    assert "refused" in by_id[ids["refused"]]
    assert all(isinstance(r.get("hmac"), str) for r in records), "TATUM_KMS_AUDIT_HMAC_KEY was set"
    assert daemon_run.verify is not None and daemon_run.verify.returncode == 0, daemon_run.verify.stdout
    assert json.loads(daemon_run.verify.stdout)["hmacChecked"] is True
    assert any(a["id"] == ids["unavailable"] for a in daemon_run.sandbox_state["approvals"])
    wrong = dict(daemon_run.extra_runs)["daemon wrong password"]
    assert wrong.code != 0


def test_daemon_signed_and_broadcast_the_good_transactions(daemon_run: DaemonRun) -> None:
    broadcast = {b["signatureId"] for b in daemon_run.sandbox_state["broadcasts"]}
    assert daemon_run.ids["ok key"] in broadcast
    assert daemon_run.ids["ok mnemonic"] in broadcast
    assert daemon_run.ids["broadcast fails"] not in {c["id"] for c in daemon_run.sandbox_state["completed"]}
    text = dict(daemon_run.extra_runs)["daemon --runOnce text"]
    assert text.code == 0, text.stderr


def test_endpoints_carry_no_identifiers_or_bodies(world: World, daemon_run: DaemonRun) -> None:
    endpoints = daemon_run.endpoints
    assert endpoints["/healthz"].status_code == 200
    assert endpoints["/readyz"].status_code == 200
    assert endpoints[f"/{world.ids['key']}"].status_code == 404
    assert endpoints["/wallets"].status_code == 404
    metrics = endpoints["/metrics"].text
    for name in ("kms_cycles_total", "kms_pending_seen_total", "kms_four_eye_rejections_total", "kms_errors_total"):
        assert name in metrics
    assert 'kms_four_eye_rejections_total{chain="ETH"} ' in metrics
    assert re.search(r'kms_wallets\{chain="ETH"\} [1-9]', metrics)
    everything = "\n".join(response.text for response in endpoints.values())
    for signature_id in world.ids.values():
        assert signature_id not in everything
    for pending_id in daemon_run.ids.values():
        assert pending_id not in everything
    assert BODY_MARKER not in everything
    assert world.ids["address 1"].lower() not in everything.lower()
