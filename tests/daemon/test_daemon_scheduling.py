"""The scheduling parts of the daemon on their own: the in-flight caps under a burst, a sender's turn order, the nonce
allocator, the journal's group commit, and the nonce-gap metric of a real cycle (in-process daemon, sandbox HTTP
server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import generate_latest

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.daemon.journal import GroupCommit
from kms.daemon.loop import DaemonConfig, Outcome
from kms.daemon.nonces import SenderNonces
from kms.daemon.pipeline import Dispatcher, Kind, Limits, SenderLane, lanes_of
from kms.errors import JournalConflictError, SigningError
from kms.metrics import DaemonMetrics
from kms.sandbox import SandboxAdmin
from kms.store import WalletStore
from kms.store.journal import SignedPayload
from kms.tatum import TatumClient
from tests.daemon.test_daemon_loop import (  # noqa: F401 - client is a fixture
    client,
    eth_tx,
    make_daemon,
    pending,
    registry_with,
)


def tx(pid: str, wallet: str) -> PendingTransaction:
    return PendingTransaction(id=pid, chain="ETH", serialized_transaction="{}", hashes=(wallet,))


def test_a_burst_of_25000_stays_within_the_caps() -> None:
    batch = [tx(f"b{i}", f"w{i % 7}") for i in range(25_000)]
    lanes = lanes_of(batch, lambda p: Kind.FREE, lambda key: SenderNonces(lambda a, c: set()))
    running: Counter[object] = Counter()
    peak_total = 0
    peak_lane: Counter[object] = Counter()
    done: list[str] = []
    lock = threading.Lock()

    def work(lane: SenderLane, unit: list[PendingTransaction]) -> None:
        nonlocal peak_total
        with lock:
            running[lane.key] += 1
            peak_total = max(peak_total, sum(running.values()))
            peak_lane[lane.key] = max(peak_lane[lane.key], running[lane.key])
        time.sleep(0)
        with lock:
            running[lane.key] -= 1
            done.extend(p.id for p in unit)

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = Dispatcher(pool, Limits(10, 3), threading.Event()).dispatch(lanes, work)
        for future in futures:
            future.result()
    assert sorted(done) == sorted(p.id for p in batch)  # each once
    assert peak_total <= 10  # 32 threads, but never more than 10 admitted
    assert max(peak_lane.values()) <= 3


def test_a_serial_lane_is_one_unit() -> None:
    batch = [tx(f"s{i}", "w") for i in range(5)]
    lanes = lanes_of(batch, lambda p: Kind.SERIAL, lambda key: SenderNonces(lambda a, c: set()))
    units: list[list[str]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in Dispatcher(pool, Limits(4, 4), threading.Event()).dispatch(
            lanes, lambda lane, unit: units.append([p.id for p in unit])
        ):
            future.result()
    assert units == [["s0", "s1", "s2", "s3", "s4"]]


def test_nonce_turns_follow_the_api_order_whatever_the_threads_do() -> None:
    lane = SenderLane(("ETH", "w", None))
    items = [tx(f"t{i}", "w") for i in range(6)]
    for item in items:
        lane.add(item, Kind.NONCE)
    order: list[str] = []

    def take_turn(item: PendingTransaction) -> None:
        if item.id == "t2":  # refused before its turn: it leaves, the next one is not held up
            lane.leave(item)
            return
        with lane.turn(item):
            order.append(item.id)

    threads = [threading.Thread(target=take_turn, args=(item,)) for item in reversed(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["t0", "t1", "t3", "t4", "t5"]


def test_the_allocator_looks_up_once_skips_held_nonces_and_gives_back_unused_ones() -> None:
    lookups: list[int] = []
    nonces = SenderNonces(lambda address, count: {11, 12, 14})

    def look_up() -> int:
        lookups.append(1)
        return 10

    assert nonces.nonce_for("0xAbC", look_up) == 10
    nonces.commit(10)
    assert nonces.nonce_for("0xabc", look_up) == 13  # 11 and 12 are held by journaled payloads
    nonces.abandon()  # its signing failed: 13 stays free
    assert nonces.nonce_for("0xabc", look_up) == 13
    nonces.commit(13)
    assert nonces.nonce_for("0xabc", look_up) == 15
    assert lookups == [1]
    with pytest.raises(SigningError, match="not the one offered"):
        nonces.commit(99)
    with pytest.raises(SigningError, match="two different accounts"):
        nonces.nonce_for("0xdef", look_up)


def test_a_gap_is_counted_once_and_reported(
    store: WalletStore,
    client: TatumClient,  # noqa: F811
    admin: SandboxAdmin,
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    no_nonce = json.dumps({k: v for k, v in json.loads(eth_tx()).items() if k != "nonce"})
    admin.enqueue([pending(f"m{i}", hashes=[key_id], serializedTransaction=no_nonce) for i in range(6)])
    admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/ethereum/broadcast", "signatureId": "m1"}])
    metrics = DaemonMetrics()
    config = DaemonConfig(chains=("ETH",), testnet=True, concurrency=1)
    daemon = make_daemon(store, client, config=config, metrics=metrics)
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    text = generate_latest(metrics.registry).decode()
    assert 'kms_nonce_gaps_total{chain="ETH"} 1.0' in text
    errors: dict[str, Any] = {e["signatureId"]: e["error"] for e in admin.state()["errors"]}
    # One worker: m0 went out, m1 failed, m2..m5 were not signed (the gap was open before their turn).
    assert [b["signatureId"] for b in admin.state()["broadcasts"]] == ["m0"]
    assert sorted(errors) == ["m1", "m2", "m3", "m4", "m5"]
    assert all("nonce" in errors[pid] and "m1" in errors[pid] for pid in ("m2", "m3", "m4", "m5"))
    assert report.outcomes[Outcome.FAILED] == 5
    assert sorted(e.pending_id for e in store.journal_entries()) == ["m0", "m1"]


def test_group_commit_writes_many_workers_in_few_transactions_each_with_its_own_outcome(
    store: WalletStore,
) -> None:
    store.journal.put("taken", "ETH", "0xold")
    transactions: list[int] = []

    def write_many(items: Any) -> Any:
        transactions.append(len(items))
        time.sleep(0.01)  # an fsync: others queue up meanwhile
        return store.journal.put_many(items)

    group = GroupCommit(write_many)
    outcomes: dict[str, str] = {}

    def put(pid: str, payload: str) -> None:
        try:
            group.put(SignedPayload(pid, "ETH", payload))
            outcomes[pid] = "ok"
        except JournalConflictError:
            outcomes[pid] = "conflict"

    threads = [threading.Thread(target=put, args=(f"g{i}", f"0x{i:02x}")) for i in range(40)]
    threads.append(threading.Thread(target=put, args=("taken", "0xnew")))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == {**{f"g{i}": "ok" for i in range(40)}, "taken": "conflict"}
    assert sum(transactions) == 41 and len(transactions) < 41  # batched
    assert {e.pending_id: e.payload for e in store.journal_entries()} == {
        **{f"g{i}": f"0x{i:02x}" for i in range(40)},
        "taken": "0xold",
    }


class _LooksUpPerTransaction:
    """A signer that declares neither NonceSigner nor OrderFree (as a chain that looks up a sequence number)."""

    def sign(self, *args: Any) -> Any:
        raise AssertionError("not called")


def test_what_is_ordered_per_chain(store: WalletStore, client: TatumClient) -> None:  # noqa: F811
    registry = registry_with({"EGLD": _LooksUpPerTransaction(), "SOL": None})
    daemon = make_daemon(store, client, registry=registry)
    try:
        eth_no_nonce = json.dumps({k: v for k, v in json.loads(eth_tx()).items() if k != "nonce"})
        kinds = {
            "eth with nonce": daemon._kind_of(PendingTransaction("a", "ETH", eth_tx())),
            "eth without": daemon._kind_of(PendingTransaction("b", "ETH", eth_no_nonce)),
            "btc": daemon._kind_of(PendingTransaction("c", "BTC", "{}")),
            "bch": daemon._kind_of(PendingTransaction("d", "BCH", "{}")),
            "egld": daemon._kind_of(PendingTransaction("e", "EGLD", "{}")),
            "sol": daemon._kind_of(PendingTransaction("f", "SOL", "{}")),
        }
    finally:
        daemon.close()
    assert kinds == {
        "eth with nonce": Kind.FREE,
        "eth without": Kind.NONCE,
        "btc": Kind.FREE,
        "bch": Kind.FREE,
        "egld": Kind.SERIAL,  # one sender's transactions one at a time
        "sol": Kind.FREE,  # no signer: each fails on its own ("not supported")
    }
