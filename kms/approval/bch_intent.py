"""BCH intents (``<transaction hex>:<spent amounts JSON>``, read with ``kms.signing.bch.parse_bch_serialized``).

The format carries the spent amounts but not the spent scripts, so the sender is unknown and no output can be
recognised as change: every output counts as a payment (list the wallet's own change addresses on an allowlist).
"""

from __future__ import annotations

from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import Intent
from kms.approval.utxo_intent import utxo_intent
from kms.chains.base import Chain
from kms.signing.bch import parse_bch_serialized
from kms.signing.utxo_common import read_serialized


def decode(pending: PendingTransaction, chain: Chain, signer: Any, testnet: bool) -> Intent:
    tx, amounts = parse_bch_serialized(read_serialized(pending))
    return utxo_intent(chain, testnet, tx, spent_total=sum(amounts), spent_scripts=(), sender=None)
