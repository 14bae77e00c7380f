"""What the CLI and the daemon both start from: the settings, the password provider, the store's path, opening it.

Below both kms.cli and kms.daemon (neither reaches into the other for these). ``SessionFlags`` are the flags every
store-touching command shares (upstream's ``--path``, ``--envFile`` and the backend flags), read from any object
carrying them, such as an argparse namespace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backends import PasswordProvider, get_provider
from backends.base import backend_from_flags
from kms import settings as settings_mod
from kms.errors import StoreError, StoreMissingError
from kms.hygiene import SecretBuffer
from kms.store import DEFAULT_STORE_PATH, WalletStore
from kms.store.backend import StoreBackend
from kms.store_location import open_location, store_location

# Explicit opt-in for test suites and demos: a store made with a deliberately cheap KDF. Never the default.
INSECURE_TEST_KDF_ENV = "KMS_INSECURE_TEST_KDF"


@dataclass(frozen=True)
class SessionFlags:
    path: str | None = None
    store: str | None = None  # --store URL (a database, or sqlite:///PATH)
    env_file: str | None = None
    backend: str | None = None
    vgs: bool = False
    azure: bool = False
    aws: bool = False

    @classmethod
    def of(cls, args: object) -> SessionFlags:
        """The shared flags of a parsed command line (absent ones take their defaults)."""
        return cls(
            path=getattr(args, "path", None),
            store=getattr(args, "store", None),
            env_file=getattr(args, "envFile", None),
            backend=getattr(args, "backend", None),
            vgs=bool(getattr(args, "vgs", False)),
            azure=bool(getattr(args, "azure", False)),
            aws=bool(getattr(args, "aws", False)),
        )


def store_path(flags: SessionFlags) -> Path:
    return Path(flags.path).expanduser() if flags.path else DEFAULT_STORE_PATH


def store_backend(flags: SessionFlags, settings: Mapping[str, str]) -> StoreBackend:
    """The store chosen by --store, TATUM_KMS_STORE_URL or --path (the default file otherwise), with a database's
    credential from the provider layer (kms.store_location)."""
    return open_location(store_location(flags.path, flags.store, settings, DEFAULT_STORE_PATH), settings)


def load_settings(flags: SessionFlags) -> settings_mod.EnvSettings:
    return settings_mod.load_settings(flags.env_file)


def backend_name(flags: SessionFlags, settings: Mapping[str, str]) -> str:
    return backend_from_flags(flags.backend, vgs=flags.vgs, azure=flags.azure, aws=flags.aws, settings=settings)


def password_provider(flags: SessionFlags, settings: Mapping[str, str]) -> PasswordProvider:
    return get_provider(backend_name(flags, settings), settings)


def insecure_test_kdf() -> bool:
    return os.environ.get(INSECURE_TEST_KDF_ENV) == "1"


def missing_store_message(path: Path | StoreBackend) -> str:
    where = path if isinstance(path, Path) else path.location
    return f"no wallet store at {where}; create one with generatemanagedwallet or storemanagedwallet"


def open_existing_store(path: Path | StoreBackend, password: SecretBuffer, allow_weak_kdf: bool) -> WalletStore:
    """Open an existing store (never create one here); raises WrongPasswordError on a wrong password."""
    try:
        return WalletStore.open(path, password, create=False, allow_weak_kdf=allow_weak_kdf)
    except StoreMissingError:
        raise StoreError(missing_store_message(path)) from None
