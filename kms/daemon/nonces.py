"""Account nonces handed out by the daemon: one look-up per sender and cycle instead of one per transaction.

Where upstream fills a missing EVM nonce from the Tatum API for every transaction, the daemon asks once per sender and
cycle and hands out consecutive numbers locally. Two rules keep a nonce from ever going to two pending ids:

- a nonce is offered to one transaction at a time (the sender's signing steps run one after another, see
  ``kms.daemon.pipeline``) and counts as used only once the payload signed with it is journaled (``commit``); a
  signing that fails after the offer (a gas estimate, a key) leaves the nonce to the next transaction;
- a nonce held by a payload already journaled for this sender and not known to be settled (``SigningJournal
  .nonces_held``: signed, or broadcast and not yet counted by the node) is skipped, whichever cycle or process journaled
  it. So a restart after a crash, or a later cycle after a failed broadcast, never re-uses one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kms.errors import SigningError

HeldNonces = Callable[[str, int], set[int]]
"""(sender address in lower case, the node's count) -> the nonces at or above it that journaled payloads hold."""


class SenderNonces:
    """The nonces of one sender (one chain, one signing key) for one cycle. A ``kms.signing.base.NonceSource``."""

    def __init__(self, held: HeldNonces) -> None:
        self._held_query = held
        self._lock = threading.Lock()
        self._address: str | None = None
        self._next: int | None = None
        self._held: set[int] = set()
        self._offered: int | None = None
        self.looked_up: int | None = None
        """What the one look-up answered (for the log and the tests)."""

    def nonce_for(self, address: str, look_up: Callable[[], int]) -> int:
        """The next free nonce of ``address``; the first call of the cycle asks ``look_up`` (the node's count of the
        account's transactions, pending ones included)."""
        address = address.lower()
        with self._lock:
            if self._next is None:
                count = look_up()
                self.looked_up = count
                self._held = set(self._held_query(address, count))
                self._address = address
                self._next = self._skip_held(count)
            elif address != self._address:
                raise SigningError("one sender's transactions name two different accounts; not signed")
            self._offered = self._next
            return self._next

    def commit(self, nonce: int) -> None:
        """The payload signed with ``nonce`` is journaled: the nonce is used."""
        with self._lock:
            if self._offered != nonce or self._next is None:
                raise SigningError(f"nonce {nonce} was not the one offered; not recorded")
            self._held.add(nonce)
            self._next = self._skip_held(nonce + 1)
            self._offered = None

    def abandon(self) -> None:
        """Nothing was journaled with the offered nonce: the next transaction gets it."""
        with self._lock:
            self._offered = None

    def _skip_held(self, candidate: int) -> int:
        while candidate in self._held:
            candidate += 1
        return candidate


__all__ = ["HeldNonces", "SenderNonces"]
