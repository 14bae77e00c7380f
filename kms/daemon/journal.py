"""The daemon's view of the store's signing journal (kms.store.journal holds the state machine itself).

Per pending transaction the daemon needs one answer: never seen (NEW: may be signed), signed before (SIGNED: send the
same payload again, never sign anew), or not to be touched (REFUSED by four-eye, POISONED after it took a worker down,
HELD because the audit log shows it signed elsewhere): skipped until an operator runs ``kms journal release``.
This module adds what only the daemon knows: the hash of the request that was signed, and whether a pending id came
back as another transaction.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kms.api import PendingTransaction
from kms.errors import StoreError
from kms.store.journal import JournalEntry, JournalState, SignedPayload, SigningJournal


class JournalStore(Protocol):
    @property
    def journal(self) -> SigningJournal: ...


class State(enum.Enum):
    NEW = "new"
    SIGNED = "signed"
    REFUSED = "refused"
    POISONED = "poisoned"
    HELD = "held"

    @property
    def blocks_signing(self) -> bool:
        return self in (State.REFUSED, State.POISONED, State.HELD)


_BLOCKED = {JournalState.REFUSED: State.REFUSED, JournalState.POISONED: State.POISONED, JournalState.HELD: State.HELD}


@dataclass(frozen=True)
class Entry:
    state: State
    tx_data: str | None = None
    meta: Mapping[str, object] | None = None
    """What was journaled with the payload, given back on a re-send (SOL: blockhash, lastValidBlockHeight; EVM: from,
    nonce, and whether the daemon handed the nonce out)."""
    changed: str | None = None
    """Set when the pending id came back with another chain or another transaction than the one journaled."""
    note: str = ""
    """Why a blocked entry is skipped (for the log)."""


def request_sha256(pending: PendingTransaction) -> str:
    """What was asked to be signed: the chain and the serialized transaction, as the Tatum API handed them out."""
    return hashlib.sha256(f"{pending.chain}\n{pending.serialized_transaction}".encode()).hexdigest()


def _blocked_note(entry: JournalEntry) -> str:
    what = {
        JournalState.REFUSED: "refused earlier by the four-eye server; not asking again",
        JournalState.POISONED: "quarantined: processing it took a worker down; not retried until released",
        JournalState.HELD: "held: signed elsewhere according to the audit log; not signed until released",
    }[entry.state]
    return f"{what} ({entry.reason})" if entry.reason else what


@dataclass
class _Waiting:
    item: SignedPayload
    done: bool = False
    error: BaseException | None = None


@dataclass
class GroupCommit:
    """Journal writes of many workers in one transaction, one fsync (group commit). A worker's write is durable
    when ``put`` returns, as before: the first waiting worker writes everything queued so far, the others wait for
    it; a worker arriving meanwhile is in the next batch. Each write keeps its own outcome (a conflict for one id is
    that id's error only)."""

    write_many: Callable[[Sequence[SignedPayload]], list[StoreError | None]]
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _queue: list[_Waiting] = field(default_factory=list)
    _writing: bool = False

    def put(self, item: SignedPayload) -> None:
        mine = _Waiting(item)
        with self._changed:
            self._queue.append(mine)
            while self._writing and not mine.done:
                self._changed.wait()
            if not mine.done:
                self._writing = True
                batch, self._queue = self._queue, []
        if not mine.done:
            self._write(batch)
        if mine.error is not None:
            raise mine.error

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            results: list[BaseException | None] = list(self.write_many([w.item for w in batch]))
        except BaseException as exc:
            # The transaction failed for all of them: each worker gets an error of its own.
            results = [exc] + [StoreError(f"the journal write failed: {exc}") for _ in batch[1:]]
        with self._changed:
            for waiting, result in zip(batch, results, strict=True):
                waiting.done, waiting.error = True, result
            self._writing = False
            self._changed.notify_all()


class Journal:
    """Reads the store's journal afresh on every call (the store behind a seal may be replaced while running)."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store
        self._group = GroupCommit(lambda items: self._store.journal.put_many(items))

    def lookup(self, pending: PendingTransaction) -> Entry:
        entry = self._store.journal.lookup(pending.id)
        if entry is None:
            return Entry(State.NEW)
        if entry.state.blocks_signing:
            return Entry(_BLOCKED[entry.state], note=_blocked_note(entry))
        changed = None
        if entry.chain != pending.chain.upper():
            changed = f"it was signed as a {entry.chain} transaction and came back as {pending.chain}"
        elif entry.request_sha256 and entry.request_sha256 != request_sha256(pending):
            changed = "it came back with a different serializedTransaction than the one signed"
        return Entry(State.SIGNED, entry.payload, entry.meta, changed)

    def record_signed(
        self, pending: PendingTransaction, tx_data: str, meta: Mapping[str, object] | None = None
    ) -> None:
        """Durable before it returns; raises JournalConflictError for a different txData under the same id."""
        self._group.put(SignedPayload(pending.id, pending.chain, tx_data, request_sha256(pending), meta))

    def record_resigned(
        self, pending: PendingTransaction, replaced: str, tx_data: str, meta: Mapping[str, object], reason: str
    ) -> None:
        """Replace the journaled ``replaced`` payload, which the node proved expired and never landed, with a fresh
        signature (an explicit journal transition; durable before it returns)."""
        self._store.journal.resign(pending.id, replaced, tx_data, meta, reason)

    def record_broadcast(self, pending_id: str) -> None:
        self._store.journal.mark_broadcast(pending_id)

    def record_refused(self, pending_id: str, chain: str, reason: str = "") -> None:
        self._store.journal.refuse(pending_id, chain, reason)

    def record_poisoned(self, pending: PendingTransaction, reason: str) -> None:
        """Quarantine a pending transaction that took a worker down (report it once: unreported_poisoned)."""
        self._store.journal.quarantine(pending.id, pending.chain, reason)
