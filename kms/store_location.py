"""Where the store is (``--store URL`` / TATUM_KMS_STORE_URL, or upstream's ``--path`` file) and the database's
credential, fetched through the same password providers (backends/) as the store password.

The database password is a second secret of the same kind, so it takes the same road: TATUM_KMS_STORE_BACKEND names
the provider (``env`` by default), and that provider reads its usual settings with ``TATUM_KMS_STORE_`` in place of
``TATUM_KMS_``: TATUM_KMS_STORE_PASSWORD or TATUM_KMS_STORE_PASSWORD_FILE for env, TATUM_KMS_STORE_AWS_SECRET_NAME
for aws, TATUM_KMS_STORE_AZURE_SECRETNAME for azure, TATUM_KMS_STORE_VAULT_... for vault. None of the store
password's own settings is ever used for the database. ``rds-iam`` and ``azure-entra`` make a short-lived token
instead of fetching a password (backends.database_tokens). The credential is fetched again at every (re)connect, so a
rotated secret or a short-lived token is picked up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from backends.base import backend_settings, get_provider, setting
from backends.database_tokens import TOKEN_SOURCES, token_source
from kms.errors import UsageError
from kms.hygiene import SecretBuffer
from kms.store.backend import CredentialSource, StoreBackend, is_database_url, open_backend

STORE_URL_SETTING = "TATUM_KMS_STORE_URL"
STORE_BACKEND_SETTING = "TATUM_KMS_STORE_BACKEND"
_OWN = "TATUM_KMS_"
_TWIN = "TATUM_KMS_STORE_"


def database_settings(settings: Mapping[str, str], provider: str) -> dict[str, str]:
    """The settings a provider sees when it fetches the database credential: its TATUM_KMS_ settings replaced by
    their TATUM_KMS_STORE_ twins (or absent), everything else (the SDKs' own AWS_*, AZURE_*, VAULT_*) unchanged."""
    own = {key for key in backend_settings(provider) if key.startswith(_OWN)}
    seen = {key: value for key, value in settings.items() if key not in own}
    for key in own:
        twin = _TWIN + key[len(_OWN) :]
        if twin in settings:
            seen[key] = settings[twin]
    return seen


def database_credentials(settings: Mapping[str, str], location: str = "") -> CredentialSource | None:
    """Fetches the database password from the chosen provider, or a short-lived token (rds-iam, azure-entra:
    backends.database_tokens) for the database at `location`; None when nothing is configured (then the URL, a
    client certificate or ~/.pgpass authenticates, as libpq does)."""
    name = (setting(settings, STORE_BACKEND_SETTING) or "env").lower()
    if name == "prompt":
        raise UsageError(f"{STORE_BACKEND_SETTING}=prompt: the database password cannot be typed in; use a provider")
    if name in TOKEN_SOURCES:
        parts = urlsplit(location)
        source = token_source(name, settings, parts.hostname or "", parts.port or 5432, unquote(parts.username or ""))
        return source.fetch
    seen = database_settings(settings, name)
    if name == "env" and not (setting(seen, "TATUM_KMS_PASSWORD") or setting(seen, "TATUM_KMS_PASSWORD_FILE")):
        return None
    provider = get_provider(name, seen)

    def fetch() -> SecretBuffer | None:
        return provider.fetch()

    return fetch


def store_location(path_flag: str | None, store_flag: str | None, settings: Mapping[str, str], default: Path) -> str:
    """The location chosen by ``--store`` or ``--path`` (not both), else TATUM_KMS_STORE_URL, else the default file.
    A flag wins over the setting."""
    if store_flag and path_flag:
        raise UsageError("choose the store with --path FILE or --store URL, not both")
    if store_flag:
        return store_flag.strip()
    if path_flag:
        return str(Path(path_flag).expanduser())
    return (setting(settings, STORE_URL_SETTING) or str(default)).strip()


def open_location(location: str, settings: Mapping[str, str]) -> StoreBackend:
    """The backend for a location, with the database credential wired in for a database URL."""
    if "://" not in location:
        return open_backend(Path(location).expanduser())
    credentials = database_credentials(settings, location) if is_database_url(location) else None
    return open_backend(location, credentials)
