"""vault provider (hvac) against a local fake of Vault's HTTP API: KV v2/v1, token, AppRole and Kubernetes auth.

No Vault binary can be installed here, so the server is a fake that answers as Vault's API documentation describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import get_provider
from kms.errors import ProviderError, TransientProviderError, UsageError
from tests.servers.base import Response
from tests.servers.vault import FakeVault, FakeVaultState, Role

STORE_PASSWORD = "vault-held store password"
READABLE = {"secret/data/kms/password"}
FAST_RETRY = {"TATUM_KMS_RETRY_WAIT": "0.001", "TATUM_KMS_RETRY_MAX_WAIT": "0.01"}
SA_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a21zOmttcyJ9.c2lnbmF0dXJl"


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    state = FakeVaultState(
        kv2={"secret": {"kms/password": {"password": STORE_PASSWORD, "other": "x"}, "other/app": {"password": "no"}}},
        kv1={"kv": {"kms/password": {"password": STORE_PASSWORD}}},
        tokens={"hvs.static-token": set(READABLE) | {"kv/kms/password"}, "hvs.narrow": set()},
        approles={"role-id-1": Role(READABLE, secret_id="secret-id-1")},
        k8s_roles={"kms": Role(READABLE, jwt=SA_JWT)},
    )
    with FakeVault(state) as server:
        yield server


def settings_for(server: FakeVault, **values: str) -> dict[str, str]:
    return {"TATUM_KMS_VAULT_ADDR": server.url, "TATUM_KMS_VAULT_PATH": "kms/password", **FAST_RETRY, **values}


def reads(server: FakeVault) -> int:
    return server.count(lambda request: request.method == "GET")


def test_token_auth_reads_kv2(vault: FakeVault) -> None:
    provider = get_provider("vault", settings_for(vault, TATUM_KMS_VAULT_TOKEN="hvs.static-token"))
    assert provider.fetch().bytes() == STORE_PASSWORD.encode()
    [request] = vault.requests
    assert request.path == "/v1/secret/data/kms/password"
    assert request.headers["X-Vault-Token"] == "hvs.static-token"
    assert vault.state.revoked == []  # a token the operator supplied is not ours to revoke


def test_kv1_mount_and_namespace(vault: FakeVault) -> None:
    settings = settings_for(
        vault,
        VAULT_TOKEN="hvs.static-token",
        TATUM_KMS_VAULT_MOUNT="kv",
        TATUM_KMS_VAULT_KV_VERSION="1",
        TATUM_KMS_VAULT_NAMESPACE="team-a",
    )
    assert get_provider("vault", settings).fetch().bytes() == STORE_PASSWORD.encode()
    [request] = vault.requests
    assert request.path == "/v1/kv/kms/password"
    assert request.headers["X-Vault-Namespace"] == "team-a"


def test_approle_login_then_read_then_revoke(vault: FakeVault) -> None:
    settings = settings_for(vault, TATUM_KMS_VAULT_ROLE_ID="role-id-1", TATUM_KMS_VAULT_SECRET_ID="secret-id-1")
    assert get_provider("vault", settings).fetch().bytes() == STORE_PASSWORD.encode()
    login, read, revoke = vault.requests
    assert (login.method, login.path, login.json()) == (
        "POST",
        "/v1/auth/approle/login",
        {"role_id": "role-id-1", "secret_id": "secret-id-1"},
    )
    assert read.headers["X-Vault-Token"].startswith("hvs.")
    assert revoke.path == "/v1/auth/token/revoke-self"
    assert vault.state.revoked == [read.headers["X-Vault-Token"]]


def test_kubernetes_login_with_the_service_account_jwt(vault: FakeVault, tmp_path: Path) -> None:
    jwt_file = tmp_path / "token"
    jwt_file.write_text(SA_JWT + "\n")
    settings = settings_for(vault, TATUM_KMS_VAULT_K8S_ROLE="kms", TATUM_KMS_VAULT_K8S_JWT_PATH=str(jwt_file))
    assert get_provider("vault", settings).fetch().bytes() == STORE_PASSWORD.encode()
    login = vault.requests[0]
    assert login.path == "/v1/auth/kubernetes/login"
    assert login.json() == {"role": "kms", "jwt": SA_JWT}
    assert len(vault.state.revoked) == 1


def test_missing_secret_is_permanent(vault: FakeVault) -> None:
    settings = settings_for(vault, TATUM_KMS_VAULT_TOKEN="hvs.static-token", TATUM_KMS_VAULT_PATH="kms/absent")
    vault.state.tokens["hvs.static-token"].add("secret/data/kms/absent")
    with pytest.raises(ProviderError, match=r"no secret at secret/kms/absent \(KV v2\)") as caught:
        get_provider("vault", settings).fetch()
    assert not isinstance(caught.value, TransientProviderError)
    assert reads(vault) == 1


def test_missing_key_is_named(vault: FakeVault) -> None:
    settings = settings_for(vault, TATUM_KMS_VAULT_TOKEN="hvs.static-token", TATUM_KMS_VAULT_KEY="pwd")
    with pytest.raises(ProviderError, match=r"has no key 'pwd' \(TATUM_KMS_VAULT_KEY\)") as caught:
        get_provider("vault", settings).fetch()
    assert STORE_PASSWORD not in str(caught.value)


def test_policy_limits_reading_to_one_path(vault: FakeVault) -> None:
    settings = settings_for(vault, TATUM_KMS_VAULT_TOKEN="hvs.narrow")
    with pytest.raises(ProviderError, match=r"reading secret/kms/password refused \(HTTP 403\)"):
        get_provider("vault", settings).fetch()
    assert reads(vault) == 1
    other = settings_for(
        vault,
        TATUM_KMS_VAULT_ROLE_ID="role-id-1",
        TATUM_KMS_VAULT_SECRET_ID="secret-id-1",
        TATUM_KMS_VAULT_PATH="other/app",
    )
    with pytest.raises(ProviderError, match="refused"):
        get_provider("vault", other).fetch()


def test_bad_credentials_are_refused_once(vault: FakeVault, tmp_path: Path) -> None:
    settings = settings_for(vault, TATUM_KMS_VAULT_ROLE_ID="role-id-1", TATUM_KMS_VAULT_SECRET_ID="wrong-secret")
    with pytest.raises(ProviderError, match=r"AppRole login refused \(HTTP 400\)") as caught:
        get_provider("vault", settings).fetch()
    assert "wrong-secret" not in str(caught.value)
    jwt_file = tmp_path / "token"
    jwt_file.write_text("not-the-pod-token")
    k8s = settings_for(vault, TATUM_KMS_VAULT_K8S_ROLE="kms", TATUM_KMS_VAULT_K8S_JWT_PATH=str(jwt_file))
    with pytest.raises(ProviderError, match=r"Kubernetes login refused \(HTTP 403\)"):
        get_provider("vault", k8s).fetch()
    assert vault.count() == 2  # one login each, no retries, no read


def test_transient_failures_are_retried(vault: FakeVault) -> None:
    vault.fail_next(1, Response.json(503, {"errors": ["Vault is sealed"]}), lambda r: r.path.endswith("/login"))
    vault.fail_next(1, Response.json(500, {"errors": ["internal error"]}), lambda r: r.method == "GET")
    vault.fail_next(1, None, lambda r: r.method == "GET")
    vault.fail_next(1, Response.json(429, {"errors": ["rate limited"]}), lambda r: r.method == "GET")
    settings = settings_for(vault, TATUM_KMS_VAULT_ROLE_ID="role-id-1", TATUM_KMS_VAULT_SECRET_ID="secret-id-1")
    assert get_provider("vault", settings).fetch().bytes() == STORE_PASSWORD.encode()
    assert vault.count(lambda r: r.path.endswith("/login")) == 2
    assert reads(vault) == 4


def test_retries_are_bounded(vault: FakeVault) -> None:
    vault.fail_next(50, Response.json(502, {"errors": []}))
    settings = settings_for(vault, TATUM_KMS_VAULT_TOKEN="hvs.static-token", TATUM_KMS_RETRY_ATTEMPTS="4")
    with pytest.raises(TransientProviderError, match="gave up after 4 attempts"):
        get_provider("vault", settings).fetch()
    assert vault.count() == 4


def test_unreachable_vault_is_transient(tmp_path: Path) -> None:
    settings = {
        "TATUM_KMS_VAULT_ADDR": "http://127.0.0.1:9",  # discard port: nothing listens
        "TATUM_KMS_VAULT_PATH": "kms/password",
        "TATUM_KMS_VAULT_TOKEN": "t",
        "TATUM_KMS_RETRY_ATTEMPTS": "2",
        **FAST_RETRY,
    }
    with pytest.raises(TransientProviderError, match=r"cannot reach http://127.0.0.1:9 .*gave up after 2 attempts"):
        get_provider("vault", settings).fetch()


def test_configuration_errors_name_the_setting(tmp_path: Path) -> None:
    base = {"TATUM_KMS_VAULT_ADDR": "https://vault.example.com:8200", "TATUM_KMS_VAULT_PATH": "kms/password"}
    with pytest.raises(ProviderError, match="no Vault credentials"):
        get_provider("vault", base)
    with pytest.raises(ProviderError, match="TATUM_KMS_VAULT_SECRET_ID"):
        get_provider("vault", {**base, "TATUM_KMS_VAULT_ROLE_ID": "r"})
    with pytest.raises(UsageError, match="TATUM_KMS_VAULT_KV_VERSION"):
        get_provider("vault", {**base, "TATUM_KMS_VAULT_TOKEN": "t", "TATUM_KMS_VAULT_KV_VERSION": "3"})
    with pytest.raises(ProviderError, match="plain http"):
        get_provider("vault", {**base, "TATUM_KMS_VAULT_ADDR": "http://vault.example.com:8200", "VAULT_TOKEN": "t"})
    missing_jwt = {**base, "TATUM_KMS_VAULT_K8S_ROLE": "kms", "TATUM_KMS_VAULT_K8S_JWT_PATH": str(tmp_path / "none")}
    with pytest.raises(ProviderError, match="cannot read the service-account token"):
        get_provider("vault", missing_jwt).fetch()
