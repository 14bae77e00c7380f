"""`kms migrate --from OLD.dat`: import an upstream tatum-kms wallet store.

The upstream file is only read. When it sits at the store path itself (upstream's and kms's default is the same
~/.tatumrc/wallet.dat), the new store is built beside it, checked, and then swapped in; the upstream file stays
as `<name>.upstream-backup`, so at every instant one complete copy of every wallet is on disk.
"""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

from kms.cli import output
from kms.cli.progress import Progress
from kms.cli.session import load_settings, open_store, password_provider, store_path
from kms.errors import StoreError, UsageError
from kms.store import WalletStore
from kms.store.database import fsync_path
from kms.store.upstream import read_upstream


def migrate(args: Namespace) -> int:
    source = Path(args.source).expanduser()
    if WalletStore.probe(source) != "upstream":
        raise UsageError(f"{source} is not an upstream tatum-kms wallet file")
    settings = load_settings(args)
    with password_provider(args, settings).fetch() as password:
        records = read_upstream(source, password)
    target = store_path(args)
    in_place = target.exists() and target.resolve() == source.resolve()
    build_at = target.with_name(target.name + ".kms-migrating") if in_place else target
    backup = target.with_name(target.name + ".upstream-backup")
    if in_place:
        for leftover in (build_at, backup):
            if leftover.exists():
                raise StoreError(f"{leftover} exists from an earlier attempt; move it away and run migrate again")
    build_args = Namespace(**{**vars(args), "path": str(build_at)})
    created_here = WalletStore.probe(build_at) == "missing"
    try:
        with open_store(build_args, create=True) as store, Progress("migrate", len(records)) as progress:
            with progress.step(f"importing {len(records)} wallets"):
                imported = store.import_records(records)
            with progress.step("checking every wallet"):
                exported = store.export()
        # kms keeps chain codes upper case (upstream keeps them as typed); everything else must come back unchanged.
        expected = {sid: {**record, "chain": str(record.get("chain", "")).upper()} for sid, record in records.items()}
        differing = [sid for sid in records if exported.get(sid) != expected[sid]]
        if differing:
            raise StoreError(f"{len(differing)} wallets did not round-trip; the upstream file is untouched")
    except BaseException:
        if created_here:  # it holds nothing but this failed attempt
            _remove_store(build_at)
        raise
    result: dict[str, object] = {"migrated": imported, "wallets": len(records), "from": str(source)}
    if in_place:
        try:
            os.link(source, backup)
            fsync_path(target.parent)
            os.replace(build_at, target)
            fsync_path(target.parent)
        except OSError as exc:
            raise StoreError(
                f"could not swap the new store into place ({exc.strerror}); the upstream file is untouched and the "
                f"checked new store is at {build_at}"
            ) from None
        result["upstreamBackup"] = str(backup)
    # The upstream file is protected by one MD5 round per guess: keep it private, and get rid of it soon.
    kept = backup if in_place else source
    if in_place:
        os.chmod(backup, 0o600)  # only this name still reaches the upstream file's inode
    result["warning"] = (
        f"{kept} still holds every wallet under upstream's weak encryption; shred it once the new store is checked"
    )
    result["store"] = str(target)
    output.emit(result)
    return 0


def _remove_store(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
