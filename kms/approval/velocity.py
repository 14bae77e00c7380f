"""The rolling 24-hour amount and count per wallet that the local policy limits, kept in the store's own database (the
``policy_velocity`` table of kms.store.velocity, created with the store and by its migration): it survives a restart,
and replicas of a shared PostgreSQL store add up to one ledger.

One row per (pending id, asset) with the amount paid out; a transaction with no payment still gets one row (asset
``""``, amount 0) so that it counts. Recording the same pending id again changes nothing (exactly-once, like the
journal). SQL goes through the store backend interface (kms.store.backend), portable with ``?`` placeholders.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kms.errors import StoreError
from kms.store import velocity as velocity_schema
from kms.store.backend import StoreBackend, StoreConnection
from kms.store.sqlite import SqliteConnection

WINDOW_SECONDS = 24 * 3600
_T = TypeVar("_T")
BUSY_TIMEOUT_S = 10.0
_INSERT = (
    "INSERT INTO policy_velocity (pending_id, wallet, chain, asset, amount, at) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (pending_id, asset) DO NOTHING"
)


class VelocityLedger:
    """Thread-safe. ``VelocityLedger(backend)`` uses a connection of its own to the store's database (the table comes
    with the store's schema). A path or an open sqlite3 connection (autocommit) is a SQLite database that gets the
    table if it lacks it; ``readonly`` opens a file without changing it."""

    def __init__(
        self, database: StoreBackend | StoreConnection | sqlite3.Connection | str | Path, *, readonly: bool = False
    ) -> None:
        self._lock = threading.Lock()
        borrowed = isinstance(database, sqlite3.Connection) or _is_connection(database)
        self._owned = not borrowed  # a path or a backend: this ledger opened the connection and closes it
        self._conn = _connection(database, readonly)
        self._available = True
        try:
            if readonly:
                self._available = _has_table(self._conn)
            elif isinstance(database, str | Path | sqlite3.Connection):
                self._write(velocity_schema.create)
        except (sqlite3.DatabaseError, StoreError) as exc:
            self.close()
            raise StoreError(f"cannot prepare the policy velocity table ({type(exc).__name__})") from None

    def totals(self, wallet: str, chain: str, since: float) -> tuple[dict[str, int], int]:
        """(amount per asset, number of transactions) recorded for ``wallet`` on ``chain`` since ``since``."""
        if not self._available:
            return {}, 0
        with self._transaction(read=True) as conn:
            rows = conn.execute(
                "SELECT pending_id, asset, amount FROM policy_velocity WHERE wallet = ? AND chain = ? AND at >= ?",
                (wallet, chain, float(since)),
            ).fetchall()
        amounts: dict[str, int] = {}
        for _, asset, amount in rows:
            if asset:
                amounts[asset] = amounts.get(asset, 0) + int(amount)
        return amounts, len({row[0] for row in rows})

    def record(
        self, pending_id: str, wallet: str, chain: str, amounts: Mapping[str, int], at: float | None = None
    ) -> None:
        moment = float(time.time() if at is None else at)
        rows: Sequence[Sequence[object]] = [
            (pending_id, wallet, chain, asset, str(int(amount)), moment) for asset, amount in amounts.items()
        ] or [(pending_id, wallet, chain, "", "0", moment)]
        self._write(lambda conn: conn.executemany(_INSERT, rows))

    def prune(self, before: float) -> int:
        """Forget rows older than ``before`` (they no longer count); how many were removed."""

        def delete(conn: StoreConnection) -> int:
            cursor: Any = conn.execute("DELETE FROM policy_velocity WHERE at < ?", (float(before),))
            return int(cursor.rowcount)

        return self._write(delete)

    def close(self) -> None:
        if self._owned:
            self._conn.close()

    def __enter__(self) -> VelocityLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, work: Callable[[StoreConnection], _T]) -> _T:
        with self._transaction(read=False) as conn:
            return work(conn)

    @contextmanager
    def _transaction(self, *, read: bool) -> Iterator[StoreConnection]:
        with self._lock:
            conn = self._conn
            conn.begin_read() if read else conn.begin_rows()
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise


def _is_connection(database: object) -> bool:
    return hasattr(database, "begin_rows") and hasattr(database, "execute")


def _connection(
    database: StoreBackend | StoreConnection | sqlite3.Connection | str | Path, readonly: bool
) -> StoreConnection:
    if isinstance(database, sqlite3.Connection):
        return SqliteConnection(database)
    if isinstance(database, str | Path):
        return SqliteConnection(_open(Path(database), readonly))
    if _is_connection(database):
        return database  # type: ignore[return-value]
    return database.connect()  # type: ignore[union-attr]


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the policy velocity ledger at {path} ({type(exc).__name__})") from None
    return conn


def _has_table(conn: StoreConnection) -> bool:
    try:
        conn.execute("SELECT 1 FROM policy_velocity WHERE 1 = 0").fetchall()
    except StoreError:
        return False
    return True


__all__ = ["WINDOW_SECONDS", "VelocityLedger"]
