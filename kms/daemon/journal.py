"""The daemon's use of the store's journal (pending id -> signed txData, written and fsynced before broadcasting).

Three states per pending id: absent (never signed here), signed (a txData, status ``signed`` until a broadcast is
accepted, then ``broadcast``), and refused (the four-eye server said no: a marker instead of a txData, status
``refused``, never asked again and never signed). A signed entry is never replaced: when the id comes back, the same
txData is broadcast again.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Protocol

from kms.api import PendingTransaction
from kms.store.journal import JournalEntry

STATUS_BROADCAST = "broadcast"
STATUS_REFUSED = "refused"
# Not a possible txData (those are hex, base64 or JSON) and not secret: marks a pending id refused by four-eye.
REFUSED_MARKER = "kms:four-eye-refused"


class JournalStore(Protocol):
    def journal_lookup(self, pending_id: str) -> JournalEntry | None: ...
    def journal_put(self, pending_id: str, chain: str, tx_data: str, request_sha256: str = "") -> None: ...
    def journal_mark(self, pending_id: str, status: str) -> None: ...


class State(enum.Enum):
    NEW = "new"
    SIGNED = "signed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Entry:
    state: State
    tx_data: str | None = None
    changed: str | None = None
    """Set when the pending id came back with another chain or another transaction than the one journaled."""


def request_sha256(pending: PendingTransaction) -> str:
    """What was asked to be signed: the chain and the serialized transaction, as the Tatum API handed them out."""
    return hashlib.sha256(f"{pending.chain}\n{pending.serialized_transaction}".encode()).hexdigest()


class Journal:
    def __init__(self, store: JournalStore) -> None:
        self._store = store

    def lookup(self, pending: PendingTransaction) -> Entry:
        entry = self._store.journal_lookup(pending.id)
        if entry is None:
            return Entry(State.NEW)
        if entry.tx_data == REFUSED_MARKER:
            return Entry(State.REFUSED)
        changed = None
        if entry.chain != pending.chain.upper():
            changed = f"it was signed as a {entry.chain} transaction and came back as {pending.chain}"
        elif entry.request_sha256 and entry.request_sha256 != request_sha256(pending):
            changed = "it came back with a different serializedTransaction than the one signed"
        return Entry(State.SIGNED, entry.tx_data, changed)

    def record_signed(self, pending: PendingTransaction, tx_data: str) -> None:
        """Durable before it returns; raises JournalConflictError for a different txData under the same id."""
        self._store.journal_put(pending.id, pending.chain, tx_data, request_sha256(pending))

    def record_broadcast(self, pending_id: str) -> None:
        self._store.journal_mark(pending_id, STATUS_BROADCAST)

    def record_refused(self, pending_id: str, chain: str) -> None:
        self._store.journal_put(pending_id, chain, REFUSED_MARKER)
        self._store.journal_mark(pending_id, STATUS_REFUSED)
