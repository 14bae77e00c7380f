"""Short-lived database tokens in place of a database password, for a store on a managed PostgreSQL:

- ``rds-iam``: Amazon RDS / Aurora IAM database authentication. A 15-minute token signed (SigV4, locally by boto3)
  with the pod's AWS identity (IRSA, EKS Pod Identity, instance profile, or AWS_* settings); the role needs
  ``rds-db:connect`` on ``arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER``.
- ``azure-entra``: Azure Database for PostgreSQL with Microsoft Entra authentication. An access token for the
  database's scope from DefaultAzureCredential (AKS workload identity, managed identity, or a service principal).

Chosen with TATUM_KMS_STORE_BACKEND (kms.store_location); a token is made for every new connection, so it is always
fresh. The SDKs are imported here only (extras ``aws`` and ``azure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.base import Settings, export_sdk_settings, import_extra, setting
from kms.errors import ProviderError
from kms.hygiene import SecretBuffer

RDS_IAM = "rds-iam"
AZURE_ENTRA = "azure-entra"
TOKEN_SOURCES = (RDS_IAM, AZURE_ENTRA)
AZURE_POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


class RdsIamToken:
    name = RDS_IAM

    def __init__(self, settings: Settings, host: str, port: int, user: str) -> None:
        self._boto3 = import_extra("boto3", RDS_IAM, "aws")
        self._region = (
            setting(settings, "TATUM_KMS_STORE_AWS_REGION")
            or setting(settings, "AWS_REGION")
            or setting(settings, "AWS_DEFAULT_REGION")
        )
        if not self._region:
            raise ProviderError(f"{RDS_IAM}: set TATUM_KMS_STORE_AWS_REGION (the database's region)")
        if not user:
            raise ProviderError(f"{RDS_IAM}: the store URL must name the database user (postgresql://USER@HOST/DB)")
        self._host, self._port, self._user = host, port, user
        export_sdk_settings(settings, ("AWS_",))

    def fetch(self) -> SecretBuffer:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self._boto3.client("rds", region_name=self._region)
            token = client.generate_db_auth_token(
                DBHostname=self._host, Port=self._port, DBUsername=self._user, Region=self._region
            )
        except (BotoCoreError, ClientError) as exc:
            raise ProviderError(f"{RDS_IAM}: cannot sign a database token ({type(exc).__name__})") from None
        return SecretBuffer.from_str(token)


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


def token_source(name: str, settings: Settings, host: str, port: int, user: str) -> RdsIamToken | AzureEntraToken:
    if name == RDS_IAM:
        return RdsIamToken(settings, host, port, user)
    return AzureEntraToken(settings)
