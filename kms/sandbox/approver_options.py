"""``kms sandbox --approver-v2``: an approval-v2 approver next to the Tatum API double, with its own fresh key.

Its URL and public key are printed with the sandbox's other addresses (pin the key with ``--approver-key`` or
TATUM_KMS_APPROVER_PUBLIC_KEY); ``--approver-rules`` decides per request, ``--approver-daemon-key`` pins the daemon's
key (``kms approval pubkey``) so that only its requests are answered.
"""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from kms.errors import UsageError


def add_approver_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approver-v2", dest="approverV2", action="store_true", help="also run an approval-v2 approver (own key)"
    )
    parser.add_argument(
        "--approver-rules",
        dest="approverRules",
        metavar="JSON",
        help='approver rules, first match wins, e.g. \'[{"decision": "deny", "destination": "0x..."}, {"decision": '
        '"deny", "amountAbove": 1000}]\' (fields: decision, pendingId, chain, destination, amountAbove)',
    )
    parser.add_argument(
        "--approver-default",
        dest="approverDefault",
        choices=("approve", "deny"),
        default="approve",
        help="the approver's decision when no rule matches (default approve)",
    )
    parser.add_argument(
        "--approver-daemon-key",
        dest="approverDaemonKey",
        metavar="PEM_FILE",
        help="the daemon's approval public key: requests signed by any other key are refused (default: not checked)",
    )
    parser.add_argument(
        "--approver-latency", dest="approverLatency", type=float, default=0.0, metavar="SECONDS", help="answer delay"
    )


def approver_from_args(args: argparse.Namespace) -> AbstractContextManager[Any]:
    """A started-on-enter Approver when ``--approver-v2`` is given, else a context that yields None."""
    if not getattr(args, "approverV2", False):
        return nullcontext(None)
    from kms.approval.approver import Approver, ApproverConfig, parse_rules
    from kms.approval.keys import public_key_from_pem

    try:
        rules = parse_rules(args.approverRules) if args.approverRules else []
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--approver-rules: {exc}") from None
    daemon_key = None
    if args.approverDaemonKey:
        try:
            with open(args.approverDaemonKey, "rb") as handle:
                daemon_key = public_key_from_pem(handle.read(64 * 1024), "--approver-daemon-key")
        except OSError as exc:
            raise UsageError(f"cannot read --approver-daemon-key: {exc.strerror}") from None
    latency = float(args.approverLatency or 0.0)
    if latency < 0:
        raise UsageError("--approver-latency must not be negative")
    config = ApproverConfig(
        daemon_key=daemon_key, rules=rules, default=args.approverDefault or "approve", latency=latency
    )
    return Approver(config)


def approver_info(approver: Any) -> dict[str, Any]:
    if approver is None:
        return {}
    return {
        "approvalV2Url": approver.url,
        "approverPublicKey": approver.public_key.pem(),
        "approverKeySha256": approver.public_key.fingerprint,
        "approverChecksDaemonKey": approver.config.daemon_key is not None,
    }
