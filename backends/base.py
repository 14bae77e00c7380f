"""The narrow interface every password provider implements, and the registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

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

ENTRY_POINT_GROUP = "kms.password_providers"


def _third_party() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_providers() -> list[str]:
    return sorted(set(_BUILTINS) | set(_third_party()))


def get_provider(name: str, settings: Settings) -> PasswordProvider:
    key = name.strip().lower()
    if key in _BUILTINS:
        module_name, attr = _BUILTINS[key].split(":")
        try:
            factory: ProviderFactory = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as exc:  # a built-in module missing is a packaging bug, not a user error
            raise ProviderError(f"provider '{key}' is not available: {exc}") from None
        return factory(settings)
    plugins = _third_party()
    if key in plugins:
        factory = plugins[key].load()  # type: ignore[attr-defined]
        return factory(settings)
    raise UsageError(f"unknown password backend '{name}'; choose one of: {', '.join(available_providers())}")
