"""vgs provider against a local fake of the VGS vault API (plain HTTP and HTTPS with a throwaway CA)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from backends import get_provider
from kms.errors import ProviderError, TransientProviderError
from tests.servers.base import Response
from tests.servers.vgs import FakeVgs

STORE_PASSWORD = "vgs-held store password"
FAST_RETRY = {"TATUM_KMS_RETRY_WAIT": "0.001", "TATUM_KMS_RETRY_MAX_WAIT": "0.01"}


@pytest.fixture
def vgs() -> Iterator[FakeVgs]:
    with FakeVgs("US7sy", "vgs-api-pass", {"tok_live_pwd": STORE_PASSWORD}) as server:
        yield server


def settings_for(server: FakeVgs, **overrides: str) -> dict[str, str]:
    return {
        "TATUM_KMS_VGS_USERNAME": "US7sy",
        "TATUM_KMS_VGS_PASSWORD": "vgs-api-pass",
        "TATUM_KMS_VGS_ALIAS": "tok_live_pwd",
        "TATUM_KMS_VGS_URL": server.url,
        **FAST_RETRY,
        **overrides,
    }


def test_reveals_the_alias_with_basic_auth(vgs: FakeVgs) -> None:
    with get_provider("vgs", settings_for(vgs)).fetch() as secret:
        assert secret.bytes() == STORE_PASSWORD.encode()
    [request] = vgs.requests
    assert (request.method, request.path) == ("GET", "/aliases/tok_live_pwd")
    assert request.headers["Authorization"].startswith("Basic ")


def test_over_https_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with FakeVgs("US7sy", "vgs-api-pass", {"tok_live_pwd": STORE_PASSWORD}, ssl_context=server_context) as server:
        assert server.url.startswith("https://")
        provider = get_provider("vgs", settings_for(server, TATUM_KMS_VGS_CACERT=str(ca_file)))
        assert provider.fetch().bytes() == STORE_PASSWORD.encode()
        # Without the CA the certificate is not trusted: a permanent TLS failure, not retried, never a downgrade.
        before = server.count()
        with pytest.raises(ProviderError, match="TLS verification") as caught:
            get_provider("vgs", settings_for(server)).fetch()
        assert not isinstance(caught.value, TransientProviderError)
        assert server.count() == before


def test_missing_alias_is_one_request_and_names_the_setting(vgs: FakeVgs) -> None:
    with pytest.raises(ProviderError, match="TATUM_KMS_VGS_ALIAS does not exist") as caught:
        get_provider("vgs", settings_for(vgs, TATUM_KMS_VGS_ALIAS="tok_unknown")).fetch()
    assert not isinstance(caught.value, TransientProviderError)
    assert vgs.count() == 1


def test_bad_credentials_are_refused_without_retry(vgs: FakeVgs) -> None:
    with pytest.raises(ProviderError, match=r"credentials refused \(HTTP 401\)") as caught:
        get_provider("vgs", settings_for(vgs, TATUM_KMS_VGS_PASSWORD="wrong")).fetch()
    assert "wrong" not in str(caught.value)
    assert vgs.count() == 1


def test_transient_failures_are_retried_then_succeed(vgs: FakeVgs) -> None:
    vgs.fail_next(1, Response.json(503, {"errors": []}))
    vgs.fail_next(1, None)  # then a dropped connection
    vgs.fail_next(1, Response.json(429, {"errors": []}))
    assert get_provider("vgs", settings_for(vgs)).fetch().bytes() == STORE_PASSWORD.encode()
    assert vgs.count() == 4


def test_retries_are_bounded(vgs: FakeVgs) -> None:
    vgs.fail_next(100, Response.json(502, {"errors": []}))
    with pytest.raises(TransientProviderError, match=r"HTTP 502 \(gave up after 3 attempts\)"):
        get_provider("vgs", settings_for(vgs, TATUM_KMS_RETRY_ATTEMPTS="3")).fetch()
    assert vgs.count() == 3


def test_a_client_error_is_permanent(vgs: FakeVgs) -> None:
    vgs.fail_next(1, Response.json(400, {"errors": []}))
    with pytest.raises(ProviderError, match="HTTP 400"):
        get_provider("vgs", settings_for(vgs)).fetch()
    assert vgs.count() == 1


def test_empty_value_and_malformed_answers_are_errors(vgs: FakeVgs) -> None:
    vgs.aliases["tok_empty"] = ""
    with pytest.raises(ProviderError, match="holds no password"):
        get_provider("vgs", settings_for(vgs, TATUM_KMS_VGS_ALIAS="tok_empty")).fetch()
    vgs.fail_next(1, Response.json(200, {"data": []}))
    with pytest.raises(ProviderError, match=r"no data\[0\]\.value"):
        get_provider("vgs", settings_for(vgs)).fetch()


def test_missing_settings_are_named_together() -> None:
    with pytest.raises(ProviderError, match="TATUM_KMS_VGS_PASSWORD, TATUM_KMS_VGS_ALIAS"):
        get_provider("vgs", {"TATUM_KMS_VGS_USERNAME": "u"})


def test_plain_http_is_refused_except_to_loopback() -> None:
    settings = {"TATUM_KMS_VGS_USERNAME": "u", "TATUM_KMS_VGS_PASSWORD": "p", "TATUM_KMS_VGS_ALIAS": "a"}
    with pytest.raises(ProviderError, match="plain http"):
        get_provider("vgs", {**settings, "TATUM_KMS_VGS_URL": "http://vault.example.com"})
    # The default is upstream's live vault API, over https.
    assert get_provider("vgs", settings)._base == "https://api.live.verygoodvault.com"  # type: ignore[attr-defined]
