"""The daemon-side commands: ``daemon``, ``sandbox``, ``demo``, ``unlock``, ``seal``."""

from __future__ import annotations

import argparse

from kms.cli.command_types import CommandFactory, Handler
from kms.daemon.model import DEFAULTS


def _lazy(module: str, name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args)

    return run


def _flag(
    parser: argparse.ArgumentParser, camel: str, kebab: str | None, *, kebab_first: bool = False, **kwargs: object
) -> None:
    """Upstream's camelCase flag and its kebab-case alias; kms's own flags show the kebab-case name first."""
    names = [f"--{camel}"] + ([f"--{kebab}"] if kebab and kebab != camel else [])
    if kebab_first:
        names.reverse()
    parser.add_argument(*names, dest=camel, **kwargs)  # type: ignore[arg-type]


def register(command: CommandFactory) -> None:
    p = command(
        "daemon",
        "Run as a daemon: poll the Tatum API for pending transactions of the stored wallets, check each with the "
        "four-eye server (--externalUrl, mandatory on mainnet), sign locally and broadcast.",
        _lazy("kms.daemon.runner", "run"),
    )
    _flag(
        p,
        "period",
        None,
        type=float,
        default=DEFAULTS.period,
        metavar="SECONDS",
        help=f"seconds between polls (default {DEFAULTS.period:g})",
    )
    _flag(p, "chain", None, metavar="CHAIN[,CHAIN...]", help="chains to poll (default: every supported chain)")
    _flag(
        p, "externalUrl", "external-url", metavar="URL", help="four-eye approval server: GET/POST URL/{id}; 2xx signs"
    )
    _flag(
        p,
        "externalUrlMethod",
        "external-url-method",
        default=DEFAULTS.external_url_method,
        type=str.upper,
        choices=("GET", "POST"),
        help=f"GET or POST (the pending transaction as JSON); default {DEFAULTS.external_url_method}",
    )
    _flag(p, "runOnce", "run-once", action="store_true", default=False, help="one poll cycle, then exit")
    _flag(p, "wallets", None, metavar="ID[,ID...]", help="with --runOnce: poll for these signatureIds only")
    _flag(
        p,
        "transactionIds",
        "transaction-ids",
        metavar="ID[,ID...]",
        help="with --runOnce: process only these pending transaction ids",
    )
    _flag(
        p,
        "concurrency",
        None,
        type=int,
        default=DEFAULTS.concurrency,
        metavar="N",
        help=f"transactions processed at once (default {DEFAULTS.concurrency}, at most {DEFAULTS.max_concurrency})",
    )
    own = {"kebab_first": True}
    _flag(
        p,
        "approval",
        None,
        type=str.lower,
        choices=("v1", "v2"),
        default=DEFAULTS.approval,
        help=f"v1: upstream's four-eye check (--externalUrl); v2: signed requests and answers bound to the payload "
        f"digest (--approval-url, --approver-key); default {DEFAULTS.approval}",
    )
    _flag(
        p,
        "approvalUrl",
        "approval-url",
        **own,
        metavar="URL",
        help="approval v2 approver (else TATUM_KMS_APPROVAL_URL)",
    )
    _flag(
        p,
        "approverKey",
        "approver-key",
        **own,
        metavar="PEM",
        help="approval v2: the approver's public key to pin (PEM file; else TATUM_KMS_APPROVER_PUBLIC_KEY)",
    )
    _flag(
        p,
        "policy",
        None,
        metavar="FILE",
        help="local policy (TOML) checked before any approval and signature; SIGHUP reloads it (audited)",
    )
    _flag(
        p,
        "maxInFlight",
        "max-in-flight",
        **own,
        type=int,
        default=None,
        metavar="N",
        help=f"transactions admitted at once over all senders (default {DEFAULTS.max_in_flight}; setting "
        "TATUM_KMS_MAX_IN_FLIGHT)",
    )
    _flag(
        p,
        "maxInFlightPerSender",
        "max-in-flight-per-sender",
        **own,
        type=int,
        default=None,
        metavar="N",
        help=f"of those, at most N of one sender (default {DEFAULTS.max_in_flight_per_sender}; setting "
        "TATUM_KMS_MAX_IN_FLIGHT_PER_SENDER)",
    )
    _flag(
        p,
        "allowInsecureExternalUrl",
        "allow-insecure-external-url",
        **own,
        action="store_true",
        default=False,
        help="accept a plain http:// --externalUrl to a non-loopback host on mainnet (anyone on the network path "
        "could approve transactions)",
    )
    _flag(
        p,
        "shutdownTimeout",
        "shutdown-timeout",
        **own,
        type=float,
        default=DEFAULTS.shutdown_timeout,
        metavar="SECONDS",
        help=f"on SIGTERM/SIGINT, time allowed to finish in-flight work (default {DEFAULTS.shutdown_timeout:g})",
    )
    _flag(
        p,
        "metricsAddress",
        "metrics-address",
        **own,
        default=DEFAULTS.metrics_address,
        metavar="HOST",
        help=f"address of the /healthz /readyz /metrics listener (default {DEFAULTS.metrics_address})",
    )
    _flag(p, "metricsPort", "metrics-port", **own, type=int, metavar="PORT", help="serve /healthz /readyz /metrics")
    _flag(p, "auditLog", "audit-log", **own, metavar="FILE", help="append an audit record per signing decision")
    _flag(
        p,
        "logFormat",
        "log-format",
        **own,
        choices=("text", "json"),
        default=DEFAULTS.log_format,
        help=f"log line format (default {DEFAULTS.log_format})",
    )
    _flag(
        p,
        "sealed",
        None,
        action="store_true",
        default=False,
        help="start sealed: wait for 'kms unlock' on the unseal socket (automatic when the prompt has no terminal)",
    )
    _flag(
        p,
        "socket",
        None,
        metavar="PATH",
        help="unseal socket (default $TATUM_KMS_UNSEAL_SOCKET, $XDG_RUNTIME_DIR/kms/unseal.sock or "
        "~/.tatumrc/run/unseal.sock); given without --sealed, 'kms seal' can seal this daemon later",
    )

    p = command(
        "sandbox",
        "Run a local double of the Tatum API (and a four-eye approval server) on 127.0.0.1 for staging and tests.",
        _lazy("kms.sandbox.command", "run"),
    )
    from kms.cli.sandbox_help import SANDBOX_EPILOG  # the admin API's bodies (issue 17)

    p.epilog, p.formatter_class = SANDBOX_EPILOG, argparse.RawDescriptionHelpFormatter
    _flag(p, "port", None, type=int, default=0, metavar="PORT", help="port to listen on (default: any free port)")
    _flag(p, "latency", None, type=float, default=0.0, metavar="SECONDS", help="delay every Tatum API answer")
    _flag(
        p,
        "faults",
        None,
        metavar="JSON",
        help='fault rules, e.g. \'[{"kind": "status", "status": 503, "times": 2}]\' (kinds: status, reset, '
        "malformed, wrongshape, delay; fields: path, method, signatureId, status, retryAfter, seconds, times)",
    )
    _flag(
        p,
        "approval",
        None,
        choices=("approve", "deny", "notfound", "error", "timeout"),
        default="approve",
        help="four-eye verdict for every id not configured otherwise (default approve)",
    )
    from kms.sandbox.approver_options import add_approver_flags

    add_approver_flags(p)

    command(
        "demo",
        "Offline demonstration: a temporary store, fresh wallets, pending transactions for every chain kms can sign "
        "on an embedded sandbox, one daemon cycle with four-eye (one refusal), and what was signed and verified.",
        _lazy("kms.demo", "run"),
    )
    p = command(
        "unlock",
        "Unlock a daemon that started sealed: send the store password (from the chosen backend) to its socket.",
        _lazy("kms.cli.seal_commands", "unlock"),
    )
    _socket_client_flags(p)
    p = command(
        "seal",
        "Seal a running daemon: it wipes its keys and stops signing until unlocked again.",
        _lazy("kms.cli.seal_commands", "seal"),
    )
    _socket_client_flags(p)


def _socket_client_flags(p: argparse.ArgumentParser) -> None:
    _flag(p, "socket", None, metavar="PATH", help="the daemon's unseal socket (default as the daemon's --socket)")
    _flag(
        p,
        "peerUid",
        "peer-uid",
        kebab_first=True,
        type=uid,
        metavar="UID",
        help="the uid the daemon runs as, when not your own (by default the password goes only to a daemon of your "
        "own uid, or root)",
    )


def uid(text: str) -> int:
    """A numeric uid (argparse names it in its error)."""
    value = int(text)
    if not 0 <= value < 2**32 - 1:
        raise ValueError(text)
    return value
