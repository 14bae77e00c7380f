"""How one cycle's pending transactions are scheduled: only what must be ordered is ordered, and everything is bounded.

Transactions are grouped by sender (chain, signing wallet, index): a ``SenderLane``. Within a lane each transaction
is one of three kinds (``Kind``):

- FREE: it names everything it signs (an EVM transaction carrying its nonce, a UTXO transaction naming its inputs):
  journal check, four-eye, keys, signing and broadcast run concurrently with everything else;
- NONCE: it consumes an account nonce the daemon hands out (``kms.daemon.nonces``). Its journal check, four-eye
  check and keys still run concurrently; only the step that takes the nonce (sign, then journal) waits for the turn of
  the lane's previous NONCE transaction, in the order the API listed them. Broadcasts overlap again;
- SERIAL: a chain whose signer looks up per transaction what one sender's transactions share (a sequence number, a
  proposal key): its transactions run one after another, as a whole (what every chain did before).

Nonce gap: when the broadcast of a NONCE transaction with nonce m fails, the lane's gap opens at m (the lowest such
m wins). From then on in this cycle no transaction of the sender is signed with a new nonce, and a NONCE transaction
signed with a nonce above m whose broadcast has not begun is held: not broadcast, its journaled payload is sent again
next cycle (never signed anew). Payloads whose broadcast began before the gap opened wait in the node's queue for m.

Bounds: at most ``max_in_flight`` transactions are admitted at once over all lanes, and ``max_in_flight_per_sender``
per lane (a SERIAL lane counts as one); the worker pool (``--concurrency``) bounds the requests made at once.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field

from kms.api import PendingTransaction
from kms.daemon.nonces import SenderNonces


class Kind(enum.Enum):
    FREE = "free"
    NONCE = "nonce"
    SERIAL = "serial"


SenderKey = tuple[object, ...]


def sender_of(pending: PendingTransaction) -> SenderKey:
    """Transactions that sign with the same wallet (and index) share a sender."""
    if pending.signatures:
        sender: SenderKey = (pending.signatures[0].id, pending.signatures[0].index)
    elif pending.hashes:
        sender = (pending.hashes[0], pending.index)
    else:
        sender = ("", pending.id)
    return (pending.chain, *sender)


@dataclass(frozen=True)
class Gap:
    nonce: int
    pending_id: str


class SenderLane:
    """One sender's transactions in one cycle: the turn of its NONCE transactions, its nonces, its gap."""

    def __init__(self, key: SenderKey, nonces: SenderNonces | None = None) -> None:
        self.key = key
        self.nonces = nonces
        self.items: list[tuple[PendingTransaction, Kind]] = []
        self._tickets: dict[str, int] = {}
        self._passed: set[int] = set()
        self._current = 0
        self._turns = threading.Condition()
        self._gap: Gap | None = None
        self._started: set[int] = set()
        self.in_flight = 0

    @property
    def serial(self) -> bool:
        return bool(self.items) and self.items[0][1] is Kind.SERIAL

    def add(self, pending: PendingTransaction, kind: Kind) -> None:
        if kind is Kind.NONCE and pending.id not in self._tickets:
            self._tickets[pending.id] = len(self._tickets)
        self.items.append((pending, kind))

    def ordered(self, pending: PendingTransaction) -> bool:
        return pending.id in self._tickets

    # -- the turn of NONCE transactions -----------------------------------------------------------------------------

    @contextmanager
    def turn(self, pending: PendingTransaction) -> Iterator[None]:
        """Waits until every NONCE transaction listed before this one has taken its turn or left, then holds the
        turn until the block ends. A transaction that is not a NONCE one passes straight through."""
        ticket = self._tickets.get(pending.id)
        if ticket is None:
            yield
            return
        with self._turns:
            while self._current != ticket and ticket not in self._passed:
                self._turns.wait()
        try:
            yield
        finally:
            self.leave(pending)

    def leave(self, pending: PendingTransaction) -> None:
        """This transaction takes no (further) turn: signed, skipped, refused or failed. Idempotent."""
        ticket = self._tickets.get(pending.id)
        if ticket is None:
            return
        with self._turns:
            if ticket in self._passed:
                return
            self._passed.add(ticket)
            while self._current in self._passed:
                self._current += 1
            self._turns.notify_all()

    # -- the gap ----------------------------------------------------------------------------------------------------

    @property
    def gap(self) -> Gap | None:
        with self._turns:
            return self._gap

    def begin_broadcast(self, nonce: int | None) -> Gap | None:
        """Before the broadcast of a payload signed with an allocated ``nonce`` (None: not allocated): the gap that
        holds it back, or None when it may go (and is then counted as begun)."""
        if nonce is None:
            return None
        with self._turns:
            if self._gap is not None and nonce > self._gap.nonce:
                return self._gap
            self._started.add(nonce)
            return None

    def broadcast_failed(self, nonce: int | None, pending_id: str) -> bool:
        """The broadcast of a payload with an allocated nonce failed: opens (or lowers) the gap. True when this
        opened the lane's first gap."""
        if nonce is None:
            return False
        with self._turns:
            first = self._gap is None
            if self._gap is None or nonce < self._gap.nonce:
                self._gap = Gap(nonce, pending_id)
            return first


@dataclass
class Limits:
    max_in_flight: int
    max_in_flight_per_sender: int

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_in_flight_per_sender < 1:
            raise ValueError("the in-flight caps must be at least 1")


@dataclass
class _Admission:
    limits: Limits
    in_flight: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)


Work = Callable[[SenderLane, list[PendingTransaction]], object]


class Dispatcher:
    """Admits the lanes' transactions to the worker pool, round robin over the lanes, within the caps."""

    def __init__(self, pool: Executor, limits: Limits, stop: threading.Event) -> None:
        self._pool = pool
        self._admission = _Admission(limits)
        self._stop = stop

    def dispatch(self, lanes: list[SenderLane], work: Work) -> list[Future[object]]:
        """Submits every transaction (a SERIAL lane as one unit); returns when the last is submitted."""
        waiting: deque[tuple[SenderLane, deque[PendingTransaction]]] = deque(
            (lane, deque(pending for pending, _ in lane.items)) for lane in lanes if lane.items
        )
        futures: list[Future[object]] = []
        changed = self._admission.changed
        while waiting and not self._stop.is_set():
            with changed:
                picked = self._pick(waiting)
                if picked is None:  # every lane is at its cap, or all are: wait for a transaction to finish
                    changed.wait(timeout=0.5)
                    continue
            lane, queue = picked
            unit = list(queue) if lane.serial else [queue.popleft()]
            if lane.serial:
                queue.clear()
            futures.append(self._pool.submit(self._run, lane, unit, work))
            if queue:
                waiting.append((lane, queue))
        return futures

    def _pick(
        self, waiting: deque[tuple[SenderLane, deque[PendingTransaction]]]
    ) -> tuple[SenderLane, deque[PendingTransaction]] | None:
        """The next lane in the rotation with room, admitted (the caller holds the lock)."""
        limits = self._admission.limits
        if self._admission.in_flight >= limits.max_in_flight:
            return None
        for _ in range(len(waiting)):
            lane, queue = waiting.popleft()
            if lane.in_flight < limits.max_in_flight_per_sender:
                self._admission.in_flight += 1
                lane.in_flight += 1
                return lane, queue
            waiting.append((lane, queue))
        return None

    def _run(self, lane: SenderLane, unit: list[PendingTransaction], work: Work) -> object:
        try:
            return work(lane, unit)
        finally:
            with self._admission.changed:
                self._admission.in_flight -= 1
                lane.in_flight -= 1
                self._admission.changed.notify_all()


def lanes_of(
    batch: list[PendingTransaction],
    kind_of: Callable[[PendingTransaction], Kind],
    nonces_for: Callable[[SenderKey], SenderNonces],
) -> list[SenderLane]:
    """The batch's transactions grouped by sender, in the order the API listed them. A lane is SERIAL as a whole
    when its chain's signer cannot take nonces from the daemon."""
    lanes: dict[SenderKey, SenderLane] = {}
    for pending in batch:
        key = sender_of(pending)
        lane = lanes.get(key)
        kind = kind_of(pending)
        if lane is None:
            lane = lanes[key] = SenderLane(key, nonces_for(key) if kind is not Kind.SERIAL else None)
        lane.add(pending, Kind.SERIAL if lane.serial else kind)
    return list(lanes.values())


__all__ = ["Dispatcher", "Gap", "Kind", "Limits", "SenderLane", "lanes_of", "sender_of"]
