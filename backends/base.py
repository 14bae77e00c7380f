"""The narrow interface every password provider implements, the registry, and the helpers they share."""

from __future__ import annotations

import importlib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from kms.errors import ProviderError, UsageError
from kms.hygiene import SecretBuffer

Settings = Mapping[str, str]
"""Environment-style settings (upstream's variable names), from the process environment and the --envFile."""


@runtime_checkable
class PasswordProvider(Protocol):
    name: str

    def fetch(self) -> SecretBuffer:
        """Return the store password in a wipeable buffer; raise ProviderError (never showing the secret)."""
        ...


ProviderFactory = Callable[[Settings], PasswordProvider]

# name -> "module:factory"; modules are imported only when their provider is chosen, so cloud SDKs stay optional.
_BUILTINS: dict[str, str] = {
    "prompt": "backends.prompt:PromptProvider",
    "env": "backends.env:EnvProvider",
    "vgs": "backends.vgs:VgsProvider",
    "azure": "backends.azure:AzureKeyVaultProvider",
    "aws": "backends.aws:AwsSecretsManagerProvider",
    "vault": "backends.vault:VaultProvider",
}

BUILTIN_PROVIDERS: tuple[str, ...] = tuple(_BUILTINS)
ENTRY_POINT_GROUP = "kms.password_providers"
DEFAULT_BACKEND = "prompt"


def _third_party() -> dict[str, EntryPoint]:
    # A plug-in cannot shadow a built-in: the name an operator types always means the same code.
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name.lower() not in _BUILTINS}


def available_providers() -> list[str]:
    return sorted(set(_BUILTINS) | set(_third_party()))


def get_provider(name: str, settings: Settings) -> PasswordProvider:
    """Build the provider called ``name`` from ``settings``; unknown names are a UsageError."""
    key = name.strip().lower()
    if key in _BUILTINS:
        module_name, attr = _BUILTINS[key].split(":")
        factory: ProviderFactory = getattr(importlib.import_module(module_name), attr)
        return factory(settings)
    plugins = _third_party()
    if key not in plugins:
        raise UsageError(f"unknown password backend '{name}'; choose one of: {', '.join(available_providers())}")
    try:
        factory = plugins[key].load()
    except Exception as exc:  # a broken plug-in must not take the process down with a traceback
        raise ProviderError(f"{key}: password provider plug-in failed to load ({type(exc).__name__})") from None
    provider = factory(settings)
    if not isinstance(provider, PasswordProvider):
        raise ProviderError(f"{key}: plug-in did not return a password provider (needs 'name' and 'fetch()')")
    return provider


def backend_settings(name: str) -> tuple[str, ...]:
    """The settings the built-in backend ``name`` reads (its module's SETTINGS); a plug-in declares none here."""
    key = name.strip().lower()
    if key not in _BUILTINS:
        return ()
    names: tuple[str, ...] = importlib.import_module(_BUILTINS[key].split(":")[0]).SETTINGS
    return names


def backend_from_flags(
    backend: str | None,
    vgs: bool = False,
    azure: bool = False,
    aws: bool = False,
    settings: Settings | None = None,
) -> str:
    """The provider name chosen by ``--backend NAME`` and upstream's ``--vgs`` / ``--azure`` / ``--aws`` flags.

    More than one distinct choice is a UsageError. With no choice at all: ``TATUM_KMS_BACKEND`` when set, then (as
    upstream, whose default reads TATUM_KMS_PASSWORD before prompting) ``env`` when TATUM_KMS_PASSWORD or
    TATUM_KMS_PASSWORD_FILE is set, otherwise ``prompt``. Pass ``settings`` to get that upstream-compatible default.
    """
    chosen: list[str] = []
    if backend is not None and backend.strip():
        chosen.append(backend.strip().lower())
    chosen += [name for name, flag in (("vgs", vgs), ("azure", azure), ("aws", aws)) if flag]
    distinct = sorted(set(chosen))
    if len(distinct) > 1:
        raise UsageError(f"choose one password backend, not {' and '.join(distinct)}")
    if distinct:
        name = distinct[0]
    elif settings is not None and setting(settings, "TATUM_KMS_BACKEND"):
        name = str(setting(settings, "TATUM_KMS_BACKEND")).lower()
    elif settings is not None and (
        setting(settings, "TATUM_KMS_PASSWORD") or setting(settings, "TATUM_KMS_PASSWORD_FILE")
    ):
        name = "env"
    else:
        name = DEFAULT_BACKEND
    if name not in available_providers():
        raise UsageError(f"unknown password backend '{name}'; choose one of: {', '.join(available_providers())}")
    return name


def setting(settings: Settings, key: str, default: str | None = None) -> str | None:
    """A setting's value, with empty or blank values treated as unset (as upstream's ``if (process.env[key])``)."""
    value = settings.get(key)
    if value is None or not value.strip():
        return default
    return value.strip()


def require(settings: Settings, provider: str, *keys: str) -> list[str]:
    """The values of ``keys``; one ProviderError naming every missing setting otherwise."""
    missing = [key for key in keys if setting(settings, key) is None]
    if missing:
        raise ProviderError(f"{provider}: missing setting {', '.join(missing)}")
    return [str(setting(settings, key)) for key in keys]


def float_setting(settings: Settings, key: str, default: float, provider: str = "settings") -> float:
    raw = setting(settings, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{provider}: {key} must be a number") from None
    if value < 0:
        raise UsageError(f"{provider}: {key} must not be negative")
    return value


def import_extra(module: str, provider: str, extra: str) -> ModuleType:
    """Import an optional SDK; when it is missing, say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ProviderError(
            f"{provider}: the {module} package is not installed; install it with: pip install 'kms[{extra}]'"
        ) from None


def export_sdk_settings(settings: Settings, prefixes: Iterable[str]) -> None:
    """Copy SDK variables (``AWS_*``, ``AZURE_*``) that came from the env file into ``os.environ``.

    Upstream's dotenv put every env-file line into process.env, where the cloud SDKs read their own settings; this
    keeps that working for the SDK's own variables only (never TATUM_* secrets), and never overrides the environment.
    """
    wanted = tuple(prefixes)
    for key, value in settings.items():
        if key.startswith(wanted) and key not in os.environ:
            os.environ[key] = value


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_base_url(url: str, provider: str, key: str) -> str:
    """A service URL that credentials may be sent to: https, or plain http to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url.rstrip("/")
    if parts.scheme == "http":
        raise ProviderError(
            f"{provider}: refusing to send credentials over plain http to {parts.hostname}; {key} must be https"
        )
    raise ProviderError(f"{provider}: {key} must be an https:// URL")


__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "PasswordProvider",
    "ProviderFactory",
    "Settings",
    "available_providers",
    "backend_from_flags",
    "backend_settings",
    "checked_base_url",
    "export_sdk_settings",
    "float_setting",
    "get_provider",
    "import_extra",
    "is_loopback_host",
    "require",
    "setting",
]
