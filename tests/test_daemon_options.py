"""`kms daemon` flags -> options: upstream's rules and kms's own checks, without starting anything."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import pytest

from kms.cli.main import build_parser
from kms.daemon.runner import options_from_args, parse_chain_list
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


def test_pending_list_cap_setting() -> None:
    assert options("--testnet").max_pending_bytes == 64 * 1024 * 1024
    got = options("--testnet", settings={**SETTINGS, "TATUM_KMS_MAX_PENDING_BYTES": "2000000"})
    assert got.max_pending_bytes == 2_000_000
    with pytest.raises(UsageError, match="TATUM_KMS_MAX_PENDING_BYTES must be at least"):
        options("--testnet", settings={**SETTINGS, "TATUM_KMS_MAX_PENDING_BYTES": "100"})
