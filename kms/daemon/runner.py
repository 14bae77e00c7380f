"""``kms daemon``: options -> a running Daemon, its listeners, signals and the final wipe."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from backends import PasswordProvider
from kms import session
from kms.daemon.approvals import Approvals
from kms.daemon.four_eye import FourEye
from kms.daemon.loop import AuditSink, Daemon
from kms.daemon.maintenance import Maintenance
from kms.daemon.options import DaemonOptions, options_from_args
from kms.daemon.quarantine import InFlight, inflight_directory
from kms.daemon.replication import Replication, exclusive_lock, lease_from, ttl_for
from kms.daemon.shutdown import Shutdown
from kms.metrics import DaemonMetrics, Metrics, NullMetrics
from kms.seal.control import SealControl, StoreSlot
from kms.store.journal import retention_days
from kms.tatum.client import TatumClient

log = logging.getLogger("kms.daemon")


@dataclass
class _Run:
    """What one daemon run holds; everything in ``stack`` is undone (keys wiped first) when it ends."""

    options: DaemonOptions
    settings: Mapping[str, str]
    metrics: Metrics
    shutdown: Shutdown
    slot: StoreSlot
    control: SealControl
    stack: ExitStack
    replica: Replication | None = None


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


def run(args: object) -> int:
    """Run the daemon for a parsed ``kms daemon`` command line."""
    flags = session.SessionFlags.of(args)
    settings = session.load_settings(flags)
    return serve(options_from_args(args, settings), flags, settings)


def serve(options: DaemonOptions, flags: session.SessionFlags, settings: Mapping[str, str]) -> int:
    """Run the daemon until it is stopped (or, with runOnce, for one cycle); the keys are wiped before it returns."""
    from kms import logs
    from kms.hygiene import harden_process

    logs.configure(options.log_format, options.log_level)
    logs.register_api_key(options.api_key)
    logs.register_configured_secrets(settings)
    harden_process()
    provider = session.password_provider(flags, settings)
    # An interactive provider with no terminal to ask on (a pod, a service): start sealed and wait for `kms unlock`.
    sealed_start = options.sealed or (bool(getattr(provider, "interactive", False)) and not _has_terminal())
    metrics: Metrics = DaemonMetrics() if options.metrics_port is not None else NullMetrics()
    slot = StoreSlot()
    backend = session.store_backend(flags, settings).as_replica()
    control = SealControl(slot, backend, session.insecure_test_kdf(), metrics)
    with ExitStack() as stack:
        stack.enter_context(exclusive_lock(backend))
        stack.callback(slot.release)
        running = _Run(options, settings, metrics, Shutdown(options.shutdown_timeout), slot, control, stack)
        if backend.replicated:
            running.replica = Replication(
                lambda: slot.database, slot.signature_ids, backend.replica_id,
                ttl_s=ttl_for(options.config.period), lease_s=lease_from(settings),
            )  # fmt: skip
        _open_store(running, provider, sealed_start)
        daemon = _build_daemon(running)
        _start_gate(running, sealed_start)
        _start_health(running, daemon)
        daemon.warm_up()
        _announce(options)
        _run_until_stopped(running, daemon)
    log.info("stopped; secrets wiped")
    return 0


def _open_store(running: _Run, provider: PasswordProvider, sealed_start: bool) -> None:
    control = running.control
    if not sealed_start:
        with provider.fetch() as password:
            control.install(session.open_existing_store(control.path, password, control.allow_weak_kdf))
    running.metrics.set_sealed(sealed_start)


def _build_daemon(running: _Run) -> Daemon:
    options, stack = running.options, running.stack
    config = options.config
    client = TatumClient(
        options.api_url,
        options.api_key,
        max_connections=config.concurrency + len(config.chains) + 4,
        testnet_type=options.testnet_type,
        cancel=running.shutdown.hard,
        max_pending_bytes=options.max_pending_bytes,
        observer=running.metrics,
    )
    stack.callback(client.close)
    four_eye = None
    if options.external_url:
        four_eye = FourEye(
            options.external_url,
            options.external_url_method,
            timeout=options.four_eye_timeout,
            max_connections=config.concurrency + 4,
        )
        stack.callback(four_eye.close)
    inflight = InFlight(inflight_directory(running.settings, _store_file(running.control.path)))
    daemon = Daemon(
        config,
        running.slot,
        client,
        four_eye=four_eye,
        gateway=client.gateway(options.config.testnet),
        metrics=running.metrics,
        audit=stack.enter_context(_audit_sink(options.audit_log, running.settings)),
        stop=running.shutdown.stop,
        seal=running.control,
        replica=running.replica,
        signer_settings=options.signer_settings,
        inflight=inflight,
        approvals=_approvals(running),
        maintenance=Maintenance(
            running.slot, client, inflight, retention_days=retention_days(running.settings),
            audit_path=Path(options.audit_log).expanduser() if options.audit_log else None,
        ),
    )  # fmt: skip
    if running.replica is not None:
        running.replica.start()
        stack.callback(running.replica.stop)
    running.control.bind_cycle_lock(lambda: daemon.cycle_lock)
    return daemon


def _approvals(running: _Run) -> Approvals:
    """The local policy and approval v2 (kms.approval.gate), or none of them (upstream's mode). SIGHUP reloads the
    policy before the next cycle (audited, with old and new hash)."""
    options = running.options
    if options.approval == "v1" and options.policy is None:
        return Approvals(None, running.slot)
    from kms.approval.gate import ApprovalGate

    gate = ApprovalGate.from_options(
        running.settings, testnet=options.config.testnet, approval=options.approval, policy_path=options.policy,
        store=running.control.path, approval_url=options.approval_url,
        approver_key=options.approver_key,
    )  # fmt: skip
    running.stack.callback(gate.close)
    metric = None
    registry = getattr(running.metrics, "registry", None)
    if gate.policy is not None and registry is not None:
        from kms.metrics import PolicyInfo

        metric = PolicyInfo(registry)
    approvals = Approvals(gate, running.slot, metric)
    previous = signal.signal(signal.SIGHUP, lambda *_: approvals.request_reload())
    running.stack.callback(signal.signal, signal.SIGHUP, previous)
    return approvals


def _store_file(location: object) -> Path | None:
    if isinstance(location, Path):
        return location
    path = getattr(location, "path", None)
    return path if isinstance(path, Path) else None


def _start_gate(running: _Run, sealed_start: bool) -> None:
    """Serve the unseal socket when starting sealed, or when --socket asks for it (so that 'kms seal' works)."""
    if not (sealed_start or running.options.socket):
        return
    from kms.seal import SealedGate, default_socket_path

    control = running.control
    socket_path = running.options.socket or default_socket_path(running.settings)
    gate = SealedGate(
        socket_path,
        control.verify,
        control.seal,
        sealed=sealed_start,
        on_wrong_password=running.metrics.unlock_failed,
    )
    gate.start()
    running.stack.callback(gate.close)
    if sealed_start:
        log.warning("sealed: waiting for the store password; run: kms unlock --socket %s", socket_path)


def _start_health(running: _Run, daemon: Daemon) -> None:
    options = running.options
    if options.metrics_port is None:
        return
    from kms.health import HealthServer

    health = HealthServer(
        options.metrics_address,
        options.metrics_port,
        running.metrics,  # type: ignore[arg-type]
        is_ready=daemon.ready,
        status=running.replica.status if running.replica is not None else None,
    ).start()
    running.stack.callback(health.stop)


def _run_until_stopped(running: _Run, daemon: Daemon) -> None:
    shutdown = running.shutdown
    shutdown.install()
    running.stack.callback(shutdown.restore)
    if not shutdown.run(daemon.run_forever):
        # Workers are stuck in network calls past the deadline: wipe the keys, then leave without joining them.
        running.slot.release()
        log.info("stopped; secrets wiped")
        logging.shutdown()
        os._exit(0)
    daemon.close()
    if running.options.config.run_once and daemon.last_report is not None:
        sys.stdout.write(json.dumps(daemon.last_report.summary()) + "\n")
        sys.stdout.flush()


def _announce(options: DaemonOptions) -> None:
    config = options.config
    log.info(
        "kms daemon: %s, chains %s, period %gs, concurrency %d, four-eye %s, approval %s, policy %s, Tatum API %s%s",
        "testnet" if config.testnet else "mainnet",
        ",".join(config.chains),
        config.period,
        config.concurrency,
        f"{options.external_url_method} {options.external_url}" if options.external_url else "off",
        options.approval,
        options.policy or "none",
        options.api_url,
        ", run once" if config.run_once else "",
    )
