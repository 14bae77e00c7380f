"""The daemon-side commands: ``daemon``, ``sandbox``, ``demo``, ``unlock``, ``seal``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
CommandFactory = Callable[[str, str, Handler], argparse.ArgumentParser]


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
    _flag(p, "period", None, type=float, default=5.0, metavar="SECONDS", help="seconds between polls (default 5)")
    _flag(p, "chain", None, metavar="CHAIN[,CHAIN...]", help="chains to poll (default: every supported chain)")
    _flag(
        p, "externalUrl", "external-url", metavar="URL", help="four-eye approval server: GET/POST URL/{id}; 2xx signs"
    )
    _flag(
        p,
        "externalUrlMethod",
        "external-url-method",
        default="GET",
        type=str.upper,
        choices=("GET", "POST"),
        help="GET (default) or POST (the pending transaction as JSON)",
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
    _flag(p, "concurrency", None, type=int, default=16, metavar="N", help="transactions processed at once (default 16)")
    own = {"kebab_first": True}
    _flag(
        p,
        "shutdownTimeout",
        "shutdown-timeout",
        **own,
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, time allowed to finish in-flight work (default 20)",
    )
    _flag(
        p,
        "metricsAddress",
        "metrics-address",
        **own,
        default="127.0.0.1",
        metavar="HOST",
        help="address of the /healthz /readyz /metrics listener (default 127.0.0.1)",
    )
    _flag(p, "metricsPort", "metrics-port", **own, type=int, metavar="PORT", help="serve /healthz /readyz /metrics")
    _flag(p, "auditLog", "audit-log", **own, metavar="FILE", help="append an audit record per signing decision")
    _flag(p, "logFormat", "log-format", **own, choices=("text", "json"), default="text", help="log line format")
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
        _lazy("kms.daemon.seal_commands", "unlock"),
    )
    _flag(p, "socket", None, metavar="PATH", help="the daemon's unseal socket (default as the daemon's --socket)")
    p = command(
        "seal",
        "Seal a running daemon: it wipes its keys and stops signing until unlocked again.",
        _lazy("kms.daemon.seal_commands", "seal"),
    )
    _flag(p, "socket", None, metavar="PATH", help="the daemon's unseal socket (default as the daemon's --socket)")
