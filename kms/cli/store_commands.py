"""`kms store copy --from SRC --to DST`: move a whole store between a file and a PostgreSQL database, either way.

SRC and DST are a file path, sqlite:///PATH or postgresql://HOST/DB (the database's password through the provider
layer, see kms.store_location). The store password opens SRC and, unchanged, the copy. Nothing is written to SRC.
"""

from __future__ import annotations

import argparse

from kms.cli import output
from kms.cli.command_types import CommandFactory
from kms.cli.progress import Progress
from kms.cli.session import load_settings, password_provider
from kms.session import insecure_test_kdf
from kms.store import WalletStore
from kms.store.copy import copy_store
from kms.store_location import open_location

HELP = (
    "Copy a whole wallet store between a file and a PostgreSQL database, either way: 'kms store copy --from SRC "
    "--to DST' (a path, sqlite:///PATH or postgresql://HOST/DB). Records stay sealed; every row is checked against "
    "the source before the copy is committed, and DST must not hold a store yet."
)


def register(command: CommandFactory) -> None:
    p = command("store", HELP, store)
    p.add_argument("action", choices=["copy"], metavar="ACTION", help="copy")
    p.add_argument("--from", dest="source", required=True, metavar="SRC", help="the store to copy (read only)")
    p.add_argument("--to", dest="target", required=True, metavar="DST", help="where the copy goes (must be empty)")


def store(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    source = open_location(args.source, settings)
    target = open_location(args.target, settings)
    with password_provider(args, settings).fetch() as password:
        opened = WalletStore.open(source, password, allow_weak_kdf=insecure_test_kdf())
    with opened:
        total = sum(opened.counts().values())
        with Progress("store copy", total) as progress, progress.step(f"copying and verifying {total} wallets"):
            report = copy_store(opened, target)
    output.emit(
        {"copied": report.wallets, "journalEntries": report.journal, "from": report.source, "to": report.target}
    )
    return 0
