"""What every store-touching command needs: settings, the password provider, the opened store."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from backends import PasswordProvider, get_provider
from backends.base import backend_from_flags
from kms import settings as settings_mod
from kms.cli.new_store import check_store_directory, new_store_password
from kms.errors import StoreError
from kms.hygiene import harden_process
from kms.store import DEFAULT_STORE_PATH, KdfParams, WalletStore

# Explicit opt-in for test suites and demos: a store made with a deliberately cheap KDF. Never the default.
INSECURE_TEST_KDF_ENV = "KMS_INSECURE_TEST_KDF"


def store_path(args: Namespace) -> Path:
    given = getattr(args, "path", None)
    return Path(given).expanduser() if given else DEFAULT_STORE_PATH


def load_settings(args: Namespace) -> Mapping[str, str]:
    return settings_mod.load_settings(getattr(args, "envFile", None))


def backend_name(args: Namespace, settings: Mapping[str, str]) -> str:
    return backend_from_flags(
        getattr(args, "backend", None),
        vgs=bool(getattr(args, "vgs", False)),
        azure=bool(getattr(args, "azure", False)),
        aws=bool(getattr(args, "aws", False)),
        settings=settings,
    )


def password_provider(args: Namespace, settings: Mapping[str, str]) -> PasswordProvider:
    return get_provider(backend_name(args, settings), settings)


def insecure_test_kdf() -> bool:
    return os.environ.get(INSECURE_TEST_KDF_ENV) == "1"


@contextmanager
def open_store(args: Namespace, *, create: bool = False) -> Iterator[WalletStore]:
    """Harden the process, get the password from the chosen provider, open (or create) the store; wipe after."""
    harden_process()
    path = store_path(args)
    probe = WalletStore.probe(path)
    if probe == "missing" and not create:
        raise StoreError(f"no wallet store at {path}; create one with generatemanagedwallet or storemanagedwallet")
    creating = probe == "missing"
    if creating:
        check_store_directory(path, create_dirs=bool(getattr(args, "create_dirs", False)))
    weak = insecure_test_kdf()
    if weak and creating:
        sys.stderr.write(f"warning: {INSECURE_TEST_KDF_ENV}=1: creating a store with a deliberately weak KDF\n")
    settings = load_settings(args)
    provider = password_provider(args, settings)
    with new_store_password(provider, path) if creating else provider.fetch() as password:
        store = WalletStore.open(
            path,
            password,
            create=create,
            kdf=KdfParams.insecure_for_tests() if weak else None,
            allow_weak_kdf=weak,
        )
    try:
        yield store
    finally:
        store.close()
