"""The policy velocity table: the rolling 24-hour amounts and counts per wallet (kms.approval.velocity reads and writes
it), in the store's own database so that it survives restarts and is shared by replicas of a shared store.

Portable SQL, created with the store (and added to an older store by its migration, like the journal). Amounts are
decimal text: token amounts exceed 64-bit integers. ``at`` is seconds since the epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kms.store.backend import StoreConnection

SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_velocity (
    pending_id TEXT NOT NULL,
    wallet TEXT NOT NULL,
    chain TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (pending_id, asset)
);
CREATE INDEX IF NOT EXISTS policy_velocity_wallet ON policy_velocity (wallet, chain, at);
"""


def create(conn: StoreConnection) -> None:
    """Create the table inside the caller's transaction (statement by statement: executescript would commit it)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


__all__ = ["SCHEMA", "create"]
