"""The daemon's use of the store's journal (pending id -> signed txData, written and fsynced before broadcasting).

Three states per pending id: absent (never signed here), signed (a txData, status ``signed`` until a broadcast is
accepted, then ``broadcast``), and refused (the four-eye server said no: a marker instead of a txData, status
``refused``, never asked again and never signed). A signed entry is never replaced: when the id comes back, the same
txData is broadcast again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

STATUS_BROADCAST = "broadcast"
STATUS_REFUSED = "refused"
# Not a possible txData (those are hex, base64 or JSON) and not secret: marks a pending id refused by four-eye.
REFUSED_MARKER = "kms:four-eye-refused"


class JournalStore(Protocol):
    def journal_get(self, pending_id: str) -> str | None: ...
    def journal_put(self, pending_id: str, chain: str, tx_data: str) -> None: ...
    def journal_mark(self, pending_id: str, status: str) -> None: ...


class State(enum.Enum):
    NEW = "new"
    SIGNED = "signed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Entry:
    state: State
    tx_data: str | None = None


class Journal:
    def __init__(self, store: JournalStore) -> None:
        self._store = store

    def lookup(self, pending_id: str) -> Entry:
        value = self._store.journal_get(pending_id)
        if value is None:
            return Entry(State.NEW)
        if value == REFUSED_MARKER:
            return Entry(State.REFUSED)
        return Entry(State.SIGNED, value)

    def record_signed(self, pending_id: str, chain: str, tx_data: str) -> None:
        """Durable before it returns; raises JournalConflictError for a different txData under the same id."""
        self._store.journal_put(pending_id, chain, tx_data)

    def record_broadcast(self, pending_id: str) -> None:
        self._store.journal_mark(pending_id, STATUS_BROADCAST)

    def record_refused(self, pending_id: str, chain: str) -> None:
        self._store.journal_put(pending_id, chain, REFUSED_MARKER)
        self._store.journal_mark(pending_id, STATUS_REFUSED)
