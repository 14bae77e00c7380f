"""Short-lived database tokens for a managed PostgreSQL (backends.database_tokens), made by the real SDKs: an RDS IAM
token signed by boto3 (offline, as in production: SigV4 presigning needs no network), and a Microsoft Entra token
from azure-identity against the local Entra ID fake (workload identity)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from backends.database_tokens import AZURE_POSTGRES_SCOPE
from kms.errors import ProviderError
from kms.store_location import database_credentials
from tests.backends.test_backends_azure import Azure, azure, workload_identity  # noqa: F401 - fixtures

URL = "postgresql://kms_app@mydb.cluster-abc.eu-west-1.rds.amazonaws.com:5432/kms?sslmode=verify-full"


@pytest.fixture
def aws_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws of the machine's
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_rds_iam_token_is_a_sigv4_connect_token_for_the_url_user_and_host(aws_identity: None) -> None:
    fetch = database_credentials({"TATUM_KMS_STORE_BACKEND": "rds-iam", "TATUM_KMS_STORE_AWS_REGION": "eu-west-1"}, URL)
    assert fetch is not None
    with fetch() as token:  # type: ignore[union-attr]
        text = token.bytes().decode()
    parts = urlsplit("https://" + text)
    query = parse_qs(parts.query)
    assert parts.hostname == "mydb.cluster-abc.eu-west-1.rds.amazonaws.com" and parts.port == 5432
    assert query["Action"] == ["connect"] and query["DBUser"] == ["kms_app"]
    assert query["X-Amz-Credential"][0].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/rds-db/aws4_request")
    assert len(query["X-Amz-Signature"][0]) == 64
    second = fetch()
    assert second is not None  # a fresh token per connection


def test_rds_iam_needs_a_region_and_a_user(aws_identity: None) -> None:
    with pytest.raises(ProviderError, match="TATUM_KMS_STORE_AWS_REGION"):
        database_credentials({"TATUM_KMS_STORE_BACKEND": "rds-iam"}, URL)
    with pytest.raises(ProviderError, match="database user"):
        database_credentials(
            {"TATUM_KMS_STORE_BACKEND": "rds-iam", "TATUM_KMS_STORE_AWS_REGION": "eu-west-1"}, "postgresql://h/db"
        )


def test_azure_entra_token_for_the_postgresql_scope_with_workload_identity(workload_identity: Azure) -> None:  # noqa: F811
    fetch = database_credentials(
        {"TATUM_KMS_STORE_BACKEND": "azure-entra"}, "postgresql://kms@srv.postgres.database.azure.com/kms"
    )
    assert fetch is not None
    with fetch() as token:  # type: ignore[union-attr]
        issued = token.bytes().decode()
    assert workload_identity.entra.state.issued[issued] == AZURE_POSTGRES_SCOPE  # type: ignore[attr-defined]
