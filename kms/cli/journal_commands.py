"""`kms journal list|release|prune`: the daemon's signing journal, for operators.

The journal is what makes signing exactly-once: a pending id that was signed is only ever re-sent with the same
bytes. When such a transaction can never be accepted (say, its nonce was taken by another transaction), or an id is
held (the audit log shows it signed elsewhere) or quarantined (it took a worker down), an operator can release the
id, after which the daemon may sign it anew. That is a deliberate double-signing decision, so it needs the store
password like any other change to the store, and it names what it released.
"""

from __future__ import annotations

import argparse

from kms.cli import output
from kms.cli.command_types import CommandFactory
from kms.cli.session import load_settings, open_store
from kms.store.journal import DEFAULT_RETENTION_DAYS, RETENTION_SETTING, JournalEntry, JournalState, retention_days

HELP = (
    "The daemon's signing journal: 'kms journal list [--status S]' shows each pending id with its chain, state and "
    "the SHA-256 of what was signed; 'kms journal release ID' forgets one id so that the daemon may sign it again "
    "(only for a signed transaction that can never be accepted, or a held or poisoned one you have checked); "
    f"'kms journal prune [--days N]' deletes broadcast and completed entries older than N days ({RETENTION_SETTING}, "
    f"default {DEFAULT_RETENTION_DAYS})."
)


def register(command: CommandFactory) -> None:
    p = command("journal", HELP, journal)
    p.add_argument("action", choices=["list", "release", "prune"], metavar="ACTION", help="list, release or prune")
    p.add_argument("pendingId", nargs="?", metavar="PENDING_ID", help="with release: the pending transaction id")
    states = ", ".join(s.value for s in JournalState)
    p.add_argument("--status", help=f"with list: only entries in this state ({states})")
    p.add_argument("--days", type=int, help=f"with prune: the retention in days (default {DEFAULT_RETENTION_DAYS})")


def describe(entry: JournalEntry) -> dict[str, object]:
    described: dict[str, object] = {
        "pendingId": entry.pending_id,
        "chain": entry.chain,
        "status": entry.status,
        "txDataSha256": entry.payload_sha256 or None,
        "createdAt": entry.created_at,
        "updatedAt": entry.updated_at,
    }
    if entry.reason:
        described["reason"] = entry.reason
    if entry.meta is not None:
        described["meta"] = entry.meta
    if entry.reconciled_at is not None:
        described["reconciledAt"] = entry.reconciled_at
    if entry.state is JournalState.POISONED:
        described["reported"] = entry.reported
    return described


def journal(args: argparse.Namespace) -> int:
    if args.action == "list":
        with open_store(args) as store:
            entries = store.journal.entries(args.status)
        output.emit([describe(e) for e in entries])
        return 0
    if args.action == "prune":
        days = args.days if args.days is not None else retention_days(load_settings(args))
        with open_store(args) as store:
            pruned = store.journal.prune(days)
        output.emit({"pruned": pruned, "olderThanDays": days})
        return 0
    if not args.pendingId:
        output.error("journal release needs the pending transaction id")
        return 2
    with open_store(args) as store:
        entry = store.journal.release(args.pendingId)
    output.emit({"released": args.pendingId, "status": entry.status, "txDataSha256": entry.payload_sha256 or None})
    return 0
