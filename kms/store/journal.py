"""The signing journal: pending transaction id -> signed txData, in the store file, for crash-safe broadcasting.

Not secret (a signed transaction is public once broadcast), so it is stored in clear. A signed txData is written
once and never replaced: after a crash the daemon re-broadcasts exactly what it signed instead of signing again.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

from kms.errors import StoreError
from kms.store.errors import JournalConflictError

STATUS_SIGNED = "signed"
_STATUS_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PENDING_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class JournalEntry:
    pending_id: str
    chain: str
    tx_data: str
    request_sha256: str  # SHA-256 of the pending transaction that was signed ('' when not given)
    status: str
    created_at: int  # unix seconds
    updated_at: int


_SELECT = "SELECT pending_id, chain, tx_data, request_sha256, status, created_at, updated_at FROM journal"
# Stores made before the journal kept request hashes read '' for it; the first write adds the column.
_SELECT_V1 = "SELECT pending_id, chain, tx_data, '', status, created_at, updated_at FROM journal"


def _has_request_column(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "request_sha256" for row in conn.execute("PRAGMA table_info(journal)"))


def _select(conn: sqlite3.Connection) -> str:
    return _SELECT if _has_request_column(conn) else _SELECT_V1


def _check_pending_id(pending_id: str) -> None:
    if not isinstance(pending_id, str) or not _PENDING_ID_RE.fullmatch(pending_id):
        raise StoreError(f"invalid pending transaction id {str(pending_id)[:140]!r}")


def check_status(status: str) -> None:
    if not isinstance(status, str) or not _STATUS_RE.fullmatch(status):
        raise StoreError(f"invalid journal status {str(status)[:40]!r}")


def get(conn: sqlite3.Connection, pending_id: str) -> str | None:
    _check_pending_id(pending_id)
    row = conn.execute("SELECT tx_data FROM journal WHERE pending_id = ?", (pending_id,)).fetchone()
    return None if row is None else str(row[0])


def lookup(conn: sqlite3.Connection, pending_id: str) -> JournalEntry | None:
    _check_pending_id(pending_id)
    row = conn.execute(_select(conn) + " WHERE pending_id = ?", (pending_id,)).fetchone()
    return None if row is None else JournalEntry(*row)


def put(conn: sqlite3.Connection, pending_id: str, chain: str, tx_data: str, request_sha256: str = "") -> None:
    _check_pending_id(pending_id)
    if not isinstance(tx_data, str) or not tx_data:
        raise StoreError("journal txData must be non-empty text")
    existing = get(conn, pending_id)
    if existing is not None:
        if existing == tx_data:
            return
        raise JournalConflictError(
            f"pending transaction '{pending_id}' already has a different signed txData in the journal"
        )
    if not _has_request_column(conn):
        conn.execute("ALTER TABLE journal ADD COLUMN request_sha256 TEXT NOT NULL DEFAULT ''")
    now = int(time.time())
    conn.execute(
        "INSERT INTO journal (pending_id, chain, tx_data, request_sha256, status, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (pending_id, chain, tx_data, request_sha256, STATUS_SIGNED, now, now),
    )


def mark(conn: sqlite3.Connection, pending_id: str, status: str) -> None:
    _check_pending_id(pending_id)
    check_status(status)
    cursor = conn.execute(
        "UPDATE journal SET status = ?, updated_at = ? WHERE pending_id = ?", (status, int(time.time()), pending_id)
    )
    if cursor.rowcount == 0:
        raise StoreError(f"no journal entry for pending transaction '{pending_id}'")


def entries(conn: sqlite3.Connection, status: str | None = None) -> list[JournalEntry]:
    query = _select(conn)
    params: tuple[str, ...] = ()
    if status is not None:
        check_status(status)
        query += " WHERE status = ?"
        params = (status,)
    return [JournalEntry(*row) for row in conn.execute(query + " ORDER BY rowid", params)]


def release(conn: sqlite3.Connection, pending_id: str) -> None:
    """Forget a pending id (an operator's decision: it may then be signed again, possibly differently)."""
    _check_pending_id(pending_id)
    if conn.execute("DELETE FROM journal WHERE pending_id = ?", (pending_id,)).rowcount == 0:
        raise StoreError(f"no journal entry for pending transaction '{pending_id}'")
