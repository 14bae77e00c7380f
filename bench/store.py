"""Wallet store timings: one add / get / remove / chain listing at 10, 25,000 and 550,000 wallets, and the real unlock.

Run: .venv/bin/python bench/store.py [--dir DIR] [--repeat N]
Takes a minute or two. The stores used for the scale figures are filled with a deliberately weak KDF (filling and
reopening them is then cheap); the KDF only runs at open, so per-operation figures do not depend on it. The unlock
figure uses the real default (Argon2id, 64 MiB, 3 passes, 4 lanes).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.chains import CHAIN_ORDER
from kms.hygiene import SecretBuffer
from kms.store import MAX_WALLETS_PER_CHAIN, KdfParams, WalletStore

PASSWORD = b"bench password"
MNEMONIC_RECORD = {
    "mnemonic": " ".join(["abandon"] * 23 + ["art"]),
    "xpub": "xpub6E69aETfUiLN4iukqmNnjcitJUSWw2fqU1Gj2Sh48AN9Je4PaRZp9DDJiQng6GMD9YCnNabyWtRyJGT2sBnmX33bVeCwJkYpzfS8",
}
KEY_RECORD = {"privateKey": "0x" + "5a" * 32}


def timed(operation: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - start)
    return samples


def describe(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {fmt(statistics.median(ordered))}  p90 {fmt(p90)}  (n={len(ordered)})"


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms" if seconds < 10 else f"{seconds:8.1f} s "


def open_weak(path: Path) -> WalletStore:
    return WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    )


def fill(store: WalletStore, target: int) -> None:
    """Top the store up to `target` wallets: chain after chain, 25,000 each (mainnet), with add_many."""
    counts = store.counts()
    have = sum(counts.values())
    for chain in CHAIN_ORDER:
        if have >= target:
            return
        room = MAX_WALLETS_PER_CHAIN - counts.get((chain, False), 0)
        batch = min(room, target - have)
        if batch > 0:
            store.add_many([(chain, False, MNEMONIC_RECORD)] * batch)
            have += batch


def measure_stage(path: Path, size: int, repeat: int, rng: random.Random) -> None:
    with open_weak(path) as store:
        started = time.perf_counter()
        fill(store, size)
        filled_in = time.perf_counter() - started
    open_samples = []
    for _ in range(3):
        start = time.perf_counter()
        store = open_weak(path)
        open_samples.append(time.perf_counter() - start)
        store.close()
    with open_weak(path) as store:
        total = sum(store.counts().values())
        biggest = max(store.counts().items(), key=lambda item: item[1])[0]
        all_ids = [m.signature_id for m in store.list_meta()]
        sample_ids = rng.sample(all_ids, min(len(all_ids), repeat))
        added: list[str] = []
        add = timed(lambda: added.append(store.add("ETH", True, KEY_RECORD)), repeat)
        small_chain = store.signature_ids("ETH", True)
        list_small = timed(lambda: store.signature_ids("ETH", True), max(5, repeat // 10))
        id_iter = iter(sample_ids * (repeat // len(sample_ids) + 1))
        get = timed(lambda: store.get(next(id_iter)).wipe(), repeat)
        remove_iter = iter(list(added))
        remove = timed(lambda: store.remove(next(remove_iter)), repeat)
        big_chain = store.signature_ids(*biggest)
        list_big = timed(lambda: store.signature_ids(*biggest), max(5, repeat // 10))
        counts = timed(store.counts, max(5, repeat // 10))
    size_mb = path.stat().st_size / 1e6
    print(f"\n== {total:,} wallets  (file {size_mb:.1f} MB; filled with add_many in {filled_in:.1f} s, weak KDF)")
    print(f"  open (weak KDF)            {describe(open_samples)}")
    print(f"  add one                    {describe(add)}")
    print(f"  get one                    {describe(get)}")
    print(f"  remove one                 {describe(remove)}")
    print(f"  list one chain ({len(small_chain):>6,} ids) {describe(list_small)}")
    print(f"  list one chain ({len(big_chain):>6,} ids) {describe(list_big)}")
    print(f"  counts()                   {describe(counts)}")


def measure_bulk(path: Path) -> None:
    with open_weak(path) as store:
        total = sum(store.counts().values())
        start = time.perf_counter()
        exported = store.export()
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        store.rotate_data_key()
        rotate_s = time.perf_counter() - start
    print(f"  export all ({len(exported):,} decrypted)  {fmt(export_s)}")
    print(f"  data-key rotation ({total:,} re-encrypted, one transaction) {fmt(rotate_s)}")


def measure_unlock(directory: Path) -> None:
    path = directory / "argon2id.dat"
    start = time.perf_counter()
    WalletStore.open(path, SecretBuffer(PASSWORD), create=True).close()
    create_s = time.perf_counter() - start
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        store = WalletStore.open(path, SecretBuffer(PASSWORD))
        samples.append(time.perf_counter() - start)
        params = store.kdf
        store.close()
    print(f"\n== unlock with the real default KDF ({params.describe()})")
    print(f"  create (one derivation)    {fmt(create_s)}")
    print(f"  open                       {describe(samples)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="where to build the stores (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=200, help="samples per single-wallet operation")
    args = parser.parse_args()
    print(f"kms wallet store bench  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print("Scale stores are filled with KdfParams.insecure_for_tests() (weak KDF, for filling speed only).")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        measure_unlock(directory)
        rng = random.Random(1)
        path = directory / "wallet.dat"
        for size in (10, 25_000, len(CHAIN_ORDER) * MAX_WALLETS_PER_CHAIN):
            measure_stage(path, size, args.repeat, rng)
        measure_bulk(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
