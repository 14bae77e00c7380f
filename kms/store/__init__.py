"""The encrypted wallet store: one SQLite file holding every managed wallet and the signing journal.

WalletStore (wallet_store.py) is the facade over one Database (database.py) and its parts: Wallets (wallets.py),
Rotation (rotation.py) and SigningJournal (journal.py). acquire_daemon_lock (lock.py) keeps one daemon per store.
"""

from __future__ import annotations

from kms.errors import (
    DaemonLockedError,
    ImportConflictError,
    InvalidWalletError,
    JournalConflictError,
    JournalStateError,
    StoreMissingError,
    WeakKdfError,
)
from kms.store.crypto import KdfParams
from kms.store.format import MAX_WALLETS_PER_CHAIN
from kms.store.journal import DEFAULT_RETENTION_DAYS, JournalEntry, JournalState, SigningJournal
from kms.store.lock import DaemonLock, acquire_daemon_lock
from kms.store.model import StoredWallet, WalletMeta
from kms.store.shared import close_shared, open_shared
from kms.store.upstream import is_upstream_file, read_upstream
from kms.store.wallet_store import DEFAULT_STORE_PATH, WalletStore

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_STORE_PATH",
    "MAX_WALLETS_PER_CHAIN",
    "DaemonLock",
    "DaemonLockedError",
    "ImportConflictError",
    "InvalidWalletError",
    "JournalConflictError",
    "JournalEntry",
    "JournalState",
    "JournalStateError",
    "KdfParams",
    "SigningJournal",
    "StoreMissingError",
    "StoredWallet",
    "WalletMeta",
    "WalletStore",
    "WeakKdfError",
    "acquire_daemon_lock",
    "close_shared",
    "is_upstream_file",
    "open_shared",
    "read_upstream",
]
