"""What a pending transaction would do, decoded by the chain's own parser: the ``Intent`` that policy rules and the
v2 approver judge.

An intent names the network, the chain, the sender, every destination with its amount and asset (``NATIVE`` or a
token contract), the fee, a memo, the transaction type and, once the daemon has computed them, the SHA-256 of the
exact bytes to be signed. Amounts are integers in the chain's base unit (wei, satoshi, token units). A transaction
the decoder cannot fully describe is an *unknown intent* (``type == UNKNOWN``): it carries what could be read, and
the reason it is unknown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

NATIVE = "native"
"""The asset of a chain's own coin."""

NATIVE_TRANSFER = "native_transfer"
TOKEN_TRANSFER = "token_transfer"  # noqa: S105 - a transaction type, not a credential
TOKEN_TRANSFER_FROM = "token_transfer_from"  # noqa: S105
UTXO_TRANSFER = "utxo_transfer"
UNKNOWN = "unknown"

KNOWN_TYPES = frozenset({NATIVE_TRANSFER, TOKEN_TRANSFER, TOKEN_TRANSFER_FROM, UTXO_TRANSFER})
"""Every transaction type a decoder here produces, besides ``UNKNOWN``; policy files may name only these."""


@dataclass(frozen=True)
class Destination:
    address: str
    amount: int
    asset: str = NATIVE
    change: bool = False
    """A UTXO output paying back to an address the transaction spends from: not a payment, so neither allowlists nor
    amount limits apply to it."""

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "amount": str(self.amount), "asset": self.asset, "change": self.change}


@dataclass(frozen=True)
class Intent:
    chain: str
    network: str
    """``mainnet`` or ``testnet``."""
    type: str
    sender: str | None = None
    destinations: tuple[Destination, ...] = ()
    fee: int | None = None
    """In the native asset; None when the daemon looks it up (EVM gas price or limit missing) or cannot know it."""
    memo: str | None = None
    payload_sha256: str | None = None
    unknown_reason: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    """Chain-specific facts worth showing an approver (``contract`` for a token call, ``evmType``, ...)."""

    @property
    def known(self) -> bool:
        return self.type != UNKNOWN

    def payments(self) -> tuple[Destination, ...]:
        """The destinations that move value away (change outputs excluded)."""
        return tuple(d for d in self.destinations if not d.change)

    def totals(self) -> dict[str, int]:
        """Amount paid out per asset (change excluded)."""
        sums: dict[str, int] = {}
        for destination in self.payments():
            sums[destination.asset] = sums.get(destination.asset, 0) + destination.amount
        return sums

    def with_payload(self, payload_sha256: str) -> Intent:
        return replace(self, payload_sha256=payload_sha256)

    def as_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "network": self.network,
            "type": self.type,
            "sender": self.sender,
            "destinations": [d.as_json() for d in self.destinations],
            "fee": None if self.fee is None else str(self.fee),
            "memo": self.memo,
            "payloadSha256": self.payload_sha256,
            "unknownReason": self.unknown_reason,
            "details": dict(self.details),
        }


def unknown_intent(chain: str, testnet: bool, reason: str, **known: Any) -> Intent:
    return Intent(chain=chain, network=network_name(testnet), type=UNKNOWN, unknown_reason=reason, **known)


def network_name(testnet: bool) -> str:
    return "testnet" if testnet else "mainnet"


def payload_digest(payload: bytes | str) -> str:
    """SHA-256 (hex) of the exact bytes to be signed; text (hex transaction data) is hashed as its UTF-8 bytes."""
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "KNOWN_TYPES",
    "NATIVE",
    "NATIVE_TRANSFER",
    "TOKEN_TRANSFER",
    "TOKEN_TRANSFER_FROM",
    "UNKNOWN",
    "UTXO_TRANSFER",
    "Destination",
    "Intent",
    "network_name",
    "payload_digest",
    "unknown_intent",
]
