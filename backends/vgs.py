"""vgs: the password stored as a VGS vault alias, revealed with ``GET {base}/aliases/{alias}`` (basic auth).

As upstream: the value is ``data[0].value`` of the answer, the base URL ``https://api.live.verygoodvault.com``
(TATUM_KMS_VGS_URL selects another, e.g. the sandbox ``https://api.sandbox.verygoodvault.com``).
"""

from __future__ import annotations

import json
import ssl
from urllib.parse import quote

import httpx

from backends.base import Settings, checked_base_url, require, setting
from backends.retry import RetryPolicy, default_timeout
from kms.errors import ProviderError, TransientProviderError
from kms.hygiene import SecretBuffer

SETTINGS: tuple[str, ...] = (
    "TATUM_KMS_VGS_URL",
    "TATUM_KMS_VGS_CACERT",
    "TATUM_KMS_VGS_ALIAS",
    "TATUM_KMS_VGS_USERNAME",
    "TATUM_KMS_VGS_PASSWORD",
)
"""The settings this backend reads (checkconfig shows them; the README documents them)."""
DEFAULT_VGS_URL = "https://api.live.verygoodvault.com"
NAME = "vgs"


class VgsProvider:
    name = NAME

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self._username, self._password, self._alias = require(
            settings, NAME, "TATUM_KMS_VGS_USERNAME", "TATUM_KMS_VGS_PASSWORD", "TATUM_KMS_VGS_ALIAS"
        )
        self._base = checked_base_url(
            setting(settings, "TATUM_KMS_VGS_URL", DEFAULT_VGS_URL) or DEFAULT_VGS_URL, NAME, "TATUM_KMS_VGS_URL"
        )
        cafile = setting(settings, "TATUM_KMS_VGS_CACERT")
        self._verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else True
        self._timeout = default_timeout(settings)
        self._retry = retry or RetryPolicy.from_settings(settings)

    def fetch(self) -> SecretBuffer:
        with httpx.Client(
            base_url=self._base,
            auth=httpx.BasicAuth(self._username, self._password),
            timeout=self._timeout,
            verify=self._verify,
            follow_redirects=False,
            trust_env=False,
        ) as client:
            return self._retry.run(NAME, lambda: self._fetch_once(client))

    def _fetch_once(self, client: httpx.Client) -> SecretBuffer:
        try:
            response = client.get(f"/aliases/{quote(self._alias, safe='')}", headers={"Accept": "application/json"})
        except httpx.TimeoutException:
            raise TransientProviderError(f"{NAME}: timed out reaching {self._base}") from None
        except httpx.ConnectError as exc:
            if _is_tls_failure(exc):
                raise ProviderError(
                    f"{NAME}: TLS verification of {self._base} failed (TATUM_KMS_VGS_CACERT?)"
                ) from None
            raise TransientProviderError(f"{NAME}: cannot reach {self._base} ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientProviderError(f"{NAME}: cannot reach {self._base} ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientProviderError(f"{NAME}: vault API answered HTTP {status}")
        if status in (401, 403):
            raise ProviderError(f"{NAME}: credentials refused (HTTP {status}); check TATUM_KMS_VGS_USERNAME/PASSWORD")
        if status == 404:
            raise ProviderError(f"{NAME}: alias named by TATUM_KMS_VGS_ALIAS does not exist")
        if status != 200:
            raise ProviderError(f"{NAME}: vault API answered HTTP {status}")
        try:
            value = json.loads(response.content)["data"][0]["value"]
        except (ValueError, LookupError, TypeError):
            raise ProviderError(f"{NAME}: answer has no data[0].value") from None
        if not isinstance(value, str) or not value:
            raise ProviderError(f"{NAME}: alias holds no password (data[0].value is empty)")
        return SecretBuffer.from_str(value)


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
