"""The chain registry: one entry per upstream chain code."""

from __future__ import annotations

from kms.chains.base import Chain
from kms.errors import UnknownChainError

# Upstream's default order for the daemon's poll loop.
CHAIN_ORDER: tuple[str, ...] = (
    "BCH", "VET", "XRP", "XLM", "ETH", "BTC", "MATIC", "KLAY", "LTC", "DOGE", "CELO",
    "BSC", "SOL", "TRON", "BNB", "FLOW", "XDC", "EGLD", "ONE", "ADA", "ALGO", "KCS",
)  # fmt: skip

_REGISTRY: dict[str, Chain] = {}


def register(chain: Chain) -> Chain:
    _REGISTRY[chain.code] = chain
    return chain


def _load() -> None:
    if _REGISTRY:
        return
    from kms.chains import registry_table  # noqa: F401 - registers every chain module


def get_chain(code: str) -> Chain:
    _load()
    chain = _REGISTRY.get(code.strip().upper())
    if chain is None:
        raise UnknownChainError(f"Unsupported chain '{code}'. Supported: {', '.join(sorted(supported_codes()))}")
    return chain


def supported_codes() -> list[str]:
    _load()
    return [c for c in CHAIN_ORDER if c in _REGISTRY]


def all_chains() -> list[Chain]:
    return [_REGISTRY[c] for c in supported_codes()]


def signer_setting_names() -> tuple[str, ...]:
    """The settings some chain's signer takes (``LazySigner(..., settings=...)``), each once, in registry order."""
    from kms.chains.base import LazySigner

    names: dict[str, None] = {}
    for chain in all_chains():
        if isinstance(chain.signer, LazySigner):
            names.update(dict.fromkeys(chain.signer.setting_names))
    return tuple(names)


def retired_wallet_warnings(counts: dict[tuple[str, bool], int]) -> list[str]:
    """One warning per (chain, network) whose stored wallets belong to a retired chain (BNB Beacon Chain)."""
    _load()
    warnings = []
    for (code, testnet), count in sorted(counts.items()):
        chain = _REGISTRY.get(code)
        if chain is not None and chain.retired and count > 0:
            network = "testnet" if testnet else "mainnet"
            warnings.append(
                f"the store holds {count} {code} {network} wallet(s), but {chain.retired} for good: their pending "
                "transactions are not signed; the wallets stay readable, exportable and removable"
            )
    return warnings
