"""The encrypted wallet store: one SQLite file holding every managed wallet (see wallet_store.py)."""

from __future__ import annotations

from kms.store.crypto import KdfParams
from kms.store.errors import (
    ImportConflictError,
    InvalidWalletError,
    JournalConflictError,
    StoreMissingError,
    WeakKdfError,
)
from kms.store.format import MAX_WALLETS_PER_CHAIN
from kms.store.journal import JournalEntry
from kms.store.model import StoredWallet, WalletMeta
from kms.store.shared import close_shared, open_shared
from kms.store.upstream import is_upstream_file, read_upstream
from kms.store.wallet_store import DEFAULT_STORE_PATH, WalletStore

__all__ = [
    "DEFAULT_STORE_PATH",
    "MAX_WALLETS_PER_CHAIN",
    "ImportConflictError",
    "InvalidWalletError",
    "JournalConflictError",
    "JournalEntry",
    "KdfParams",
    "StoreMissingError",
    "StoredWallet",
    "WalletMeta",
    "WalletStore",
    "WeakKdfError",
    "close_shared",
    "is_upstream_file",
    "open_shared",
    "read_upstream",
]
