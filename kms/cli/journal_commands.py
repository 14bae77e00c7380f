"""`kms journal list|release`: the daemon's signing journal, for operators.

The journal is what makes signing exactly-once: a pending id that was signed is only ever re-sent with the same
bytes. When such a transaction can never be accepted (say, its nonce was taken by another transaction), an operator
can release the id, after which the daemon may sign it anew. That is a deliberate double-signing decision, so it
needs the store password like any other change to the store, and it names what it released.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable

from kms.cli import output
from kms.cli.session import open_store

Handler = Callable[[argparse.Namespace], int]
CommandFactory = Callable[[str, str, Handler], argparse.ArgumentParser]

HELP = (
    "The daemon's signing journal: 'kms journal list [--status S]' shows each pending id with its chain, status and "
    "the SHA-256 of what was signed; 'kms journal release ID' forgets one id so that the daemon may sign it again "
    "(only for a signed transaction that can never be accepted)."
)


def register(command: CommandFactory) -> None:
    p = command("journal", HELP, journal)
    p.add_argument("action", choices=["list", "release"], metavar="ACTION", help="list or release")
    p.add_argument("pendingId", nargs="?", metavar="PENDING_ID", help="with release: the pending transaction id")
    p.add_argument("--status", help="with list: only entries in this status (signed, broadcast, refused)")


def journal(args: argparse.Namespace) -> int:
    if args.action == "list":
        with open_store(args) as store:
            entries = store.journal_entries(args.status)
        output.emit(
            [
                {
                    "pendingId": e.pending_id,
                    "chain": e.chain,
                    "status": e.status,
                    "txDataSha256": hashlib.sha256(e.tx_data.encode()).hexdigest(),
                    "createdAt": e.created_at,
                    "updatedAt": e.updated_at,
                }
                for e in entries
            ]
        )
        return 0
    if not args.pendingId:
        output.error("journal release needs the pending transaction id")
        return 2
    with open_store(args) as store:
        entry = store.journal_lookup(args.pendingId)
        store.journal_release(args.pendingId)
    released = {"released": args.pendingId}
    if entry is not None:
        released.update(status=entry.status, txDataSha256=hashlib.sha256(entry.tx_data.encode()).hexdigest())
    output.emit(released)
    return 0
