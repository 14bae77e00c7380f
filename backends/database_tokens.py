"""Short-lived database tokens in place of a database password, for a store on a managed PostgreSQL:

- ``rds-iam``: Amazon RDS / Aurora IAM database authentication (backends.aws.RdsIamToken). A 15-minute token signed
  (SigV4, locally by boto3) with the pod's AWS identity (IRSA, EKS Pod Identity, instance profile, or AWS_*
  settings); the role needs ``rds-db:connect`` on ``arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER``.
- ``azure-entra``: Azure Database for PostgreSQL with Microsoft Entra authentication (backends.azure.AzureEntraToken).
  An access token for the database's scope from DefaultAzureCredential (AKS workload identity, managed identity, or a
  service principal).

Chosen with TATUM_KMS_STORE_BACKEND (kms.store_location); a token is made for every new connection, so it is always
fresh. Each SDK stays in its provider's module; this one only picks.
"""

from __future__ import annotations

from typing import Protocol

from backends.aws import RDS_IAM
from backends.azure import AZURE_ENTRA, AZURE_POSTGRES_SCOPE
from backends.base import Settings
from kms.hygiene import SecretBuffer

TOKEN_SOURCES = (RDS_IAM, AZURE_ENTRA)
__all__ = ["AZURE_ENTRA", "AZURE_POSTGRES_SCOPE", "RDS_IAM", "TOKEN_SOURCES", "TokenSource", "token_source"]


class TokenSource(Protocol):
    name: str

    def fetch(self) -> SecretBuffer: ...


def token_source(name: str, settings: Settings, host: str, port: int, user: str) -> TokenSource:
    if name == RDS_IAM:
        from backends.aws import RdsIamToken

        return RdsIamToken(settings, host, port, user)
    from backends.azure import AzureEntraToken

    return AzureEntraToken(settings)
