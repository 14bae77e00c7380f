"""`kms daemon` flags -> options: upstream's rules and kms's own checks, without starting anything."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import pytest

from kms.cli.main import build_parser
from kms.daemon.options import options_from_args, parse_chain_list
from kms.errors import UsageError

SETTINGS = {"TATUM_API_KEY": "k", "TATUM_API_URL": "http://127.0.0.1:9"}


def parse(*argv: str) -> Namespace:
    return build_parser().parse_args(["daemon", *argv])


def options(*argv: str, settings: dict[str, str] | None = None) -> Any:
    return options_from_args(parse(*argv), SETTINGS if settings is None else settings)


def test_defaults_and_aliases() -> None:
    got = options("--testnet", "--run-once", "--transaction-ids", "a,b", "--external-url", "https://approve.example/x")
    assert got.config.period == 5.0 and got.config.concurrency == 16
    assert got.config.run_once and got.config.transaction_ids == frozenset({"a", "b"})
    assert got.external_url == "https://approve.example/x" and got.external_url_method == "GET"
    assert got.config.chains[:3] == ("BCH", "VET", "XRP")  # upstream's order
    assert got.api_url == "http://127.0.0.1:9"
    camel = options(
        "--testnet", "--runOnce", "--wallets", "w1", "--externalUrlMethod", "post", "--externalUrl", "http://h"
    )
    assert camel.config.wallets == ("w1",) and camel.external_url_method == "POST"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--externalUrl is required"),
        (("--testnet", "--wallets", "a"), "only with --runOnce"),
        (("--testnet", "--period", "0"), "--period must be at least"),
        (("--testnet", "--concurrency", "0"), "--concurrency must be at least 1"),
        (("--testnet", "--concurrency", "100000"), "at most 256"),
        (("--testnet", "--chain", "ETH,NOPE"), "Unsupported chain 'NOPE'"),
        (("--testnet", "--externalUrl", "ftp://x"), r"must be an http\(s\) URL"),
        (("--testnet", "--externalUrl", "https://user:pw@x"), "must not carry credentials"),
    ],
)
def test_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options(*argv)


def test_api_key_is_required() -> None:
    with pytest.raises(UsageError, match="no Tatum API key"):
        options("--testnet", settings={})
    assert options("--testnet", "--apiKey", "from-flag", settings={}).api_key == "from-flag"


def test_chain_list() -> None:
    assert parse_chain_list(" eth, btc ,ETH", ["ETH", "BTC"]) == ("ETH", "BTC")
    assert parse_chain_list(None, ["ETH", "BTC"]) == ("ETH", "BTC")
    with pytest.raises(UsageError):
        parse_chain_list(",", ["ETH"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/approve",
        "http://localhost/approve",
        "http://[::1]:9/approve",
        "https://approve.example/x",
    ],
)
def test_mainnet_accepts_https_and_loopback_http(url: str) -> None:
    assert options("--externalUrl", url).external_url == url


def test_mainnet_refuses_plain_http_to_another_host_unless_told() -> None:
    for url in ("http://approve.example/x", "http://10.0.0.7:8080/x", "http://127.0.0.1.example.com/x"):
        with pytest.raises(UsageError, match="--externalUrl must be https on mainnet") as refused:
            options("--externalUrl", url)
        assert "--allow-insecure-external-url" in str(refused.value)
    allowed = options("--externalUrl", "http://approve.example/x", "--allow-insecure-external-url")
    assert allowed.external_url == "http://approve.example/x"
    assert options("--testnet", "--externalUrl", "http://approve.example/x").external_url  # testnet: as upstream


def test_defaults_are_written_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse, the settings and DaemonConfig take their defaults from DEFAULTS."""
    from dataclasses import replace

    import kms.daemon.options as options_module
    from kms.daemon.model import DEFAULTS, DaemonConfig

    args = parse("--testnet")
    assert (args.period, args.concurrency, args.shutdownTimeout) == (
        DEFAULTS.period,
        DEFAULTS.concurrency,
        DEFAULTS.shutdown_timeout,
    )
    assert (args.metricsAddress, args.logFormat, args.externalUrlMethod) == (
        DEFAULTS.metrics_address,
        DEFAULTS.log_format,
        DEFAULTS.external_url_method,
    )
    got = options("--testnet")
    assert got.four_eye_timeout == DEFAULTS.four_eye_timeout and got.log_level == DEFAULTS.log_level
    bare = DaemonConfig(chains=("ETH",), testnet=True)
    assert (bare.period, bare.concurrency) == (DEFAULTS.period, DEFAULTS.concurrency)
    # Flags and settings that are absent (a namespace built by hand, no env) fall back to the same object.
    monkeypatch.setattr(options_module, "DEFAULTS", replace(DEFAULTS, period=7.5, concurrency=3, log_level="WARNING"))
    got = options_from_args(Namespace(testnet=True), SETTINGS)
    assert (got.config.period, got.config.concurrency, got.log_level) == (7.5, 3, "WARNING")


def test_settings_override_the_defaults() -> None:
    settings = {**SETTINGS, "TATUM_KMS_EXTERNAL_URL_TIMEOUT": "2.5", "TATUM_KMS_LOG_LEVEL": "ERROR"}
    got = options("--testnet", settings=settings)
    assert got.four_eye_timeout == 2.5 and got.log_level == "ERROR"
    assert options("--testnet", settings={**SETTINGS, "TATUM_KMS_DEBUG_MODE": "1"}).log_level == "DEBUG"


def test_daemon_and_seal_do_not_import_the_cli() -> None:
    """The daemon stands without the command line: kms/daemon and kms/seal never import kms.cli."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "kms"
    offenders = []
    for package in ("daemon", "seal"):
        for source in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if any(name == "kms.cli" or name.startswith("kms.cli.") for name in names):
                    offenders.append(f"{source.relative_to(root.parent)}:{node.lineno}")
    assert offenders == []
    assert (root / "seal").is_dir() and not (root / "seal.py").exists()


def test_in_flight_caps_from_flags_settings_and_defaults() -> None:
    from kms.daemon.model import DEFAULTS

    default = options("--testnet").config
    assert (default.max_in_flight, default.max_in_flight_per_sender) == (
        DEFAULTS.max_in_flight,
        DEFAULTS.max_in_flight_per_sender,
    )
    settings = {**SETTINGS, "TATUM_KMS_MAX_IN_FLIGHT": "40", "TATUM_KMS_MAX_IN_FLIGHT_PER_SENDER": "8"}
    from_settings = options("--testnet", settings=settings).config
    assert (from_settings.max_in_flight, from_settings.max_in_flight_per_sender) == (40, 8)
    flags = options("--testnet", "--max-in-flight", "12", "--max-in-flight-per-sender", "3", settings=settings).config
    assert (flags.max_in_flight, flags.max_in_flight_per_sender) == (12, 3)
    with pytest.raises(UsageError, match="--max-in-flight-per-sender must be at least 1"):
        options("--testnet", "--max-in-flight-per-sender", "0")
    with pytest.raises(UsageError, match="--max-in-flight must be a number"):
        options("--testnet", settings={**SETTINGS, "TATUM_KMS_MAX_IN_FLIGHT": "many"})


def test_pending_list_cap_setting() -> None:
    assert options("--testnet").max_pending_bytes == 64 * 1024 * 1024
    got = options("--testnet", settings={**SETTINGS, "TATUM_KMS_MAX_PENDING_BYTES": "2000000"})
    assert got.max_pending_bytes == 2_000_000
    with pytest.raises(UsageError, match="TATUM_KMS_MAX_PENDING_BYTES must be at least"):
        options("--testnet", settings={**SETTINGS, "TATUM_KMS_MAX_PENDING_BYTES": "100"})
