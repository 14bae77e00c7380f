"""``kms approval pubkey`` and ``kms policy check|explain``: the operator's side of approvals v2 and the local policy.

- ``kms approval pubkey``: the daemon's approval public key (from TATUM_KMS_APPROVAL_KEY or _FILE), for the approver
  to pin. Only the public half is printed.
- ``kms policy check FILE``: validate a policy file and print it normalised (JSON), with its SHA-256.
- ``kms policy explain PENDING.json --policy FILE``: decode a pending transaction (as the Tatum API hands it out,
  one object) and show what the policy decides and why. Nothing is signed and nothing is written; the 24-hour
  figures are read from the store file (``--path``) when it exists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kms.bounded_file import read_bounded
from kms.cli import output
from kms.cli.command_types import CommandFactory
from kms.cli.session import load_settings, store_path
from kms.errors import UsageError

MAX_PENDING_FILE = 8 * 1024 * 1024

APPROVAL_HELP = (
    "Approval protocol v2: 'kms approval pubkey' prints the daemon's approval public key (from "
    "TATUM_KMS_APPROVAL_KEY or TATUM_KMS_APPROVAL_KEY_FILE, a P-256 or Ed25519 PEM private key) for the approver "
    "to pin."
)
POLICY_HELP = (
    "The local policy: 'kms policy check FILE' validates a TOML policy and prints it normalised with its SHA-256; "
    "'kms policy explain PENDING.json --policy FILE' shows what it decides for a pending transaction, and why, "
    "without signing."
)


def register(command: CommandFactory) -> None:
    p = command("approval", APPROVAL_HELP, approval)
    p.add_argument("action", choices=["pubkey"], metavar="ACTION", help="pubkey")
    p = command("policy", POLICY_HELP, policy)
    p.add_argument("action", choices=["check", "explain"], metavar="ACTION", help="check or explain")
    p.add_argument("file", metavar="FILE", help="check: the policy file; explain: the pending transaction (JSON)")
    p.add_argument("--policy", metavar="FILE", help="with explain: the policy file")


def approval(args: argparse.Namespace) -> int:
    from kms.approval.keys import load_signing_key

    output.emit(load_signing_key(load_settings(args)).public.as_json())
    return 0


def policy(args: argparse.Namespace) -> int:
    from kms.approval.policy import Policy

    if args.action == "check":
        output.emit(Policy.load(args.file).as_json())
        return 0
    if not args.policy:
        raise UsageError("policy explain needs --policy FILE")
    output.emit(_explain(Path(args.file), Policy.load(args.policy), args))
    return 0


def _explain(pending_file: Path, rules: object, args: argparse.Namespace) -> dict[str, object]:
    from kms.approval.decoders import decode_intent
    from kms.approval.policy import Policy, wallet_of
    from kms.approval.velocity import VelocityLedger
    from kms.tatum.pending import parse_pending

    assert isinstance(rules, Policy)
    document = _read_json(pending_file)
    chain = document.get("chain") if isinstance(document, dict) else None
    try:
        pending = parse_pending(document, str(chain or ""))
    except ValueError as exc:
        raise UsageError(f"{pending_file} is not a pending transaction: {exc}") from None
    testnet = bool(getattr(args, "testnet", False))
    intent = decode_intent(pending, testnet)
    store = store_path(args)
    ledger = VelocityLedger(store, readonly=True) if store.is_file() else None
    try:
        verdict = rules.evaluate(intent, wallet_of(pending), ledger)
    finally:
        if ledger is not None:
            ledger.close()
    return {
        "pendingId": pending.id,
        "policySha256": rules.sha256,
        "decision": verdict.as_json(),
        "velocityChecked": ledger is not None,
        "intent": intent.as_json(),
    }


def _read_json(path: Path) -> object:
    raw = read_bounded(path, MAX_PENDING_FILE, str(path))
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageError(f"{path} is not valid JSON") from None
