"""vault: the password from a HashiCorp Vault KV secret (v2 or v1), through hvac.

Authentication, chosen by TATUM_KMS_VAULT_AUTH or inferred from what is set: ``kubernetes`` (the pod's service-account
JWT, TATUM_KMS_VAULT_K8S_ROLE), ``approle`` (TATUM_KMS_VAULT_ROLE_ID + _SECRET_ID) or ``token``
(TATUM_KMS_VAULT_TOKEN, or VAULT_TOKEN). A token obtained by logging in is revoked once the password is read.
"""

from __future__ import annotations

from typing import Any

from backends.base import Settings, checked_base_url, import_extra, require, setting
from backends.retry import RetryPolicy, default_timeout
from kms.errors import ProviderError, TransientProviderError, UsageError
from kms.hygiene import SecretBuffer

SETTINGS: tuple[str, ...] = (
    "TATUM_KMS_VAULT_ADDR",
    "VAULT_ADDR",
    "TATUM_KMS_VAULT_NAMESPACE",
    "VAULT_NAMESPACE",
    "TATUM_KMS_VAULT_CACERT",
    "VAULT_CACERT",
    "TATUM_KMS_VAULT_AUTH",
    "TATUM_KMS_VAULT_AUTH_MOUNT",
    "TATUM_KMS_VAULT_K8S_ROLE",
    "TATUM_KMS_VAULT_K8S_JWT_PATH",
    "TATUM_KMS_VAULT_ROLE_ID",
    "TATUM_KMS_VAULT_SECRET_ID",
    "TATUM_KMS_VAULT_TOKEN",
    "VAULT_TOKEN",
    "TATUM_KMS_VAULT_MOUNT",
    "TATUM_KMS_VAULT_PATH",
    "TATUM_KMS_VAULT_KEY",
    "TATUM_KMS_VAULT_KV_VERSION",
)
"""The settings this backend reads (checkconfig shows them; the README documents them)."""
NAME = "vault"
DEFAULT_K8S_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
AUTH_METHODS = ("token", "approle", "kubernetes")


def _auth_method(settings: Settings) -> str:
    explicit = setting(settings, "TATUM_KMS_VAULT_AUTH")
    if explicit:
        if explicit.lower() not in AUTH_METHODS:
            raise UsageError(f"{NAME}: TATUM_KMS_VAULT_AUTH must be one of {', '.join(AUTH_METHODS)}")
        return explicit.lower()
    if setting(settings, "TATUM_KMS_VAULT_K8S_ROLE"):
        return "kubernetes"
    if setting(settings, "TATUM_KMS_VAULT_ROLE_ID"):
        return "approle"
    if setting(settings, "TATUM_KMS_VAULT_TOKEN") or setting(settings, "VAULT_TOKEN"):
        return "token"
    raise ProviderError(
        f"{NAME}: no Vault credentials; set TATUM_KMS_VAULT_K8S_ROLE (Kubernetes auth), "
        "TATUM_KMS_VAULT_ROLE_ID and TATUM_KMS_VAULT_SECRET_ID (AppRole), or TATUM_KMS_VAULT_TOKEN"
    )


class VaultProvider:
    name = NAME

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self._hvac = import_extra("hvac", NAME, "vault")
        self._settings = settings
        addr = setting(settings, "TATUM_KMS_VAULT_ADDR") or setting(settings, "VAULT_ADDR")
        if not addr:
            raise ProviderError(f"{NAME}: missing setting TATUM_KMS_VAULT_ADDR")
        self._addr = checked_base_url(addr, NAME, "TATUM_KMS_VAULT_ADDR")
        (self._path,) = require(settings, NAME, "TATUM_KMS_VAULT_PATH")
        self._path = self._path.strip("/")
        self._mount = (setting(settings, "TATUM_KMS_VAULT_MOUNT") or "secret").strip("/")
        self._key = setting(settings, "TATUM_KMS_VAULT_KEY") or "password"
        self._kv_version = setting(settings, "TATUM_KMS_VAULT_KV_VERSION") or "2"
        if self._kv_version not in ("1", "2"):
            raise UsageError(f"{NAME}: TATUM_KMS_VAULT_KV_VERSION must be 1 or 2")
        self._namespace = setting(settings, "TATUM_KMS_VAULT_NAMESPACE") or setting(settings, "VAULT_NAMESPACE")
        self._cacert = setting(settings, "TATUM_KMS_VAULT_CACERT") or setting(settings, "VAULT_CACERT")
        self._auth = _auth_method(settings)
        if self._auth == "approle":
            require(settings, NAME, "TATUM_KMS_VAULT_ROLE_ID", "TATUM_KMS_VAULT_SECRET_ID")
        self._timeout = default_timeout(settings)
        self._retry = retry or RetryPolicy.from_settings(settings)

    def fetch(self) -> SecretBuffer:
        client = self._hvac.Client(
            url=self._addr,
            token="",  # never fall back to ~/.vault-token: the token is only what the settings say
            verify=self._cacert or True,
            timeout=self._timeout,
            namespace=self._namespace,
            allow_redirects=False,  # a redirect would carry X-Vault-Token to wherever it points
        )
        try:
            logged_in = self._authenticate(client)
            try:
                document = self._retry.run(NAME, lambda: self._call(client, "read", lambda: self._read(client)))
            finally:
                if logged_in:
                    self._revoke(client)
            return self._password_from(document)
        finally:
            client.adapter.close()

    def _authenticate(self, client: Any) -> bool:
        """Put a token on the client; True when it came from a login (and so is ours to revoke)."""
        settings = self._settings
        if self._auth == "token":
            token = setting(settings, "TATUM_KMS_VAULT_TOKEN") or setting(settings, "VAULT_TOKEN")
            if not token:
                raise ProviderError(f"{NAME}: missing setting TATUM_KMS_VAULT_TOKEN")
            client.token = token
            return False
        if self._auth == "approle":
            role_id, secret_id = require(settings, NAME, "TATUM_KMS_VAULT_ROLE_ID", "TATUM_KMS_VAULT_SECRET_ID")
            mount = setting(settings, "TATUM_KMS_VAULT_AUTH_MOUNT") or "approle"
            self._retry.run(
                NAME,
                lambda: self._call(
                    client, "AppRole login", lambda: client.auth.approle.login(role_id, secret_id, mount_point=mount)
                ),
            )
            return True
        (role,) = require(settings, NAME, "TATUM_KMS_VAULT_K8S_ROLE")
        jwt = self._service_account_jwt()
        mount = setting(settings, "TATUM_KMS_VAULT_AUTH_MOUNT") or "kubernetes"
        self._retry.run(
            NAME,
            lambda: self._call(
                client, "Kubernetes login", lambda: client.auth.kubernetes.login(role, jwt, mount_point=mount)
            ),
        )
        return True

    def _service_account_jwt(self) -> str:
        path = setting(self._settings, "TATUM_KMS_VAULT_K8S_JWT_PATH") or DEFAULT_K8S_JWT_PATH
        try:
            with open(path, encoding="ascii") as handle:
                jwt = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a JWT"
            raise ProviderError(f"{NAME}: cannot read the service-account token {path}: {reason}") from None
        if not jwt:
            raise ProviderError(f"{NAME}: the service-account token {path} is empty")
        return jwt

    def _read(self, client: Any) -> Any:
        if self._kv_version == "2":
            return client.secrets.kv.v2.read_secret_version(
                path=self._path, mount_point=self._mount, raise_on_deleted_version=True
            )
        return client.secrets.kv.v1.read_secret(path=self._path, mount_point=self._mount)

    def _call(self, client: Any, what: str, operation: Any) -> Any:
        import requests
        from hvac import exceptions as hve

        where = f"{self._mount}/{self._path}" if what == "read" else what
        try:
            return operation()
        except hve.InvalidPath:
            if what == "read":
                raise ProviderError(f"{NAME}: no secret at {where} (KV v{self._kv_version})") from None
            raise ProviderError(f"{NAME}: {what} failed: auth method not mounted there (HTTP 404)") from None
        except (hve.Forbidden, hve.Unauthorized, hve.InvalidRequest) as exc:
            status = {hve.Forbidden: 403, hve.Unauthorized: 401, hve.InvalidRequest: 400}[type(exc)]
            if what == "read":
                raise ProviderError(
                    f"{NAME}: reading {where} refused (HTTP {status}); check the token's policy"
                ) from None
            raise ProviderError(f"{NAME}: {what} refused (HTTP {status})") from None
        except (hve.RateLimitExceeded, hve.InternalServerError, hve.BadGateway, hve.VaultDown) as exc:
            raise TransientProviderError(f"{NAME}: {what} failed: Vault answered {type(exc).__name__}") from None
        except hve.VaultError as exc:
            raise ProviderError(f"{NAME}: {what} failed: Vault answered {type(exc).__name__}") from None
        except requests.exceptions.SSLError:
            raise ProviderError(f"{NAME}: TLS verification of {self._addr} failed (TATUM_KMS_VAULT_CACERT?)") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientProviderError(f"{NAME}: cannot reach {self._addr} ({type(exc).__name__})") from None
        except ValueError:
            raise ProviderError(f"{NAME}: {what} failed: Vault's answer is not JSON") from None

    def _revoke(self, client: Any) -> None:
        try:
            client.auth.token.revoke_self()
        except Exception:  # noqa: S110 - best effort: the token's TTL still bounds it
            pass

    def _password_from(self, document: Any) -> SecretBuffer:
        where = f"{self._mount}/{self._path}"
        try:
            data = document["data"]["data"] if self._kv_version == "2" else document["data"]
        except (KeyError, TypeError):
            raise ProviderError(f"{NAME}: answer for {where} has no data") from None
        if not isinstance(data, dict) or self._key not in data:
            raise ProviderError(f"{NAME}: secret {where} has no key '{self._key}' (TATUM_KMS_VAULT_KEY)")
        value = data[self._key]
        if not isinstance(value, str) or not value:
            raise ProviderError(f"{NAME}: key '{self._key}' of {where} is empty or not a string")
        return SecretBuffer.from_str(value)
