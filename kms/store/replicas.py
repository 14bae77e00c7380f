"""Replicas and their shares: who is alive, and which signatureIds each one polls for.

Every replica writes a heartbeat row; a replica whose heartbeat is older than the time-to-live is gone. The
signatureIds of a chain are split by rendezvous hashing over the live replica ids: each id goes to the replica with
the highest SHA-256 score for (replica, id), so all replicas agree without talking to each other, and a join or a
leave moves only the ids of the replica that came or went. A short overlap (two replicas briefly polling the same id
while their views of the live set differ) is harmless: the claim (kms.store.claims) lets one of them sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from kms.store.database import Database

_FORGET_AFTER_S = 86_400.0  # rows of replicas gone this long are deleted


def _score(replica_id: str, signature_id: str) -> bytes:
    return hashlib.sha256(f"{replica_id}\x00{signature_id}".encode()).digest()


def owner(signature_id: str, replicas: Sequence[str]) -> str:
    """The replica that polls for `signature_id` (rendezvous hashing)."""
    return max(replicas, key=lambda replica: _score(replica, signature_id))


def share(signature_ids: Iterable[str], me: str, replicas: Sequence[str]) -> list[str]:
    """The ids among `signature_ids` that `me` polls for, in their given order. `me` always counts as live."""
    live = sorted({*replicas, me})
    return [sid for sid in signature_ids if owner(sid, live) == me]


class Membership:
    def __init__(self, db: Database, replica_id: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("the heartbeat time-to-live must be positive")
        self._db = db
        self.replica_id = replica_id
        self.ttl_s = float(ttl_s)

    def heartbeat(self) -> list[str]:
        """Say we are alive; returns the live replica ids (ours included), sorted."""
        clock = self._db.backend.clock
        with self._db.rows() as conn:
            conn.execute(
                f"INSERT INTO replicas (replica_id, seen_at, started_at) VALUES (?, {clock}, {clock})"  # noqa: S608
                " ON CONFLICT (replica_id) DO UPDATE SET seen_at = excluded.seen_at",
                (self.replica_id,),
            )
            conn.execute(f"DELETE FROM replicas WHERE seen_at < {clock} - ?", (_FORGET_AFTER_S,))  # noqa: S608
            rows = conn.execute(
                f"SELECT replica_id FROM replicas WHERE seen_at > {clock} - ? ORDER BY replica_id",  # noqa: S608
                (self.ttl_s,),
            ).fetchall()
        return sorted({str(row[0]) for row in rows} | {self.replica_id})

    def leave(self) -> None:
        """Stop counting as live at once (a clean shutdown hands the share over without waiting for the TTL)."""
        with self._db.rows() as conn:
            conn.execute("DELETE FROM replicas WHERE replica_id = ?", (self.replica_id,))
