"""``kms daemon``: flags -> a running Daemon, its listeners, signals and the final wipe."""

from __future__ import annotations

import json
import logging
import os
import sys
from argparse import Namespace
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kms.chains import supported_codes
from kms.daemon.four_eye import DEFAULT_TIMEOUT as FOUR_EYE_TIMEOUT
from kms.daemon.four_eye import FourEye
from kms.daemon.loop import AuditSink, Daemon, DaemonConfig
from kms.daemon.sealing import SealControl, StoreSlot, open_store_with
from kms.daemon.shutdown import Shutdown
from kms.errors import UsageError
from kms.metrics import DaemonMetrics, Metrics, NullMetrics
from kms.tatum.client import DEFAULT_API_URL, DEFAULT_MAX_PENDING_BYTES, TatumClient

log = logging.getLogger("kms.daemon")

DEFAULT_PERIOD = 5.0
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 256
DEFAULT_SHUTDOWN_TIMEOUT = 20.0


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
    testnet_type: str | None
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES


def _number(value: Any, flag: str, minimum: float, maximum: float | None = None) -> float:
    try:
        number = float(value)
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


def _check_url(url: str, flag: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{flag} must be an http(s) URL")
    if parts.username or parts.password:
        raise UsageError(f"{flag} must not carry credentials")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        # The pending id is appended as a path segment; after a query it would not reach the server as one.
        raise UsageError(f"{flag} must not have a query or fragment")
    return url.rstrip("/")


def options_from_args(args: Namespace, settings: Mapping[str, str]) -> DaemonOptions:
    testnet = bool(getattr(args, "testnet", False))
    external_url = getattr(args, "externalUrl", None) or None
    if not testnet and not external_url:
        # Upstream (meow isRequired): the four-eye server is mandatory on mainnet.
        raise UsageError("--externalUrl is required in daemon mode on mainnet (without --testnet)")
    method = str(getattr(args, "externalUrlMethod", None) or "GET").upper()
    if method not in ("GET", "POST"):
        raise UsageError("--externalUrlMethod must be GET or POST")
    run_once = bool(getattr(args, "runOnce", False))
    wallets = _csv(getattr(args, "wallets", None))
    transaction_ids = _csv(getattr(args, "transactionIds", None))
    if not run_once and (wallets is not None or transaction_ids is not None):
        raise UsageError("--wallets and --transactionIds apply only with --runOnce")
    if wallets is not None and not wallets:
        raise UsageError("--wallets names no wallet")
    if transaction_ids is not None and not transaction_ids:
        raise UsageError("--transactionIds names no transaction")
    api_key = (getattr(args, "apiKey", None) or settings.get("TATUM_API_KEY") or "").strip()
    if not api_key:
        raise UsageError("no Tatum API key: set TATUM_API_KEY (env or --envFile) or pass --apiKey")
    api_url = _check_url((settings.get("TATUM_API_URL") or DEFAULT_API_URL).strip(), "TATUM_API_URL")
    metrics_port = getattr(args, "metricsPort", None)
    config = DaemonConfig(
        chains=parse_chain_list(getattr(args, "chain", None), supported_codes()),
        testnet=testnet,
        period=_number(getattr(args, "period", DEFAULT_PERIOD), "--period", 0.05),
        concurrency=int(
            _number(getattr(args, "concurrency", DEFAULT_CONCURRENCY), "--concurrency", 1, MAX_CONCURRENCY)
        ),
        run_once=run_once,
        wallets=tuple(wallets) if wallets is not None else None,
        transaction_ids=frozenset(transaction_ids) if transaction_ids is not None else None,
    )
    return DaemonOptions(
        config=config,
        api_url=api_url,
        api_key=api_key,
        external_url=_check_url(external_url, "--externalUrl") if external_url else None,
        external_url_method=method,
        four_eye_timeout=_number(
            settings.get("TATUM_KMS_EXTERNAL_URL_TIMEOUT") or FOUR_EYE_TIMEOUT, "TATUM_KMS_EXTERNAL_URL_TIMEOUT", 0.1
        ),
        shutdown_timeout=_number(
            getattr(args, "shutdownTimeout", None) or DEFAULT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", 0
        ),
        metrics_address=getattr(args, "metricsAddress", None) or "127.0.0.1",
        metrics_port=int(_number(metrics_port, "--metrics-port", 0, 65535)) if metrics_port is not None else None,
        audit_log=getattr(args, "auditLog", None),
        log_format=getattr(args, "logFormat", None) or "text",
        testnet_type=settings.get("TESTNET_TYPE") or None,
        max_pending_bytes=int(
            _number(
                settings.get("TATUM_KMS_MAX_PENDING_BYTES") or DEFAULT_MAX_PENDING_BYTES,
                "TATUM_KMS_MAX_PENDING_BYTES",
                64 * 1024,
            )
        ),
    )


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
            raise UsageError(f"Unsupported chain '{part.strip()}'. Supported: {', '.join(supported)}")
        if code not in chosen:
            chosen.append(code)
    if not chosen:
        raise UsageError("--chain names no chain")
    return tuple(chosen)


def _log_level(settings: Mapping[str, str]) -> str:
    level = settings.get("TATUM_KMS_LOG_LEVEL")
    if level:
        return level
    debug = (settings.get("TATUM_KMS_DEBUG_MODE") or "").strip().lower()
    return "DEBUG" if debug in ("1", "true") else "INFO"


@contextmanager
def _audit_sink(path: str | None, settings: Mapping[str, str]) -> Iterator[AuditSink | None]:
    if not path:
        yield None
        return
    from kms.audit import AuditLog, hmac_key_from_settings

    key = hmac_key_from_settings(settings)
    audit = AuditLog(Path(path).expanduser(), hmac_key=key)
    try:
        yield audit.append
    finally:
        audit.close()
        if key is not None:
            key.wipe()


def _has_terminal() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return sys.stdin.isatty()
    os.close(fd)
    return True


def run(args: Namespace) -> int:
    from kms import logs
    from kms.cli import session
    from kms.hygiene import harden_process

    settings = session.load_settings(args)
    options = options_from_args(args, settings)
    logs.configure(options.log_format, _log_level(settings))
    logs.register_api_key(options.api_key)
    logs.register_configured_secrets(settings)
    harden_process()
    provider = session.password_provider(args, settings)
    # An interactive provider with no terminal to ask on (a pod, a service): start sealed and wait for `kms unlock`.
    sealed_start = bool(getattr(args, "sealed", False)) or (
        bool(getattr(provider, "interactive", False)) and not _has_terminal()
    )
    socket_flag = getattr(args, "socket", None)
    metrics: Metrics = DaemonMetrics() if options.metrics_port is not None else NullMetrics()
    shutdown = Shutdown(options.shutdown_timeout)
    slot = StoreSlot()
    control = SealControl(slot, session.store_path(args), session.insecure_test_kdf(), metrics)
    with ExitStack() as stack:
        stack.callback(slot.release)
        if not sealed_start:
            with provider.fetch() as password:
                control.install(open_store_with(control.path, password, control.allow_weak_kdf))
        metrics.set_sealed(sealed_start)
        client = TatumClient(
            options.api_url,
            options.api_key,
            max_connections=options.config.concurrency + len(options.config.chains) + 4,
            testnet_type=options.testnet_type,
            cancel=shutdown.hard,
            max_pending_bytes=options.max_pending_bytes,
        )
        stack.callback(client.close)
        four_eye = None
        if options.external_url:
            four_eye = FourEye(
                options.external_url,
                options.external_url_method,
                timeout=options.four_eye_timeout,
                max_connections=options.config.concurrency + 4,
            )
            stack.callback(four_eye.close)
        audit = stack.enter_context(_audit_sink(options.audit_log, settings))
        daemon = Daemon(
            options.config,
            slot,
            client,
            four_eye=four_eye,
            lookups=_evm_lookups(client, options),
            metrics=metrics,
            audit=audit,
            stop=shutdown.stop,
            seal=control,
        )
        control.bind_cycle_lock(lambda: daemon.cycle_lock)
        if sealed_start or socket_flag:
            from kms.seal import SealedGate, default_socket_path

            socket_path = Path(socket_flag).expanduser() if socket_flag else default_socket_path(settings)
            gate = SealedGate(socket_path, control.verify, control.seal, sealed=sealed_start)
            gate.start()
            stack.callback(gate.close)
            if sealed_start:
                log.warning("sealed: waiting for the store password; run: kms unlock --socket %s", socket_path)
        if options.metrics_port is not None:
            from kms.health import HealthServer

            health = HealthServer(
                options.metrics_address,
                options.metrics_port,
                metrics,  # type: ignore[arg-type]
                is_ready=daemon.ready,
            ).start()
            stack.callback(health.stop)
        daemon.warm_up()
        _announce(options)
        shutdown.install()
        stack.callback(shutdown.restore)
        finished = shutdown.run(daemon.run_forever)
        if not finished:
            # Workers are stuck in network calls past the deadline: wipe the keys, then leave without joining them.
            slot.release()
            log.info("stopped; secrets wiped")
            logging.shutdown()
            os._exit(0)
        daemon.close()
        if options.config.run_once and daemon.last_report is not None:
            sys.stdout.write(json.dumps(daemon.last_report.summary()) + "\n")
            sys.stdout.flush()
    log.info("stopped; secrets wiped")
    return 0


def _evm_lookups(client: TatumClient, options: DaemonOptions) -> Any:
    """The EVM signers' nonce / gas / chain-id look-ups, through the daemon's client: same connection pool, same
    retry policy (so the look-ups' own retries are turned off)."""
    from kms.signing.evm_lookups import LookupRetry, TatumEvmLookups

    return TatumEvmLookups(
        client.http, options.api_key, retry=LookupRetry(attempts=1), testnet_type=options.testnet_type
    )


def _announce(options: DaemonOptions) -> None:
    config = options.config
    log.info(
        "kms daemon: %s, chains %s, period %gs, concurrency %d, four-eye %s, Tatum API %s%s",
        "testnet" if config.testnet else "mainnet",
        ",".join(config.chains),
        config.period,
        config.concurrency,
        f"{options.external_url_method} {options.external_url}" if options.external_url else "off",
        options.api_url,
        ", run once" if config.run_once else "",
    )
