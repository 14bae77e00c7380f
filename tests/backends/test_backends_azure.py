"""azure provider: the real azure-keyvault-secrets / azure-identity stack against local HTTPS fakes.

Key Vault and the Entra ID token endpoint are local servers with certificates from a throwaway CA (trustme), trusted
through REQUESTS_CA_BUNDLE. The SDK checks that the challenge's resource matches the vault's domain, which a vault at
https://127.0.0.1:PORT cannot satisfy, so these tests build the client with ``verify_challenge_resource=False`` (a
test-only client option, not a setting). AZURE_TOKEN_CREDENTIALS pins the credential under test, so the chain never
falls through to managed identity (which would probe the instance metadata address).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from backends.azure import AzureKeyVaultProvider, vault_url_from
from backends.retry import RetryPolicy
from kms.errors import ProviderError, TransientProviderError
from tests.servers.azure import EntraState, FakeEntraId, FakeKeyVault, VaultState
from tests.servers.base import Response

STORE_PASSWORD = "azure-held store password"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "b7f1a0c2-1111-4a5e-9e1e-5f4a6a8c0d11"
SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSJ9.sig"
FAST = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.01, jitter=0.001)
TEST_ONLY = {"verify_challenge_resource": False}


@dataclass
class Azure:
    vault: FakeKeyVault
    entra: FakeEntraId

    def settings(self, **values: str) -> dict[str, str]:
        return {"TATUM_KMS_AZURE_VAULTURL": self.vault.url, "TATUM_KMS_AZURE_SECRETNAME": "kms-password", **values}

    def vault_gets(self) -> int:
        return self.vault.count(lambda request: "Authorization" in request.headers)


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    import os

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    for key in list(os.environ):
        if key.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))

    entra_state = EntraState(TENANT, CLIENT, client_secret="sp-secret", federated_token=SA_TOKEN)
    vault_state = VaultState(
        secrets={"kms-password": {"0f1e2d3c": "old password", "4387e9f3d6e14c45": STORE_PASSWORD}, "other": {"1": "x"}},
        readable={"kms-password", "absent"},
    )
    with FakeEntraId(entra_state, context) as entra, FakeKeyVault(vault_state, entra_state, context) as vault:
        vault_state.authority = f"{entra.url}/{TENANT}"
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", entra.url)
        monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
        monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
        yield Azure(vault, entra)


@pytest.fixture
def workload_identity(azure: Azure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Azure:
    token = tmp_path / "azure-identity-token"
    token.write_text(SA_TOKEN)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential")
    return azure


def fetch(settings: dict[str, str], **credential_options: object) -> bytes:
    provider = AzureKeyVaultProvider(
        settings, retry=FAST, client_options=TEST_ONLY, credential_options=credential_options
    )
    return provider.fetch().bytes()


def test_workload_identity_challenge_token_and_secret(workload_identity: Azure) -> None:
    azure = workload_identity
    assert fetch(azure.settings()) == STORE_PASSWORD.encode()
    [token_request] = azure.entra.requests
    form = token_request.body.decode()
    assert "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer" in form
    assert "scope=https%3A%2F%2Fvault.azure.net%2F.default" in form
    challenge, authorized = azure.vault.requests
    assert "Authorization" not in challenge.headers
    assert authorized.path == "/secrets/kms-password/"
    assert authorized.headers["Authorization"].startswith("Bearer ")


def test_client_secret_and_a_pinned_version(azure: Azure, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "sp-secret")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    # msal (behind the client-secret credential) would ask login.microsoftonline.com about an unknown authority host.
    settings = azure.settings(TATUM_KMS_AZURE_SECRETVERSION="0f1e2d3c")
    assert fetch(settings, disable_instance_discovery=True) == b"old password"
    assert azure.vault.requests[-1].path == "/secrets/kms-password/0f1e2d3c"


def test_missing_secret_is_permanent(workload_identity: Azure) -> None:
    azure = workload_identity
    with pytest.raises(ProviderError, match="secret 'absent' not found") as caught:
        fetch(azure.settings(TATUM_KMS_AZURE_SECRETNAME="absent"))
    assert not isinstance(caught.value, TransientProviderError)
    assert azure.vault_gets() == 1


def test_no_get_permission_is_refused_once(workload_identity: Azure) -> None:
    azure = workload_identity
    with pytest.raises(ProviderError, match=r"access to secret 'other' refused \(HTTP 403\)"):
        fetch(azure.settings(TATUM_KMS_AZURE_SECRETNAME="other"))
    assert azure.vault_gets() == 1


def test_bad_federated_credential_is_refused_once(workload_identity: Azure) -> None:
    azure = workload_identity
    azure.entra.state.federated_token = "a different service account"
    with pytest.raises(ProviderError, match="azure: no Azure credential could get a Key Vault token") as caught:
        fetch(azure.settings())
    assert not isinstance(caught.value, TransientProviderError)
    assert SA_TOKEN not in str(caught.value)
    assert azure.entra.count() == 1
    assert azure.vault_gets() == 0


def test_no_credential_available(azure: Azure, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential")  # but no token file
    with pytest.raises(ProviderError, match="azure: no Azure credential could get a Key Vault token"):
        fetch(azure.settings())
    assert azure.entra.count() == 0


def test_throttling_and_5xx_are_retried(workload_identity: Azure) -> None:
    azure = workload_identity
    authorized = lambda request: "Authorization" in request.headers  # noqa: E731
    throttled = Response.json(429, {"error": {"code": "Throttled"}}, {"Retry-After": "0"})
    azure.vault.fail_next(1, throttled, authorized)
    azure.vault.fail_next(1, Response.json(503, {"error": {"code": "ServiceUnavailable"}}), authorized)
    azure.vault.fail_next(1, None, authorized)
    assert fetch(azure.settings()) == STORE_PASSWORD.encode()
    assert azure.vault_gets() == 4


def test_retries_are_bounded(workload_identity: Azure) -> None:
    azure = workload_identity
    azure.vault.fail_next(
        50, Response.json(500, {"error": {"code": "InternalError"}}), lambda r: "Authorization" in r.headers
    )
    with pytest.raises(TransientProviderError, match=r"HTTP 500 \(gave up after 4 attempts\)"):
        fetch(azure.settings())
    assert azure.vault_gets() == 4


def test_vault_url_accepts_upstreams_host_form() -> None:
    assert vault_url_from("myvault.vault.azure.net") == "https://myvault.vault.azure.net"
    assert vault_url_from("https://myvault.vault.azure.net/") == "https://myvault.vault.azure.net"
    with pytest.raises(ProviderError, match="https"):
        vault_url_from("http://myvault.vault.azure.net")


def test_token_endpoint_outage_is_retried(workload_identity: Azure) -> None:
    azure = workload_identity
    azure.entra.fail_next(1, Response.json(503, {"error": "temporarily_unavailable"}))
    assert fetch(azure.settings()) == STORE_PASSWORD.encode()
    assert azure.entra.count() == 2


def test_token_endpoint_retries_are_bounded(workload_identity: Azure) -> None:
    azure = workload_identity
    azure.entra.fail_next(50, Response.json(500, {"error": "server_error"}))
    with pytest.raises(ProviderError, match="no Azure credential could get a Key Vault token"):
        fetch(azure.settings())
    assert azure.entra.count() == FAST.attempts
    assert azure.vault_gets() == 0
