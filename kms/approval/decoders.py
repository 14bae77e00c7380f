"""Intent decoders: one per transaction family, found through the chain's signer.

A decoder reads a pending transaction with the same parser the chain's signer uses (so it sees exactly what would be
signed) and says what it would do as an ``Intent``. The chain facts it needs come from the chain itself: the signer
object holds the parse rules (EVM ``ParseRules``, UTXO ``SigningNetwork``) and the chain module the address formats.
There is no table of chain codes here: a chain is decoded when its signer belongs to a registered family.

How a new chain plugs in (ALGO, EGLD, VET, FLOW, ...; TRON, XLM, XRP and SOL are decoded as below):

1. Write ``kms/approval/<family>_intent.py`` with ``decode(pending, chain, signer, testnet) -> Intent``. Parse with
   the signer's own parser (``kms.signing.<chain>``), read only, and name destinations, amounts and asset (TRC-20
   call data, SPL mint, Stellar/XRP issued asset ``CODE:ISSUER``), fee and memo. Anything the decoder does not fully
   understand returns ``unknown_intent(...)`` with the reason; a parser's ``SigningError`` becomes one too.
2. Register it below in ``_FAMILIES``: ``Family("tron", "kms.signing.tron:TronSigner", "kms.approval.tron_intent")``.
   The signer class is the family marker, so every chain signed by that class is decoded by it.
3. Add a vector test (tests/approval/test_approval_intent.py): the decoded destination and amount equal the vector's.

When the Chain protocol gains the capability (``intent_family`` with a ``None`` default in ``ChainDefaults``), the
chain declares its family there and ``family_of`` reads it instead of the signer class; decoders stay as they are.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import Intent, unknown_intent
from kms.chains import get_chain
from kms.chains.base import Chain, loaded_signer
from kms.errors import KmsError

Decoder = Callable[[PendingTransaction, Chain, Any, bool], Intent]


@dataclass(frozen=True)
class Family:
    name: str
    signer_class: str
    """``module:Class`` of the signer that marks a chain as this family (checked with isinstance)."""
    decoder_module: str
    """Module with ``decode(pending, chain, signer, testnet) -> Intent``."""

    def matches(self, signer: object) -> bool:
        module_name, class_name = self.signer_class.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            return False
        return isinstance(signer, cls)

    def decoder(self) -> Decoder:
        decode: Decoder = importlib.import_module(self.decoder_module).decode
        return decode


# Order matters where one signer class derives from another (none do today).
_FAMILIES: list[Family] = [
    Family("evm", "kms.signing.evm:EvmSigner", "kms.approval.evm_intent"),
    Family("bitcore", "kms.signing.utxo:UtxoSigner", "kms.approval.utxo_intent"),
    Family("bch", "kms.signing.bch:BchSigner", "kms.approval.bch_intent"),
    Family("tron", "kms.signing.tron:TronSigner", "kms.approval.tron_intent"),
    Family("xlm", "kms.signing.xlm:XlmSigner", "kms.approval.xlm_intent"),
    Family("xrp", "kms.signing.xrp:XrpSigner", "kms.approval.xrp_intent"),
    Family("sol", "kms.signing.sol:SolSigner", "kms.approval.sol_intent"),
]


def register_family(family: Family) -> None:
    """Add a decoder family (a chain signer module may call this; a later registration of the same name wins)."""
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != family.name] + [family]


def families() -> tuple[str, ...]:
    return tuple(f.name for f in _FAMILIES)


def family_of(chain: Chain) -> Family | None:
    signer = loaded_signer(chain)
    if signer is None:
        return None
    return next((family for family in _FAMILIES if family.matches(signer)), None)


def decode_intent(pending: PendingTransaction, testnet: bool) -> Intent:
    """The intent of ``pending``; never raises for bad input: what cannot be decoded is an unknown intent."""
    chain_code = str(pending.chain or "").strip().upper()
    try:
        chain = get_chain(chain_code)
    except KmsError:
        return unknown_intent(chain_code[:16] or "?", testnet, "kms does not know this chain")
    family = family_of(chain)
    if family is None:
        return unknown_intent(chain.code, testnet, f"no intent decoder for {chain.code} transactions yet")
    try:
        return family.decoder()(pending, chain, loaded_signer(chain), bool(testnet))
    except KmsError as exc:
        # The signer's own parser refused it: the signer would refuse it too.
        return unknown_intent(chain.code, testnet, f"not decodable: {exc}")
    except Exception as exc:  # a library's surprise must not stop the daemon; unknown fails closed
        return unknown_intent(chain.code, testnet, f"not decodable ({type(exc).__name__})")


__all__ = ["Decoder", "Family", "decode_intent", "families", "family_of", "register_family"]
