"""What every store-touching command needs: settings, the password provider, the opened store."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backends import PasswordProvider, get_provider
from kms import settings as settings_mod
from kms.errors import StoreError, UsageError
from kms.hygiene import harden_process
from kms.store import DEFAULT_STORE_PATH, KdfParams, WalletStore

# Explicit opt-in for test suites and demos: a store made with a deliberately cheap KDF. Never the default.
INSECURE_TEST_KDF_ENV = "KMS_INSECURE_TEST_KDF"


def store_path(args: Namespace) -> Path:
    given = getattr(args, "path", None)
    return Path(given).expanduser() if given else DEFAULT_STORE_PATH


def load_settings(args: Namespace) -> dict[str, str]:
    return settings_mod.load_settings(getattr(args, "envFile", None))


def backend_name(args: Namespace, settings: dict[str, str]) -> str:
    """--backend NAME, or upstream's --vgs/--azure/--aws; with neither, upstream's default: the password from
    TATUM_KMS_PASSWORD when it is set, otherwise a no-echo prompt."""
    chosen = [name for name in ("vgs", "azure", "aws") if getattr(args, name, False)]
    explicit = getattr(args, "backend", None)
    if explicit:
        chosen.append(explicit.strip().lower())
    if len(set(chosen)) > 1:
        raise UsageError(f"choose one password backend, not {' and '.join(sorted(set(chosen)))}")
    if chosen:
        return chosen[0]
    if settings.get("TATUM_KMS_PASSWORD") or settings.get("TATUM_KMS_PASSWORD_FILE"):
        return "env"
    return "prompt"


def password_provider(args: Namespace, settings: dict[str, str]) -> PasswordProvider:
    return get_provider(backend_name(args, settings), settings)


def insecure_test_kdf() -> bool:
    if os.environ.get(INSECURE_TEST_KDF_ENV) == "1":
        sys.stderr.write(f"warning: {INSECURE_TEST_KDF_ENV}=1: using a deliberately weak KDF (tests only)\n")
        return True
    return False


@contextmanager
def open_store(args: Namespace, *, create: bool = False) -> Iterator[WalletStore]:
    """Harden the process, get the password from the chosen provider, open (or create) the store; wipe after."""
    harden_process()
    path = store_path(args)
    probe = WalletStore.probe(path)
    if probe == "missing" and not create:
        raise StoreError(f"no wallet store at {path}; create one with generatemanagedwallet or storemanagedwallet")
    weak = insecure_test_kdf()
    settings = load_settings(args)
    provider = password_provider(args, settings)
    with provider.fetch() as password:
        if probe == "missing" and create and getattr(provider, "interactive", False):
            with provider.fetch() as again:
                if again != password:
                    raise UsageError("the two passwords differ; nothing was created")
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
