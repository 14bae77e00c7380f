"""Structured logging: one event per line, pendingId/chain on transaction lines, and redaction of planted canaries
in messages, arguments, extra fields and tracebacks (text and JSON), including uncaught exceptions."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from algosdk import account
from algosdk import mnemonic as algo_mnemonic
from bip_utils import (
    Bip32Secp256k1,
    Bip39MnemonicGenerator,
    Bip39SeedGenerator,
    Bip39WordsNum,
    WifEncoder,
)
from solders.keypair import Keypair as SolanaKeypair
from stellar_sdk import Keypair as StellarKeypair
from xrpl import CryptoAlgorithm
from xrpl.core.keypairs import generate_seed

from kms import logs
from kms.errors import UsageError
from kms.hygiene import SecretBuffer
from kms.masking import mask_api_key

REPO = Path(__file__).resolve().parents[2]
PENDING_ID = "65a1b2c3d4e5f6a7b8c9d0e1"
PASSWORD = "canary-Pa55word-7f3e!"
QUOTED_PASSWORD = 'canary"quote\\back'
API_KEY = "t-65a1b2c3d4e5f6a7b8c9d0e1-canaryapikey1234567890"


def _canaries() -> dict[str, str]:
    mnemonic24 = str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24))
    raw_key = os.urandom(32)
    algo_key, _ = account.generate_account()
    return {
        "mnemonic12": str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_12)),
        "mnemonic24": mnemonic24,
        "hex": raw_key.hex(),
        "hex0x": "0x" + os.urandom(32).hex(),
        "wif": WifEncoder.Encode(raw_key),
        "xprv": Bip32Secp256k1.FromSeed(Bip39SeedGenerator(mnemonic24).Generate()).PrivateKey().ToExtended(),
        "stellar": StellarKeypair.random().secret,
        "solana": str(SolanaKeypair()),
        "xrp": generate_seed(),
        "xrp_ed25519": generate_seed(algorithm=CryptoAlgorithm.ED25519),
        "algorand_key": algo_key,
        "algorand_mnemonic": algo_mnemonic.from_private_key(algo_key),
        "password": PASSWORD,
    }


CANARIES = _canaries()


def fragments(secret: str) -> list[str]:
    """What must not appear: the secret, and for mnemonics any 6 consecutive words of it."""
    words = secret.split()
    if len(words) >= 12:
        return [" ".join(words[i : i + 6]) for i in range(len(words) - 5)]
    return [secret]


def assert_clean(text: str) -> None:
    for name, secret in CANARIES.items():
        for fragment in fragments(secret):
            assert fragment not in text, f"{name} leaked"
    assert QUOTED_PASSWORD not in text
    assert API_KEY not in text


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    """configure() into a buffer; afterwards restore the root logger, the hooks and the registered secrets."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    stream = io.StringIO()
    logs.register_secret(PASSWORD)
    logs.register_secret(SecretBuffer.from_str(QUOTED_PASSWORD))
    logs.register_api_key(API_KEY)
    try:
        yield stream
    finally:
        if logs._installed is not None:
            root.removeHandler(logs._installed)
            logs._installed = None
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        logs.REDACTOR.clear()


def emit_everything(logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
    for name, secret in CANARIES.items():
        logger.info("message with %s: " + secret, name)
        logger.warning("argument %s: %s", name, secret)
        logger.info("extra field", extra={"detail": secret})
    logger.info("api key %s and password %s and %s", API_KEY, PASSWORD, QUOTED_PASSWORD)
    logger.info("mnemonic as a JSON list: %s", json.dumps(CANARIES["mnemonic12"].split()))
    logger.info("mnemonic on lines:\n%s", "\n".join(CANARIES["mnemonic24"].split()))
    logger.info("mnemonic in a repr: %r", CANARIES["mnemonic12"].upper().replace(" ", "\n"))
    try:
        try:
            raise KeyError(QUOTED_PASSWORD)
        except KeyError as inner:
            raise ValueError(f"signing failed for {CANARIES['wif']} / {CANARIES['mnemonic12']}") from inner
    except ValueError:
        logger.exception("signing blew up with %s", CANARIES["hex0x"])


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_planted_canaries_never_reach_the_log(capture: io.StringIO, fmt: str) -> None:
    logs.configure(fmt, stream=capture)
    emit_everything(logs.transaction_logger(logging.getLogger("kms.daemon"), PENDING_ID, "ETH"))
    emit_everything(logging.getLogger("some.library"))
    text = capture.getvalue()
    assert_clean(text)
    assert "[REDACTED-MNEMONIC]" in text and "[REDACTED-WIF]" in text and "[REDACTED-HEX]" in text
    assert "[REDACTED]" in text
    assert mask_api_key(API_KEY) in text, "API keys are shown as upstream's checkconfig mask"
    assert "Traceback (most recent call last)" in text and "KeyError" in text


def test_json_lines_parse_and_carry_pending_id_and_chain(capture: io.StringIO) -> None:
    logs.configure("json", level="DEBUG", stream=capture)
    tx = logs.transaction_logger(logging.getLogger("kms.daemon"), PENDING_ID, "BTC")
    tx.debug("fetched")
    tx.info("signed with %d keys", 2, extra={"attempt": 1, "signatureIds": ["a", "b"]})
    try:
        raise RuntimeError("broadcast failed\nsecond line")
    except RuntimeError:
        tx.error("broadcast failed", exc_info=True)
    logging.getLogger("kms.daemon").info("cycle done")
    lines = capture.getvalue().splitlines()
    assert len(lines) == 4
    events = [json.loads(line) for line in lines]
    for event in events[:3]:
        assert (event["pendingId"], event["chain"]) == (PENDING_ID, "BTC")
        assert event["logger"] == "kms.daemon"
        assert event["time"].endswith("Z")
    assert events[0]["level"] == "DEBUG"
    assert events[1]["message"] == "signed with 2 keys"
    assert events[1]["attempt"] == 1 and events[1]["signatureIds"] == ["a", "b"]
    assert "RuntimeError: broadcast failed\nsecond line" in events[2]["exception"]
    assert "pendingId" not in events[3]


def test_text_is_one_event_per_line_with_context(capture: io.StringIO) -> None:
    logs.configure("text", stream=capture)
    tx = logs.transaction_logger(logging.getLogger("kms.daemon"), PENDING_ID, "ETH")
    tx.info("first\nsecond")
    try:
        raise ValueError("bad")
    except ValueError:
        tx.exception("failed")
    lines = capture.getvalue().splitlines()
    assert len(lines) == 2
    assert f" INFO    kms.daemon pendingId={PENDING_ID} chain=ETH: first\\nsecond" in lines[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR   kms\.daemon pendingId=", lines[1])
    assert "failed | Traceback (most recent call last):\\n" in lines[1]
    assert lines[1].endswith("ValueError: bad")


def test_ordinary_identifiers_are_not_masked(capture: io.StringIO) -> None:
    logs.configure("text", stream=capture)
    plain = [
        PENDING_ID,
        "2f6e0c8a-1b2c-4d5e-8f90-123456789abc",
        "0x8ba1f109551bD432803012645Ac136ddd64DBA72",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe",
        "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7",
        "signed 3 transactions; the approval server answered 200",
        "able about above absent absorb abstract absurd abuse access accident account",  # 11 BIP39 words
    ]
    for text in plain:
        logging.getLogger("kms").info("%s", text)
    out = capture.getvalue()
    for text in plain:
        assert text in out
    assert "REDACTED" not in out


def test_configure_is_idempotent_and_validates(capture: io.StringIO) -> None:
    logs.configure("json", stream=capture)
    logs.configure("json", stream=capture)
    logging.getLogger("kms").info("once")
    assert len(capture.getvalue().splitlines()) == 1
    logging.getLogger("httpx").info("HTTP Request: GET https://api.tatum.io/v3/kms/pending/ETH")
    assert len(capture.getvalue().splitlines()) == 1, "client libraries stay quiet at INFO"
    with pytest.raises(UsageError, match="log format"):
        logs.configure("xml")
    with pytest.raises(UsageError, match="log level"):
        logs.configure("text", level="CHATTY")


def test_short_registered_values_are_ignored_and_clear_wipes(capture: io.StringIO) -> None:
    redactor = logs.Redactor()
    redactor.register("abc")
    assert redactor.redact("abc abc") == "abc abc"
    redactor.register("longer-value")
    redactor.register("longer-value-and-more")
    assert redactor.redact("x longer-value-and-more y longer-value") == "x [REDACTED] y [REDACTED]"
    held = [value for value, _ in redactor._values]
    redactor.clear()
    assert all(value.wiped for value in held)
    assert redactor.redact("longer-value") == "longer-value"


def test_redaction_filter_on_a_foreign_handler(capture: io.StringIO) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactionFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("foreign")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.info("key %s", CANARIES["hex"])
        try:
            raise ValueError(PASSWORD)
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = stream.getvalue()
    assert "INFO key [REDACTED-HEX]" in text
    assert "ValueError: [REDACTED]" in text
    assert_clean(text)


def test_uncaught_exceptions_are_redacted(tmp_path: Path) -> None:
    script = f"""
import threading
from kms import logs
logs.configure("json")
logs.register_secret({PASSWORD!r})
def worker():
    raise RuntimeError("thread saw " + {CANARIES["mnemonic12"]!r})
t = threading.Thread(target=worker, name="signer"); t.start(); t.join()
raise ValueError("main saw " + {PASSWORD!r} + " " + {CANARIES["xprv"]!r})
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60, env=dict(os.environ)
    )
    assert proc.returncode == 1
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [e["message"] for e in events] == ["uncaught exception in thread signer", "uncaught exception"]
    assert "RuntimeError: thread saw [REDACTED-MNEMONIC]" in events[0]["exception"]
    assert "ValueError: main saw [REDACTED] [REDACTED-KEY]" in events[1]["exception"]
    assert_clean(proc.stderr)


def test_configured_secrets_are_registered(capture: io.StringIO) -> None:
    logs.configure("json", stream=capture)
    settings = {
        "TATUM_KMS_VAULT_TOKEN": "canary-vault-token-123",
        "TATUM_KMS_AUDIT_HMAC_KEY": "canary-audit-key-0123456789abcdef0123456789",
        "TATUM_API_KEY": "t-another-canary-api-key-0123456789",
        "TATUM_KMS_VAULT_ADDR": "https://vault.example:8200",
    }
    logs.register_configured_secrets(settings)
    logging.getLogger("kms").info("settings: %s", settings)
    text = capture.getvalue()
    for key in ("TATUM_KMS_VAULT_TOKEN", "TATUM_KMS_AUDIT_HMAC_KEY", "TATUM_API_KEY"):
        assert settings[key] not in text
    assert mask_api_key(settings["TATUM_API_KEY"]) in text
    assert "https://vault.example:8200" in text, "settings that are not credentials stay readable"


# -- public identifiers in structured fields (issue 20) and structured JSON (issue 17 item 6) --------------------------

TX_HASH = "0x" + "5e" * 32
SOLANA_SIGNATURE = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_public_fields_are_not_masked_but_free_text_is(capture: io.StringIO, fmt: str) -> None:
    logs.configure(fmt, stream=capture)
    tx = logs.transaction_logger(logging.getLogger("kms.daemon"), PENDING_ID, "ETH")
    tx.info("Tx was processed: %s", PENDING_ID, extra={"txId": TX_HASH})
    tx.info("Tx was processed: %s", PENDING_ID, extra={"txId": SOLANA_SIGNATURE})
    tx.info("free text %s", TX_HASH, extra={"detail": TX_HASH})
    lines = capture.getvalue().splitlines()
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert events[0]["txId"] == TX_HASH and events[0]["pendingId"] == PENDING_ID
        assert events[0]["message"] == f"Tx was processed: {PENDING_ID}"
        assert events[1]["txId"] == SOLANA_SIGNATURE
        assert events[2]["message"] == "free text [REDACTED-HEX]" and events[2]["detail"] == "[REDACTED-HEX]"
    else:
        assert lines[0].endswith(f"pendingId={PENDING_ID} chain=ETH: Tx was processed: {PENDING_ID} txId={TX_HASH}")
        assert lines[1].endswith(f"txId={SOLANA_SIGNATURE}")
        assert lines[2].endswith("free text [REDACTED-HEX] detail=[REDACTED-HEX]")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_put_in_public_fields_by_mistake_are_still_masked(capture: io.StringIO, fmt: str) -> None:
    """Only what a public identifier can look like passes unmasked: a hex string, a long base58 string (a Solana
    signature) and a WIF-length base58 string are trusted by field name; every other secret shape is masked."""
    logs.configure(fmt, stream=capture)
    shared_shape = {"hex", "hex0x", "solana", "wif"}
    log = logging.getLogger("kms.daemon")
    for name, secret in CANARIES.items():
        if name not in shared_shape:
            log.info("mistake", extra={"address": secret, "signatureIds": [secret, "ok-id"]})
    log.info("mistake", extra={"txId": PASSWORD, "signatureId": QUOTED_PASSWORD, "addresses": [API_KEY]})
    log.info("too long", extra={"txId": "ab" * 100})
    text = capture.getvalue()
    assert_clean(text)
    assert "ok-id" in text
    assert "ab" * 100 not in text


def test_json_fields_are_json_values_not_python_reprs(capture: io.StringIO) -> None:
    logs.configure("json", stream=capture)
    summary = {"pending": 2, "broadcast": 1, "chainErrors": {"BTC": "bad key " + CANARIES["hex"]}, "seconds": 0.25}
    logging.getLogger("kms.daemon").info("cycle done", extra=summary)
    logging.getLogger("kms.daemon").info("nested", extra={"deep": {"a": {"b": {"c": {"d": {"e": CANARIES["wif"]}}}}}})
    events = [json.loads(line) for line in capture.getvalue().splitlines()]
    assert events[0]["message"] == "cycle done"
    assert (events[0]["pending"], events[0]["broadcast"], events[0]["seconds"]) == (2, 1, 0.25)
    assert events[0]["chainErrors"] == {"BTC": "bad key [REDACTED-HEX]"}
    assert "{'" not in capture.getvalue().splitlines()[0]
    assert isinstance(events[1]["deep"]["a"]["b"]["c"]["d"], str), "nesting is bounded: deeper levels become text"
    assert_clean(capture.getvalue())


def test_text_fields_are_one_line_json(capture: io.StringIO) -> None:
    logs.configure("text", stream=capture)
    logging.getLogger("kms.daemon").info("cycle done", extra={"pending": 2, "chainErrors": {"BTC": "down\nhard"}})
    (line,) = capture.getvalue().splitlines()
    assert line.endswith('cycle done pending=2 chainErrors={"BTC":"down\\nhard"}')


def test_a_daemon_run_is_traceable_by_public_fields(tmp_path: Path) -> None:
    """A real daemon against the sandbox, every chain configured, wallets of one: it says it polls that chain only,
    and the processed transaction's line carries its pendingId and txId as JSON keys (issue 17 items 5 and 6)."""
    from kms.sandbox.harness import SandboxProcess, start_daemon
    from tests.daemon.test_daemon import World, eth_pending

    with SandboxProcess() as sandbox:
        assert sandbox.admin is not None
        world = World(tmp_path, sandbox, keys=1)
        signature_id, _ = world.wallets[0]
        sandbox.admin.enqueue(eth_pending("trace-me", signature_id))
        proc = start_daemon(["--testnet", "--path", str(world.path), "--runOnce", "--log-format", "json"], world.env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        (broadcast,) = sandbox.admin.state()["broadcasts"]
    events = [json.loads(line) for line in err.splitlines()]
    polling = [e for e in events if e["message"].startswith("polling ")]
    assert [e["message"] for e in polling] == ["polling ETH for pending transactions"]
    assert polling[0]["chains"] == ["ETH"]
    (processed,) = [e for e in events if e["message"].startswith("Tx was processed")]
    assert (processed["pendingId"], processed["chain"], processed["txId"]) == ("trace-me", "ETH", broadcast["txId"])
    (cycle,) = [e for e in events if e["message"] == "cycle done"]
    assert (cycle["pending"], cycle["broadcast"], cycle["chainErrors"]) == (1, 1, {})
    assert json.loads(out.strip().splitlines()[-1])["broadcast"] == 1


def test_a_sealed_daemon_says_what_it_polls_only_once_unsealed(tmp_path: Path) -> None:
    from kms.sandbox.harness import SandboxProcess, start_daemon, wait_for
    from tests.daemon.test_daemon import World

    with SandboxProcess() as sandbox:
        world = World(tmp_path, sandbox, keys=1)
        socket_path = tmp_path / "run" / "unseal.sock"
        args = ["--testnet", "--path", str(world.path), "--period", "0.2", "--log-format", "json", "--sealed"]
        proc = start_daemon([*args, "--socket", str(socket_path)], world.env)
        lines: list[str] = []
        stderr = proc.stderr
        assert stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
        reader.start()
        try:
            assert wait_for(lambda: any("sealed: waiting" in line for line in lines), 60)
            assert wait_for(socket_path.exists, 30)
            assert not any("polling" in line for line in lines), "nothing is polled while sealed"
            unlock = subprocess.run(
                [sys.executable, "-m", "kms", "unlock", "--socket", str(socket_path), "--backend", "env"],
                capture_output=True, text=True, env=world.env, timeout=60, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert unlock.returncode == 0, unlock.stderr
            assert wait_for(lambda: any('"polling ETH for pending transactions"' in line for line in lines), 60)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=10)
    polling = [json.loads(line) for line in lines if '"polling ' in line]
    assert len(polling) == 1, "said once, not every cycle"
