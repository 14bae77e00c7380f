"""`kms checkconfig`: the configuration in force, as JSON on stdout (``--table`` for upstream's text layout).

The store and the password backend are reported apart: kms keeps every wallet in one local file whichever backend
holds its password (upstream's "Wallet store type" named the backend). Only secrets are masked: passwords, tokens and
credentials show only whether they are set, the Tatum API key its first and last six characters as upstream does;
names, regions, endpoints and paths are shown as they are, since those are what an operator checks.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping

from backends.base import backend_settings
from kms import __version__
from kms.chains import retired_wallet_warnings, signer_setting_names
from kms.cli import output
from kms.cli.session import backend_name, load_settings, store_path
from kms.hygiene import hardening_status
from kms.masking import mask_api_key, mask_secret
from kms.settings import SECRET_SETTINGS
from kms.store import WalletStore

STORE_TYPE = "LOCAL"
"""kms's store is always a local file (upstream's LOCAL)."""

UPSTREAM_SETTINGS = (
    "TATUM_API_KEY",
    "TATUM_KMS_PASSWORD",
    "TATUM_KMS_VGS_ALIAS",
    "TATUM_KMS_VGS_USERNAME",
    "TATUM_KMS_VGS_PASSWORD",
    "TATUM_KMS_AZURE_SECRETVERSION",
    "TATUM_KMS_AZURE_SECRETNAME",
    "TATUM_KMS_AZURE_VAULTURL",
    "TATUM_KMS_AWS_REGION",
    "TATUM_KMS_AWS_ACCESS_KEY_ID",
    "TATUM_KMS_AWS_SECRET_ACCESS_KEY",
    "TATUM_KMS_AWS_SECRET_NAME",
    "TATUM_KMS_AWS_SECRET_KEY",
)
"""The variables upstream's checkconfig prints, in its order (the --table rows)."""

GENERAL_SETTINGS = (
    "TATUM_API_KEY",
    "TATUM_API_URL",
    "TATUM_KMS_BACKEND",
    "TESTNET_TYPE",
    "TATUM_KMS_LOG_LEVEL",
    "TATUM_KMS_EXTERNAL_URL_TIMEOUT",
    "TATUM_KMS_MAX_IN_FLIGHT",
    "TATUM_KMS_MAX_IN_FLIGHT_PER_SENDER",
    "TATUM_KMS_UNSEAL_SOCKET",
    "TATUM_KMS_PROVIDER_TIMEOUT",
    "TATUM_KMS_RETRY_ATTEMPTS",
    "TATUM_KMS_RETRY_WAIT",
    "TATUM_KMS_RETRY_MAX_WAIT",
)
"""Settings that do not belong to one password backend."""

_SECRET_SUFFIXES = ("_PASSWORD", "_TOKEN", "_SECRET_ID", "_SECRET_ACCESS_KEY", "_CLIENT_SECRET", "_API_KEY")


def is_secret(name: str) -> bool:
    # TATUM_KMS_AWS_SECRET_NAME and _SECRET_KEY name where the password is, they are not secrets themselves.
    return name in SECRET_SETTINGS or name.endswith(_SECRET_SUFFIXES)


def shown(name: str, settings: Mapping[str, str], api_key: str | None = None) -> str | None:
    """A setting's value as checkconfig may print it; None when unset."""
    value = (api_key if name == "TATUM_API_KEY" and api_key else settings.get(name)) or None
    if value is None or not value.strip():
        return None
    if name == "TATUM_API_KEY":
        return mask_api_key(value)
    return mask_secret(value) if is_secret(name) else value


def configuration(args: Namespace) -> dict[str, object]:
    settings = load_settings(args)
    backend = backend_name(args, settings)
    api_key = getattr(args, "apiKey", None)
    return {
        "version": __version__,
        "envFile": _env_file(settings),
        "store": store_facts(args),
        "passwordBackend": {
            "name": backend,
            "settings": {name: shown(name, settings) for name in backend_settings(backend)},
        },
        "settings": {name: shown(name, settings, api_key) for name in (*GENERAL_SETTINGS, *signer_setting_names())},
        "hardening": hardening_status().as_dict(),
        **_warnings(args),
    }


def _warnings(args: Namespace) -> dict[str, list[str]]:
    """Stored wallets of retired chains (from the store's plaintext counts: no password needed)."""
    warnings = retired_wallet_warnings(WalletStore.peek_counts(store_path(args)))
    return {"warnings": warnings} if warnings else {}


def store_facts(args: Namespace) -> dict[str, object]:
    path = store_path(args)
    return {"type": STORE_TYPE, "path": str(path), "exists": path.exists(), "format": WalletStore.probe(path)}


def _env_file(settings: Mapping[str, str]) -> str | None:
    env_file = getattr(settings, "env_file", None)  # the file actually read, the default one included
    return str(env_file) if env_file else None


def checkconfig(args: Namespace) -> int:
    if getattr(args, "table", False):
        rows = table_rows(args)
        width = max(_TABLE_WIDTH, *(len(name) + 1 for name, _ in rows))
        for name, value in rows:
            print(f"{name.ljust(width)}: {'N/A' if value is None else value}")
    else:
        output.emit(configuration(args))
    return 0


_TABLE_WIDTH = 33  # upstream's label column (wider only when a longer name must fit)


def table_rows(args: Namespace) -> list[tuple[str, object]]:
    """Upstream's rows, labels and order first, then what kms adds."""
    settings = load_settings(args)
    store = store_facts(args)
    backend = backend_name(args, settings)
    api_key = getattr(args, "apiKey", None)
    rows: list[tuple[str, object]] = [
        ("Version", __version__),
        ("Wallet file path", store["path"]),
        ("Wallet exists", str(store["exists"]).lower()),
        ("Wallet store type", store["type"]),
        ("Environment vars file", _env_file(settings)),
        *((name, shown(name, settings, api_key)) for name in UPSTREAM_SETTINGS),
        ("Wallet store format", store["format"]),
        ("Password backend", backend),
    ]
    listed = {name for name, _ in rows}
    extra = [*backend_settings(backend), *GENERAL_SETTINGS, *signer_setting_names()]
    rows += [(name, shown(name, settings, api_key)) for name in dict.fromkeys(extra) if name not in listed]
    hardening = hardening_status()
    rows += [
        ("Core dumps disabled", str(hardening.core_dumps_disabled).lower()),
        ("Process not dumpable", str(hardening.not_dumpable).lower()),
        ("Secret memory lockable (mlock)", str(hardening.mlock_available).lower()),
    ]
    rows += [("Warning", warning) for warning in _warnings(args).get("warnings", [])]
    return rows


__all__ = [
    "GENERAL_SETTINGS",
    "STORE_TYPE",
    "UPSTREAM_SETTINGS",
    "checkconfig",
    "configuration",
    "is_secret",
    "shown",
    "store_facts",
    "table_rows",
]
