"""aws provider: real boto3 against moto's server on 127.0.0.1, through a logging proxy that can inject faults.

The IRSA test runs with no static keys anywhere (environment cleared, empty config files, IMDS off): boto3 must read
the web-identity token file, call STS AssumeRoleWithWebIdentity, and sign GetSecretValue with the temporary keys.
moto evaluates IAM policies by action only (every secretsmanager call is checked against resource "*"), so the
one-ARN policy of the README cannot be enforced here; the test proves instead that the role's policy is consulted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from backends import get_provider
from kms.errors import ProviderError, TransientProviderError
from tests.servers.aws import AwsProxy, access_key_of, action_of
from tests.servers.base import Response

STORE_PASSWORD = "aws-held store password"
REGION = "eu-central-1"
FAST_RETRY = {"TATUM_KMS_RETRY_WAIT": "0.001", "TATUM_KMS_RETRY_MAX_WAIT": "0.01"}
OIDC = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Federated": OIDC}, "Action": "sts:AssumeRoleWithWebIdentity"}],
}


class Moto:
    def __init__(self, url: str) -> None:
        self.url = url
        self.roles: dict[str, str] = {}

    def enforce_iam(self, on: bool) -> None:
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0" if on else b"inf", timeout=10)


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    state = Moto(f"http://{host}:{port}")
    admin = {
        "endpoint_url": state.url,
        "region_name": REGION,
        "aws_access_key_id": "AKIAADMINFIXTURE0001",
        "aws_secret_access_key": "fixture",
    }
    secretsmanager = boto3.client("secretsmanager", **admin)
    secretsmanager.create_secret(Name="kms/password", SecretString=json.dumps({"pwd": STORE_PASSWORD, "x": "y"}))
    secretsmanager.create_secret(Name="kms/plain", SecretString=STORE_PASSWORD)
    secretsmanager.create_secret(Name="kms/binary", SecretBinary=STORE_PASSWORD.encode())
    iam = boto3.client("iam", **admin)
    for role, statements in (
        ("kms-reader", [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]),
        ("kms-nothing", [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}]),
    ):
        state.roles[role] = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_role_policy(RoleName=role, PolicyName="kms", PolicyDocument=json.dumps(policy))
    yield state
    state.enforce_iam(False)
    server.stop()


@pytest.fixture
def proxy(moto: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AwsProxy]:
    """A proxy to moto, and an environment where boto3 finds no credentials of its own."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with AwsProxy(moto.url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server
    moto.enforce_iam(False)


def static_keys(**values: str) -> dict[str, str]:
    return {
        "TATUM_KMS_AWS_REGION": REGION,
        "TATUM_KMS_AWS_SECRET_NAME": "kms/password",
        "TATUM_KMS_AWS_SECRET_KEY": "pwd",
        "TATUM_KMS_AWS_ACCESS_KEY_ID": "AKIAUPSTREAMSTYLE001",
        "TATUM_KMS_AWS_SECRET_ACCESS_KEY": "upstream-style-secret",
        **FAST_RETRY,
        **values,
    }


def get_secret_calls(proxy: AwsProxy) -> int:
    return proxy.count(lambda request: action_of(request) == "GetSecretValue")


def test_upstream_static_keys_and_json_key(proxy: AwsProxy) -> None:
    assert get_provider("aws", static_keys()).fetch().bytes() == STORE_PASSWORD.encode()
    [request] = proxy.requests
    assert action_of(request) == "GetSecretValue"
    assert access_key_of(request) == "AKIAUPSTREAMSTYLE001"
    assert f"/{REGION}/secretsmanager/" in request.headers["Authorization"]


def test_irsa_web_identity_without_static_keys(proxy: AwsProxy, moto: Moto, tmp_path: Path, monkeypatch) -> None:
    token = tmp_path / "eks.amazonaws.com" / "serviceaccount" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a21zIn0.sig")
    monkeypatch.setenv("AWS_ROLE_ARN", moto.roles["kms-reader"])
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "kms-test")

    # From the moment STS has answered, moto checks every call against the assumed role's policy.
    proxy.after_response = lambda action, status, body: (
        moto.enforce_iam(True) if action == "AssumeRoleWithWebIdentity" else None
    )
    settings = {
        "TATUM_KMS_AWS_REGION": REGION,
        "TATUM_KMS_AWS_SECRET_NAME": "kms/password",
        "TATUM_KMS_AWS_SECRET_KEY": "pwd",
    }
    assert get_provider("aws", settings).fetch().bytes() == STORE_PASSWORD.encode()

    assert proxy.actions() == ["AssumeRoleWithWebIdentity", "GetSecretValue"]
    sts_request, secret_request = proxy.requests
    assert "Authorization" not in sts_request.headers  # the web identity token is the credential
    assert "WebIdentityToken=eyJ" in sts_request.body.decode()
    issued = re.search(r"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>", proxy.responses[0][2].decode())
    assert issued is not None and issued.group(1).startswith("ASIA")
    assert access_key_of(secret_request) == issued.group(1)
    assert "X-Amz-Security-Token" in secret_request.headers
    assert proxy.responses[1][1] == 200


def test_irsa_role_without_permission_is_refused_once(proxy: AwsProxy, moto: Moto, tmp_path: Path, monkeypatch) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    monkeypatch.setenv("AWS_ROLE_ARN", moto.roles["kms-nothing"])
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    proxy.after_response = lambda action, status, body: (
        moto.enforce_iam(True) if action == "AssumeRoleWithWebIdentity" else None
    )
    settings = {"TATUM_KMS_AWS_REGION": REGION, "TATUM_KMS_AWS_SECRET_NAME": "kms/password", **FAST_RETRY}
    with pytest.raises(ProviderError, match=r"GetSecretValue refused \(") as caught:
        get_provider("aws", settings).fetch()
    assert not isinstance(caught.value, TransientProviderError)
    assert get_secret_calls(proxy) == 1
    # moto answers in its own error format; what matters is who it saw and what it denied.
    denial = proxy.responses[-1][2].decode()
    assert "AccessDenied" in denial and "assumed-role/kms-nothing/" in denial


def test_plain_string_and_binary_secrets(proxy: AwsProxy) -> None:
    plain = static_keys(TATUM_KMS_AWS_SECRET_NAME="kms/plain", TATUM_KMS_AWS_SECRET_KEY="")
    assert get_provider("aws", plain).fetch().bytes() == STORE_PASSWORD.encode()
    binary = static_keys(TATUM_KMS_AWS_SECRET_NAME="kms/binary", TATUM_KMS_AWS_SECRET_KEY="")
    assert get_provider("aws", binary).fetch().bytes() == STORE_PASSWORD.encode()


def test_json_layout_mismatches_are_explained(proxy: AwsProxy) -> None:
    with pytest.raises(ProviderError, match=r"no key named by TATUM_KMS_AWS_SECRET_KEY \('password'\)") as caught:
        get_provider("aws", static_keys(TATUM_KMS_AWS_SECRET_KEY="password")).fetch()
    assert STORE_PASSWORD not in str(caught.value)
    with pytest.raises(ProviderError, match="is a JSON object; set TATUM_KMS_AWS_SECRET_KEY"):
        get_provider("aws", static_keys(TATUM_KMS_AWS_SECRET_KEY="")).fetch()
    with pytest.raises(ProviderError, match="is not a JSON object, but TATUM_KMS_AWS_SECRET_KEY is set"):
        get_provider("aws", static_keys(TATUM_KMS_AWS_SECRET_NAME="kms/plain")).fetch()


def test_missing_secret_is_one_request(proxy: AwsProxy) -> None:
    with pytest.raises(ProviderError, match="secret 'kms/absent' not found") as caught:
        get_provider("aws", static_keys(TATUM_KMS_AWS_SECRET_NAME="kms/absent")).fetch()
    assert not isinstance(caught.value, TransientProviderError)
    assert get_secret_calls(proxy) == 1


def test_unknown_access_key_is_refused_once(proxy: AwsProxy, moto: Moto) -> None:
    moto.enforce_iam(True)
    with pytest.raises(ProviderError, match=r"GetSecretValue refused \(") as caught:
        get_provider("aws", static_keys()).fetch()
    assert "upstream-style-secret" not in str(caught.value)
    assert get_secret_calls(proxy) == 1


def test_throttling_and_5xx_are_retried(proxy: AwsProxy) -> None:
    throttled = Response.json(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
    unavailable = Response.json(503, {"__type": "ServiceUnavailableException", "message": "try later"})
    proxy.fail_next(1, throttled)
    proxy.fail_next(1, unavailable)
    proxy.fail_next(1, None)  # a dropped connection
    assert get_provider("aws", static_keys()).fetch().bytes() == STORE_PASSWORD.encode()
    assert get_secret_calls(proxy) == 4


def test_retries_are_bounded(proxy: AwsProxy) -> None:
    proxy.fail_next(50, Response.json(500, {"__type": "InternalServiceError", "message": "boom"}))
    with pytest.raises(TransientProviderError, match=r"InternalServiceError .*gave up after 4 attempts"):
        get_provider("aws", static_keys()).fetch()
    assert get_secret_calls(proxy) == 4


def test_settings_errors() -> None:
    with pytest.raises(ProviderError, match="TATUM_KMS_AWS_SECRET_NAME"):
        get_provider("aws", {"TATUM_KMS_AWS_REGION": REGION})
    with pytest.raises(ProviderError, match="set both TATUM_KMS_AWS_ACCESS_KEY_ID and TATUM_KMS_AWS_SECRET_ACCESS_KEY"):
        get_provider("aws", {"TATUM_KMS_AWS_SECRET_NAME": "s", "TATUM_KMS_AWS_ACCESS_KEY_ID": "AKIA"})


def test_no_credentials_anywhere_is_explained(proxy: AwsProxy) -> None:
    settings = {"TATUM_KMS_AWS_REGION": REGION, "TATUM_KMS_AWS_SECRET_NAME": "kms/password", **FAST_RETRY}
    with pytest.raises(ProviderError, match="no AWS credentials found"):
        get_provider("aws", settings).fetch()
    assert proxy.count() == 0


def test_region_and_sdk_variables_from_the_env_file(proxy: AwsProxy, tmp_path: Path, monkeypatch) -> None:
    from kms.settings import load_settings

    env_file = tmp_path / "kms.env"
    env_file.write_text(
        "TATUM_KMS_AWS_SECRET_NAME=kms/plain\n"
        "TATUM_KMS_AWS_ACCESS_KEY_ID=AKIAFROMENVFILE00001\n"
        "TATUM_KMS_AWS_SECRET_ACCESS_KEY=from-env-file\n"
        f"AWS_REGION={REGION}\n"
        "AWS_MAX_ATTEMPTS=1\n"
        "AWS_ENDPOINT_URL=http://127.0.0.1:9\n"  # the real environment's value must win
    )
    env_file.chmod(0o600)
    for exported in ("AWS_MAX_ATTEMPTS", "AWS_REGION"):  # recorded as absent, so teardown removes the exports
        monkeypatch.setenv(exported, "placeholder")
        monkeypatch.delenv(exported)
    settings = load_settings(env_file)
    assert get_provider("aws", settings).fetch().bytes() == STORE_PASSWORD.encode()
    assert f"/{REGION}/secretsmanager/" in proxy.requests[0].headers["Authorization"]
    # SDK variables reach boto3 as dotenv put them into process.env upstream; TATUM_* secrets are not exported.
    assert os.environ["AWS_MAX_ATTEMPTS"] == "1" and os.environ["AWS_REGION"] == REGION
    assert os.environ["AWS_ENDPOINT_URL"] == proxy.url
    assert "TATUM_KMS_AWS_SECRET_ACCESS_KEY" not in os.environ


def test_no_region_is_explained(proxy: AwsProxy) -> None:
    with pytest.raises(ProviderError, match="no region; set TATUM_KMS_AWS_REGION"):
        get_provider("aws", static_keys(TATUM_KMS_AWS_REGION="")).fetch()


def test_exports_did_not_leak_from_the_previous_test() -> None:
    assert "AWS_MAX_ATTEMPTS" not in os.environ
