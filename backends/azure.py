"""azure: the password from an Azure Key Vault secret, through azure-keyvault-secrets and azure-identity.

The credential is ``DefaultAzureCredential``: environment (service principal), AKS workload identity, managed identity,
then developer logins. TATUM_KMS_AZURE_VAULTURL is the vault's URL or, as upstream, its host name
(``myvault.vault.azure.net``); TATUM_KMS_AZURE_SECRETVERSION is optional (latest when unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from backends.base import Settings, export_sdk_settings, import_extra, require, setting
from backends.retry import RetryPolicy, default_timeout
from kms.errors import ProviderError, TransientProviderError
from kms.hygiene import SecretBuffer

SETTINGS: tuple[str, ...] = (
    "TATUM_KMS_AZURE_VAULTURL",
    "TATUM_KMS_AZURE_SECRETNAME",
    "TATUM_KMS_AZURE_SECRETVERSION",
    # Read by the Azure SDK itself (DefaultAzureCredential): who kms is, and which cloud.
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_SECRET",
)
"""The settings this backend reads (checkconfig shows them; the README documents them)."""
NAME = "azure"


def vault_url_from(value: str) -> str:
    url = value if "://" in value else f"https://{value}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ProviderError(f"{NAME}: TATUM_KMS_AZURE_VAULTURL must be an https URL or a vault host name")
    return f"https://{parts.netloc}"


class AzureKeyVaultProvider:
    name = NAME

    def __init__(
        self,
        settings: Settings,
        retry: RetryPolicy | None = None,
        client_options: Mapping[str, Any] | None = None,
        credential_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``client_options`` / ``credential_options`` go to SecretClient / DefaultAzureCredential unchanged.

        Tests use them to reach local fakes; they are deliberately not settings an operator can set.
        """
        self._identity = import_extra("azure.identity", NAME, "azure")
        self._secrets = import_extra("azure.keyvault.secrets", NAME, "azure")
        vault, self._secret_name = require(settings, NAME, "TATUM_KMS_AZURE_VAULTURL", "TATUM_KMS_AZURE_SECRETNAME")
        self._vault_url = vault_url_from(vault)
        self._version = setting(settings, "TATUM_KMS_AZURE_SECRETVERSION")
        self._timeout = default_timeout(settings)
        self._retry = retry or RetryPolicy.from_settings(settings)
        self._client_options = dict(client_options or {})
        self._credential_options = dict(credential_options or {})
        export_sdk_settings(settings, ("AZURE_", "IDENTITY_", "MSI_"))

    def fetch(self) -> SecretBuffer:
        try:
            credential = self._identity.DefaultAzureCredential(
                exclude_interactive_browser_credential=True,
                # The credential chain hides a token endpoint's status from its caller, so token requests are
                # retried inside azure-core's pipeline, within the same bounds as every other provider call.
                retry_total=self._retry.attempts - 1,
                retry_backoff_factor=self._retry.initial_wait,
                retry_backoff_max=self._retry.max_wait,
                connection_timeout=self._timeout,
                **self._credential_options,
            )
        except ValueError as exc:  # e.g. a bad AZURE_TOKEN_CREDENTIALS or AZURE_AUTHORITY_HOST; the message is safe
            raise ProviderError(f"{NAME}: Azure credential settings rejected: {str(exc).splitlines()[0]}") from None
        # Retries are ours (one policy for every provider): the SDK pipeline makes one attempt per call.
        client = self._secrets.SecretClient(
            vault_url=self._vault_url,
            credential=credential,
            retry_total=0,
            connection_timeout=self._timeout,
            read_timeout=self._timeout,
            **self._client_options,
        )
        try:
            secret = self._retry.run(NAME, lambda: self._get_secret(client))
        finally:
            client.close()
            credential.close()
        value = secret.value
        if not value:
            raise ProviderError(f"{NAME}: secret '{self._secret_name}' has no value")
        return SecretBuffer.from_str(value)

    def _get_secret(self, client: Any) -> Any:
        from azure.core import exceptions as aze

        try:
            return client.get_secret(self._secret_name, self._version)
        except aze.ResourceNotFoundError:
            version = f" version '{self._version}'" if self._version else ""
            raise ProviderError(
                f"{NAME}: secret '{self._secret_name}'{version} not found in {self._vault_url}"
            ) from None
        except aze.ClientAuthenticationError as exc:
            status = getattr(exc, "status_code", None)
            if status is not None and (status == 429 or status >= 500):
                raise TransientProviderError(f"{NAME}: token or vault request failed (HTTP {status})") from None
            raise ProviderError(
                f"{NAME}: no Azure credential could get a Key Vault token (HTTP {status or 'n/a'}); check the "
                "identity settings (workload identity, managed identity or AZURE_CLIENT_ID/AZURE_TENANT_ID/"
                "AZURE_CLIENT_SECRET) and its federated credential or secret"
            ) from None
        except aze.HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 429 or status >= 500:
                raise TransientProviderError(f"{NAME}: Key Vault answered HTTP {status}") from None
            if status == 403:
                raise ProviderError(f"{NAME}: access to secret '{self._secret_name}' refused (HTTP 403)") from None
            raise ProviderError(f"{NAME}: Key Vault answered HTTP {status}") from None
        except (aze.ServiceRequestError, aze.ServiceResponseError) as exc:
            raise TransientProviderError(f"{NAME}: cannot reach {self._vault_url} ({type(exc).__name__})") from None


AZURE_ENTRA = "azure-entra"
AZURE_POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


class AzureEntraToken:
    name = AZURE_ENTRA

    def __init__(self, settings: Settings, credential_options: Mapping[str, Any] | None = None) -> None:
        self._identity = import_extra("azure.identity", AZURE_ENTRA, "azure")
        self._options = dict(credential_options or {})
        export_sdk_settings(settings, ("AZURE_", "IDENTITY_", "MSI_"))

    def fetch(self) -> SecretBuffer:
        from azure.core.exceptions import AzureError

        try:
            credential = self._identity.DefaultAzureCredential(
                exclude_interactive_browser_credential=True, **self._options
            )
        except ValueError as exc:
            raise ProviderError(
                f"{AZURE_ENTRA}: Azure credential settings rejected: {str(exc).splitlines()[0]}"
            ) from None
        try:
            token = credential.get_token(AZURE_POSTGRES_SCOPE).token
        except AzureError as exc:
            raise ProviderError(
                f"{AZURE_ENTRA}: no Azure credential could get a database token ({type(exc).__name__}); check the"
                " workload identity or managed identity settings"
            ) from None
        finally:
            credential.close()
        return SecretBuffer.from_str(token)
