"""What every store-touching command needs, from its parsed flags: settings, the password provider, the opened store.

The work is in kms.session (shared with the daemon); this module adds the command line's side: reading the flags off
the namespace, and creating a store interactively (asking twice).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from backends import PasswordProvider
from kms import session
from kms.cli.new_store import check_store_directory, new_store_password
from kms.errors import StoreError
from kms.hygiene import harden_process
from kms.session import INSECURE_TEST_KDF_ENV, insecure_test_kdf
from kms.store import KdfParams, WalletStore

__all__ = [
    "INSECURE_TEST_KDF_ENV",
    "backend_name",
    "insecure_test_kdf",
    "load_settings",
    "open_store",
    "password_provider",
    "store_path",
]


def store_path(args: Namespace) -> Path:
    return session.store_path(session.SessionFlags.of(args))


def load_settings(args: Namespace) -> Mapping[str, str]:
    return session.load_settings(session.SessionFlags.of(args))


def backend_name(args: Namespace, settings: Mapping[str, str]) -> str:
    return session.backend_name(session.SessionFlags.of(args), settings)


def password_provider(args: Namespace, settings: Mapping[str, str]) -> PasswordProvider:
    return session.password_provider(session.SessionFlags.of(args), settings)


@contextmanager
def open_store(args: Namespace, *, create: bool = False) -> Iterator[WalletStore]:
    """Harden the process, get the password from the chosen provider, open (or create) the store; wipe after."""
    harden_process()
    settings = load_settings(args)
    backend = session.store_backend(session.SessionFlags.of(args), settings)  # --store / TATUM_KMS_STORE_URL / --path
    probe = backend.probe()
    if probe == "missing" and not create:
        raise StoreError(session.missing_store_message(backend))
    creating = probe == "missing"
    if creating and backend.path is not None:
        check_store_directory(backend.path, create_dirs=bool(getattr(args, "create_dirs", False)))
    weak = insecure_test_kdf()
    if weak and creating:
        sys.stderr.write(f"warning: {INSECURE_TEST_KDF_ENV}=1: creating a store with a deliberately weak KDF\n")
    provider = password_provider(args, settings)
    with new_store_password(provider, backend.path or backend.location) if creating else provider.fetch() as password:
        store = WalletStore.open(
            backend,
            password,
            create=create,
            kdf=KdfParams.insecure_for_tests() if weak else None,
            allow_weak_kdf=weak,
        )
    try:
        yield store
    finally:
        store.close()
