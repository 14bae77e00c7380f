"""One unlocked store per file per process: the password KDF runs once, however often the process asks.

Nothing is cached across processes. A later caller must present the same password (checked against a keyed hash
made with a per-process random key, so the cache holds nothing that a copy of the file could be attacked with).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from pathlib import Path

from kms.errors import WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.store.crypto import KdfParams
from kms.store.wallet_store import DEFAULT_ROTATE_AFTER, WalletStore

_lock = threading.Lock()
_fingerprint_key = SecretBuffer(os.urandom(32))
_stores: dict[Path, tuple[WalletStore, bytes]] = {}


def _fingerprint(password: SecretBuffer) -> bytes:
    return hmac.new(_fingerprint_key.raw(), password.view(), hashlib.sha256).digest()


def open_shared(
    path: Path | str,
    password: SecretBuffer,
    *,
    create: bool = False,
    kdf: KdfParams | None = None,
    allow_weak_kdf: bool = False,
    rotate_after: int = DEFAULT_ROTATE_AFTER,
) -> WalletStore:
    """The process's store for `path`, unlocked on first use. Do not close() it; call close_shared() at exit."""
    key = Path(path).expanduser().resolve()
    fingerprint = _fingerprint(password)
    with _lock:
        cached = _stores.get(key)
        if cached is not None and not cached[0].closed:
            store, known = cached
            if not hmac.compare_digest(known, fingerprint):
                raise WrongPasswordError()
            return store
        store = WalletStore.open(
            key, password, create=create, kdf=kdf, allow_weak_kdf=allow_weak_kdf, rotate_after=rotate_after
        )
        _stores[key] = (store, fingerprint)
        return store


def close_shared() -> None:
    """Close (and wipe the keys of) every store opened with open_shared."""
    with _lock:
        for store, _ in _stores.values():
            store.close()
        _stores.clear()
