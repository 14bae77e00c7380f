"""Claims: which replica may sign a pending transaction now. One row per pending id: its holder and a lease.

A replica signs a pending id only while it holds the claim: taken in the database before anything is signed (an
atomic upsert that succeeds when the id is unclaimed, already ours, or its lease ran out), checked again by the
database when the signed payload is journaled (a trigger, kms.store.postgres), and renewed before the broadcast. A
replica that dies keeps its claims only until their leases run out; whoever takes one then finds the journaled
payload and re-broadcasts those bytes, never a fresh signature. All times are the database's clock.
"""

from __future__ import annotations

from kms.errors import ClaimLostError
from kms.store.database import Database
from kms.store.journal import check_pending_id

DEFAULT_LEASE_S = 60.0
# $NOW: the backend's clock expression (a constant of the backend, never outside input).
_ACQUIRE = (
    "INSERT INTO claims (pending_id, holder, lease_until, claimed_at) VALUES (?, ?, $NOW + ?, $NOW)"
    " ON CONFLICT (pending_id) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,"
    " claimed_at = excluded.claimed_at WHERE claims.holder = excluded.holder OR claims.lease_until <= $NOW"
    " RETURNING holder"
)
_RENEW = (
    "UPDATE claims SET lease_until = $NOW + ? WHERE pending_id = ? AND holder = ? AND lease_until > $NOW"
    " RETURNING holder"
)


class Claims:
    def __init__(self, db: Database, holder: str, lease_s: float = DEFAULT_LEASE_S) -> None:
        if not holder:
            raise ValueError("a claim needs a holder")
        if lease_s <= 0:
            raise ValueError("a lease must be positive")
        self._db = db
        self.holder = holder
        self.lease_s = float(lease_s)
        clock = db.backend.clock
        self._acquire = _ACQUIRE.replace("$NOW", clock)
        self._renew = _RENEW.replace("$NOW", clock)

    def acquire(self, pending_id: str) -> bool:
        """Take the claim on `pending_id` (or extend ours). False when another replica holds a live lease."""
        check_pending_id(pending_id)
        with self._db.rows() as conn:
            return conn.execute(self._acquire, (pending_id, self.holder, self.lease_s)).fetchone() is not None

    def confirm(self, pending_id: str) -> None:
        """Renew our live claim before a broadcast; ClaimLostError when it ran out or was taken over."""
        check_pending_id(pending_id)
        with self._db.rows() as conn:
            row = conn.execute(self._renew, (self.lease_s, pending_id, self.holder)).fetchone()
        if row is None:
            raise ClaimLostError(f"the claim on pending transaction {pending_id} was lost; not broadcast here")

    def release(self, pending_id: str) -> None:
        """Give the claim up (done, or nothing to do); another replica may take the id at once."""
        check_pending_id(pending_id)
        with self._db.rows() as conn:
            conn.execute("DELETE FROM claims WHERE pending_id = ? AND holder = ?", (pending_id, self.holder))

    def holder_of(self, pending_id: str) -> str | None:
        """The replica holding a live claim on `pending_id`, if any."""
        with self._db.reading() as conn:
            row = conn.execute(
                f"SELECT holder FROM claims WHERE pending_id = ? AND lease_until > {self._db.backend.clock}",  # noqa: S608
                (pending_id,),
            ).fetchone()
        return None if row is None else str(row[0])

    def held(self) -> int:
        """How many live claims this replica holds."""
        with self._db.reading() as conn:
            row = conn.execute(
                f"SELECT count(*) FROM claims WHERE holder = ? AND lease_until > {self._db.backend.clock}",  # noqa: S608
                (self.holder,),
            ).fetchone()
        return int(row[0])
