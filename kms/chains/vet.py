"""VET (VeChainThor): Ethereum's keys and addresses on VET's own path, m/44'/818'/0'/0/i (testnet m/44'/1'/0'/0/i),
records ``{xpub, mnemonic}``, keys ``0x`` + 64 hex digits.

Its transactions are Thor clauses, not Ethereum transactions: ``kms.signing.vet`` signs them, with gas, chain tag and
block reference from a VeChainThor REST node (setting ``TATUM_KMS_VET_NODE_URL``, default upstream's public node for
the network), and the signed RLP goes to ``POST /v3/vet/broadcast``. Upstream 8.0.1 fails for mnemonic VET wallets
("Unsupported blockchain."): here they derive on the path above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kms.chains.base import LazySigner
from kms.chains.evm import EthereumKeyChain

NODE_URL_SETTING = "TATUM_KMS_VET_NODE_URL"


@dataclass(frozen=True)
class VetFacts:
    """What upstream's VET signing reaches and accepts, per daemon network (testnet flag)."""

    default_node_urls: Mapping[bool, str]
    """The public nodes upstream hard-codes (its ``VET_URL`` / ``TEST_VET_URL``)."""
    genesis_ids: Mapping[bool, str]
    """Genesis block ids of VeChainThor mainnet and testnet; the chain tag is the last byte."""
    expiration: int = 720
    """Blocks a transaction stays valid (thorify's default, which upstream keeps)."""
    gas_price_coef: int = 0
    vm_gas_margin: int = 15_000
    """thorify adds this to the node's gasUsed: the state the transaction meets is not the one estimated against."""


VET_FACTS = VetFacts(
    default_node_urls={False: "https://sync-mainnet.vechain.org", True: "https://sync-testnet.vechain.org"},
    genesis_ids={
        False: "0x00000000851caf3cfdb6e899cf5958bfb1ac3413d346d43539627e6be7ec1b4a",
        True: "0x000000000b2bce3c70bc649a02749e8687721b09ed2e15997f466536b20bb127",
    },
)


class VetChain(EthereumKeyChain):
    """VET's keys and addresses are Ethereum's; its signer is its own (``offchain_withdrawals`` stays False: upstream
    broadcasts VET on the chain route whatever the pending transaction says)."""


VET = VetChain("VET", "vet", 818)
VET.signer = LazySigner("kms.signing.vet:VetSigner", VET_FACTS, settings={"node_url": NODE_URL_SETTING})
CHAINS = (VET,)
