"""What a signer is: the protocol every chain's signer implements, and what it hands back.

A signer is a pure function of the pending transaction, its key handles and the answers of its look-ups; it raises
``SigningError`` (nothing signed) on anything it does not fully understand. It never sends anything anywhere: where
upstream sends the transaction to a node itself and broadcasts only the transaction id (SOL, FLOW), the signer
declares that with ``Submitter``, and the daemon calls ``submit`` only after the signed bytes are journaled.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kms.api import NodeGateway, PendingTransaction
from kms.keys import KeyHandle


@dataclass(frozen=True)
class SignedTransaction:
    """The exact signed bytes (as the text upstream posts: hex, base64, JSON ...) and what the journal keeps with them.

    ``payload`` is journaled before anything leaves the process and is what a restart re-sends, never a fresh
    signature. ``meta`` holds the facts a later decision needs (SOL: blockhash and lastValidBlockHeight)."""

    payload: str
    meta: Mapping[str, Any] = field(default_factory=dict)


class Signer(Protocol):
    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        """Sign for mainnet or testnet (the daemon's ``--testnet``); ``gateway`` is None only in offline use (tests,
        demo), where a signer that needs a look-up raises SigningError."""
        ...


@runtime_checkable
class Submitter(Protocol):
    """A signer whose chain wants the signed transaction sent to a node first (upstream: SOL ``sendTransaction``,
    FLOW access node); ``submit`` returns the txData that goes to the Tatum broadcast endpoint (the transaction id)."""

    def submit(self, signed: SignedTransaction, gateway: NodeGateway) -> str: ...


class Recovery(enum.Enum):
    """What to do with a journaled, not yet broadcast transaction of a chain whose signature can expire unsent."""

    LANDED = "landed"
    """The signature is on chain (successfully or not): broadcast its id, never send or sign again."""
    RESEND = "resend"
    """Not seen on chain and it may still land: send the journaled bytes again (the same signature)."""
    RESIGN = "resign"
    """The node proves it expired and never landed: only now may it be signed anew (and the journal says so)."""


LANDED, RESEND, RESIGN = Recovery.LANDED, Recovery.RESEND, Recovery.RESIGN


@runtime_checkable
class RecoveringSubmitter(Submitter, Protocol):
    """A ``Submitter`` whose signed transaction can expire before it lands (SOL: its blockhash). Before re-sending a
    journaled transaction the daemon asks ``recovery_decision`` (with the journaled ``meta``); ``transaction_id`` is
    what a ``LANDED`` one broadcasts without being sent again."""

    def recovery_decision(self, signed: SignedTransaction, gateway: NodeGateway) -> Recovery: ...

    def transaction_id(self, signed: SignedTransaction) -> str: ...


class NonceSource(Protocol):
    """Where a ``NonceSigner`` takes the nonce a pending transaction does not name (the daemon's per-sender
    allocator): ``look_up`` asks the network for the account's next nonce, and is called at most once per sender and
    cycle."""

    def nonce_for(self, address: str, look_up: Callable[[], int]) -> int: ...


@runtime_checkable
class NonceSigner(Protocol):
    """A signer of account-nonce transactions (EVM). A pending transaction that names its nonce needs no order to be
    signed; one that does not is signed with a nonce from ``nonces`` (instead of a look-up per transaction), and the
    daemon signs those of one sender one after another. ``meta`` of the result records ``from`` and ``nonce``."""

    def carries_nonce(self, pending: PendingTransaction) -> bool: ...

    def sign_with_nonces(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
        nonces: NonceSource,
    ) -> SignedTransaction: ...


@runtime_checkable
class OrderFree(Protocol):
    """A signer whose pending transactions name everything they spend (UTXO: the inputs and the scripts they pay
    from) and that looks nothing up per transaction, so one sender's transactions need no order to be signed or
    broadcast. Two that spend the same input are both signed; the network takes one, as it would in any order.
    Signers without this (and without ``NonceSigner``) have one sender's transactions handled one at a time."""

    order_free: bool
