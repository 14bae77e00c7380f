"""The rolling 24-hour amount and count per wallet that the local policy limits, kept in SQLite so it survives a
restart: a ``policy_velocity`` table in the store's database file (the journal's), behind this one small class so
that it can move to the shared store (issue 18) without touching the policy.

One row per (pending id, asset) with the amount paid out; a transaction with no payment still gets one row (asset
``""``, amount 0) so that it counts. Recording the same pending id again changes nothing (exactly-once, like the
journal). Amounts are stored as decimal text: token amounts exceed SQLite's 64-bit integers.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from kms.errors import StoreError

WINDOW_SECONDS = 24 * 3600
BUSY_TIMEOUT_S = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_velocity (
    pending_id TEXT NOT NULL,
    wallet TEXT NOT NULL,
    chain TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (pending_id, asset)
);
CREATE INDEX IF NOT EXISTS policy_velocity_wallet ON policy_velocity (wallet, chain, at);
"""


class VelocityLedger:
    """Thread-safe. ``VelocityLedger(path)`` opens (and creates the table in) a database file; ``VelocityLedger(conn)``
    uses an open connection (autocommit, as the store opens them). ``readonly`` opens a file without changing it."""

    def __init__(self, database: sqlite3.Connection | str | Path, *, readonly: bool = False) -> None:
        self._lock = threading.Lock()
        self._owned = not isinstance(database, sqlite3.Connection)
        if isinstance(database, sqlite3.Connection):
            self._conn = database
        else:
            self._conn = _open(Path(database), readonly)
        self._available = True
        try:
            if not readonly:
                self._conn.executescript(_SCHEMA)
            else:
                self._available = _has_table(self._conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot prepare the policy velocity table ({type(exc).__name__})") from None

    def totals(self, wallet: str, chain: str, since: float) -> tuple[dict[str, int], int]:
        """(amount per asset, number of transactions) recorded for ``wallet`` on ``chain`` since ``since``."""
        if not self._available:
            return {}, 0
        with self._lock:
            rows = self._conn.execute(
                "SELECT pending_id, asset, amount FROM policy_velocity WHERE wallet = ? AND chain = ? AND at >= ?",
                (wallet, chain, since),
            ).fetchall()
        amounts: dict[str, int] = {}
        for _, asset, amount in rows:
            if asset:
                amounts[asset] = amounts.get(asset, 0) + int(amount)
        return amounts, len({row[0] for row in rows})

    def record(
        self, pending_id: str, wallet: str, chain: str, amounts: Mapping[str, int], at: float | None = None
    ) -> None:
        moment = time.time() if at is None else at
        rows = [(pending_id, wallet, chain, asset, str(int(amount)), moment) for asset, amount in amounts.items()]
        with self._lock:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT OR IGNORE INTO policy_velocity VALUES (?, ?, ?, ?, ?, ?)",
                    rows or [(pending_id, wallet, chain, "", "0", moment)],
                )

    def prune(self, before: float) -> int:
        """Forget rows older than ``before`` (they no longer count); how many were removed."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return self._conn.execute("DELETE FROM policy_velocity WHERE at < ?", (before,)).rowcount

    def close(self) -> None:
        if self._owned:
            self._conn.close()

    def __enter__(self) -> VelocityLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the policy velocity ledger at {path} ({type(exc).__name__})") from None
    return conn


def _has_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_velocity'").fetchone()
    return row is not None


__all__ = ["WINDOW_SECONDS", "VelocityLedger"]
