"""``kms daemon``'s flags and settings -> ``DaemonOptions``: upstream's rules, kms's own checks, defaults from
``kms.daemon.model.DEFAULTS``. Reads any object carrying the flags (an argparse namespace); starts nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from kms.chains import signer_setting_names, supported_codes
from kms.chains.base import SignerSettings
from kms.daemon.model import DEFAULTS, DaemonConfig
from kms.errors import UsageError
from kms.tatum.client import DEFAULT_API_URL, DEFAULT_MAX_PENDING_BYTES

INSECURE_EXTERNAL_URL_FLAG = "--allow-insecure-external-url"


@dataclass(frozen=True)
class DaemonOptions:
    config: DaemonConfig
    api_url: str
    api_key: str
    external_url: str | None
    external_url_method: str
    four_eye_timeout: float
    shutdown_timeout: float
    metrics_address: str
    metrics_port: int | None
    audit_log: str | None
    log_format: str
    log_level: str
    testnet_type: str | None
    sealed: bool = False
    """--sealed: start sealed even when the password could be had."""
    socket: Path | None = None
    """--socket: serve the unseal socket here (also without --sealed, so that 'kms seal' works)."""
    signer_settings: SignerSettings = field(default_factory=SignerSettings)
    """The settings chain signers take (TATUM_KMS_VET_NODE_URL, TATUM_KMS_FLOW_NODE_URL), checked here."""
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    """TATUM_KMS_MAX_PENDING_BYTES: the cap on one pending-list answer (sized for 25,000 ids)."""
    approval: str = DEFAULTS.approval
    """--approval v1|v2."""
    approval_url: str | None = None
    """--approval-url (else TATUM_KMS_APPROVAL_URL), for v2."""
    approver_key: str | None = None
    """--approver-key: the approver's pinned public key (PEM file or text), for v2."""
    policy: Path | None = None
    """--policy FILE: the local policy (TOML)."""


def _number(value: object, flag: str, minimum: float, maximum: float | None = None) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be a number") from None
    if number != number or number < minimum or (maximum is not None and number > maximum):
        bound = f" and at most {maximum:g}" if maximum is not None else ""
        raise UsageError(f"{flag} must be at least {minimum:g}{bound}")
    return number


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def check_url(url: str, flag: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{flag} must be an http(s) URL")
    if parts.username or parts.password:
        raise UsageError(f"{flag} must not carry credentials")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        # The pending id is appended as a path segment; after a query it would not reach the server as one.
        raise UsageError(f"{flag} must not have a query or fragment")
    return url.rstrip("/")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_external_url(url: str, *, testnet: bool, allow_insecure: bool) -> str:
    """The four-eye URL. On mainnet, plain http is accepted only to a loopback address, or when the operator says
    so explicitly: anyone on the path could otherwise answer "approved"."""
    checked = check_url(url, "--externalUrl")
    parts = urlsplit(checked)
    if parts.scheme == "http" and not testnet and not allow_insecure and not is_loopback_host(parts.hostname):
        raise UsageError(
            "--externalUrl must be https on mainnet (plain http only to a loopback address); "
            f"pass {INSECURE_EXTERNAL_URL_FLAG} to accept an unprotected approval channel"
        )
    return checked


def parse_chain_list(text: str | None, supported: Sequence[str]) -> tuple[str, ...]:
    """``--chain ETH,BTC`` (case-insensitive, duplicates dropped); every supported chain when not given."""
    if text is None or not text.strip():
        return tuple(supported)
    chosen: list[str] = []
    for part in text.split(","):
        code = part.strip().upper()
        if not code:
            continue
        if code not in supported:
            raise UsageError(f"Unsupported chain '{part.strip()}'. Supported: {', '.join(sorted(supported))}")
        if code not in chosen:
            chosen.append(code)
    if not chosen:
        raise UsageError("--chain names no chain")
    return tuple(chosen)


def log_level(settings: Mapping[str, str]) -> str:
    level = settings.get("TATUM_KMS_LOG_LEVEL")
    if level:
        return level
    debug = (settings.get("TATUM_KMS_DEBUG_MODE") or "").strip().lower()
    return "DEBUG" if debug in ("1", "true") else DEFAULTS.log_level


def _run_once_filters(args: object, run_once: bool) -> tuple[tuple[str, ...] | None, frozenset[str] | None]:
    wallets = _csv(getattr(args, "wallets", None))
    transaction_ids = _csv(getattr(args, "transactionIds", None))
    if not run_once and (wallets is not None or transaction_ids is not None):
        raise UsageError("--wallets and --transactionIds apply only with --runOnce")
    if wallets is not None and not wallets:
        raise UsageError("--wallets names no wallet")
    if transaction_ids is not None and not transaction_ids:
        raise UsageError("--transactionIds names no transaction")
    return (
        tuple(wallets) if wallets is not None else None,
        frozenset(transaction_ids) if transaction_ids is not None else None,
    )


MAX_IN_FLIGHT_SETTING = "TATUM_KMS_MAX_IN_FLIGHT"
MAX_IN_FLIGHT_PER_SENDER_SETTING = "TATUM_KMS_MAX_IN_FLIGHT_PER_SENDER"


def _in_flight_caps(args: object, settings: Mapping[str, str]) -> tuple[int, int]:
    """--max-in-flight / --max-in-flight-per-sender, else their settings, else the defaults."""
    caps = []
    for attr, flag, setting, default in (
        ("maxInFlight", "--max-in-flight", MAX_IN_FLIGHT_SETTING, DEFAULTS.max_in_flight),
        (
            "maxInFlightPerSender",
            "--max-in-flight-per-sender",
            MAX_IN_FLIGHT_PER_SENDER_SETTING,
            DEFAULTS.max_in_flight_per_sender,
        ),
    ):
        given = getattr(args, attr, None)
        if given is None:
            given = (settings.get(setting) or "").strip() or default
        caps.append(int(_number(given, flag, 1, DEFAULTS.max_in_flight_bound)))
    return caps[0], caps[1]


def _daemon_config(args: object, testnet: bool, settings: Mapping[str, str] | None = None) -> DaemonConfig:
    run_once = bool(getattr(args, "runOnce", False))
    wallets, transaction_ids = _run_once_filters(args, run_once)
    concurrency = getattr(args, "concurrency", DEFAULTS.concurrency)
    max_in_flight, per_sender = _in_flight_caps(args, settings or {})
    return DaemonConfig(
        chains=parse_chain_list(getattr(args, "chain", None), supported_codes()),
        testnet=testnet,
        period=_number(getattr(args, "period", DEFAULTS.period), "--period", DEFAULTS.min_period),
        concurrency=int(_number(concurrency, "--concurrency", 1, DEFAULTS.max_concurrency)),
        max_in_flight=max_in_flight,
        max_in_flight_per_sender=per_sender,
        run_once=run_once,
        wallets=wallets,
        transaction_ids=transaction_ids,
    )


def _approval(args: object) -> str:
    approval = str(getattr(args, "approval", None) or DEFAULTS.approval).lower()
    if approval not in ("v1", "v2"):
        raise UsageError("--approval must be v1 or v2")
    return approval


def _external_url(args: object, testnet: bool) -> tuple[str | None, str]:
    url = getattr(args, "externalUrl", None) or None
    if not testnet and not url and _approval(args) == "v1":
        # Upstream (meow isRequired): the four-eye server is mandatory on mainnet (unless approval v2 replaces it).
        raise UsageError("--externalUrl is required in daemon mode on mainnet (without --testnet), or --approval v2")
    method = str(getattr(args, "externalUrlMethod", None) or DEFAULTS.external_url_method).upper()
    if method not in ("GET", "POST"):
        raise UsageError("--externalUrlMethod must be GET or POST")
    if url is None:
        return None, method
    allow_insecure = bool(getattr(args, "allowInsecureExternalUrl", False))
    return check_external_url(url, testnet=testnet, allow_insecure=allow_insecure), method


def _api_key(args: object, settings: Mapping[str, str]) -> str:
    api_key = (getattr(args, "apiKey", None) or settings.get("TATUM_API_KEY") or "").strip()
    if not api_key:
        raise UsageError("no Tatum API key: set TATUM_API_KEY (env or --envFile) or pass --apiKey")
    return api_key


def _metrics_port(args: object) -> int | None:
    port = getattr(args, "metricsPort", None)
    return int(_number(port, "--metrics-port", 0, 65535)) if port is not None else None


def _socket(args: object) -> Path | None:
    given = getattr(args, "socket", None)
    return Path(given).expanduser() if given else None


def options_from_args(args: object, settings: Mapping[str, str]) -> DaemonOptions:
    testnet = bool(getattr(args, "testnet", False))
    external_url, method = _external_url(args, testnet)
    config = _daemon_config(args, testnet, settings)
    deadline = settings.get("TATUM_KMS_CYCLE_DEADLINE") or DEFAULTS.cycle_deadline
    config = replace(config, cycle_deadline=_number(deadline, "TATUM_KMS_CYCLE_DEADLINE", 1))
    four_eye_timeout = settings.get("TATUM_KMS_EXTERNAL_URL_TIMEOUT") or DEFAULTS.four_eye_timeout
    shutdown_timeout = getattr(args, "shutdownTimeout", None) or DEFAULTS.shutdown_timeout
    return DaemonOptions(
        config=config,
        api_url=check_url((settings.get("TATUM_API_URL") or DEFAULT_API_URL).strip(), "TATUM_API_URL"),
        api_key=_api_key(args, settings),
        external_url=external_url,
        external_url_method=method,
        four_eye_timeout=_number(four_eye_timeout, "TATUM_KMS_EXTERNAL_URL_TIMEOUT", 0.1),
        shutdown_timeout=_number(shutdown_timeout, "--shutdown-timeout", 0),
        metrics_address=getattr(args, "metricsAddress", None) or DEFAULTS.metrics_address,
        metrics_port=_metrics_port(args),
        audit_log=getattr(args, "auditLog", None),
        log_format=getattr(args, "logFormat", None) or DEFAULTS.log_format,
        log_level=log_level(settings),
        testnet_type=settings.get("TESTNET_TYPE") or None,
        sealed=bool(getattr(args, "sealed", False)),
        socket=_socket(args),
        signer_settings=SignerSettings.of(settings, signer_setting_names()),
        max_pending_bytes=int(
            _number(
                settings.get("TATUM_KMS_MAX_PENDING_BYTES") or DEFAULT_MAX_PENDING_BYTES,
                "TATUM_KMS_MAX_PENDING_BYTES",
                64 * 1024,
            )
        ),
        approval=_approval(args),
        approval_url=getattr(args, "approvalUrl", None) or None,
        approver_key=getattr(args, "approverKey", None) or None,
        policy=Path(args.policy).expanduser() if getattr(args, "policy", None) else None,  # type: ignore[attr-defined]
    )
