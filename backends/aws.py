"""aws: the password from AWS Secrets Manager (GetSecretValue), through boto3.

Credentials come from boto3's default chain (environment, web identity for EKS IRSA, EKS Pod Identity, ECS and EC2
roles, profiles), so a pod needs no keys; upstream's TATUM_KMS_AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY still work and
then take precedence. The secret string is either a JSON object, whose member named by TATUM_KMS_AWS_SECRET_KEY holds
the password (upstream's layout), or, with no TATUM_KMS_AWS_SECRET_KEY, the password itself.
"""

from __future__ import annotations

import json
from typing import Any

from backends.base import Settings, export_sdk_settings, import_extra, require, setting
from backends.retry import RetryPolicy, default_timeout
from kms.errors import ProviderError, TransientProviderError
from kms.hygiene import SecretBuffer

SETTINGS: tuple[str, ...] = (
    "TATUM_KMS_AWS_SECRET_NAME",
    "TATUM_KMS_AWS_SECRET_KEY",
    "TATUM_KMS_AWS_REGION",
    "TATUM_KMS_AWS_ACCESS_KEY_ID",
    "TATUM_KMS_AWS_SECRET_ACCESS_KEY",
    "TATUM_KMS_AWS_SESSION_TOKEN",
    # Read by boto3 itself: region, endpoint, and the default credential chain (IRSA, Pod Identity, profiles).
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
"""The settings this backend reads (checkconfig shows them; the README documents them)."""
NAME = "aws"
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_REFUSED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
    }
)


class AwsSecretsManagerProvider:
    name = NAME

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self._boto3 = import_extra("boto3", NAME, "aws")
        (self._secret_name,) = require(settings, NAME, "TATUM_KMS_AWS_SECRET_NAME")
        # botocore itself reads only AWS_DEFAULT_REGION (and profiles); EKS injects AWS_REGION as well.
        self._region = setting(settings, "TATUM_KMS_AWS_REGION") or setting(settings, "AWS_REGION")
        self._secret_key = setting(settings, "TATUM_KMS_AWS_SECRET_KEY")
        self._access_key_id = setting(settings, "TATUM_KMS_AWS_ACCESS_KEY_ID")
        self._secret_access_key = setting(settings, "TATUM_KMS_AWS_SECRET_ACCESS_KEY")
        self._session_token = setting(settings, "TATUM_KMS_AWS_SESSION_TOKEN")
        if bool(self._access_key_id) != bool(self._secret_access_key):
            raise ProviderError(
                f"{NAME}: set both TATUM_KMS_AWS_ACCESS_KEY_ID and TATUM_KMS_AWS_SECRET_ACCESS_KEY, or neither "
                "(to use the default credential chain: IRSA, Pod Identity, instance role, AWS_PROFILE)"
            )
        self._timeout = default_timeout(settings)
        self._retry = retry or RetryPolicy.from_settings(settings)
        export_sdk_settings(settings, ("AWS_",))

    def fetch(self) -> SecretBuffer:
        client = self._client()
        response = self._retry.run(NAME, lambda: self._get_secret_value(client))
        return self._password_from(response)

    def _client(self) -> Any:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        session_args: dict[str, str] = {}
        if self._access_key_id and self._secret_access_key:
            session_args = {"aws_access_key_id": self._access_key_id, "aws_secret_access_key": self._secret_access_key}
            if self._session_token:
                session_args["aws_session_token"] = self._session_token
        # Retries are ours (one policy for every provider), so botocore makes exactly one attempt per call.
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
        )
        try:
            session = self._boto3.session.Session(region_name=self._region, **session_args)
            return session.client("secretsmanager", config=config)
        except BotoCoreError as exc:
            raise ProviderError(f"{NAME}: {_describe_botocore(exc)}") from None

    def _get_secret_value(self, client: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = client.get_secret_value(SecretId=self._secret_name)
            return result
        except ClientError as exc:
            raise _client_error(exc, self._secret_name) from None
        except BotoCoreError as exc:
            raise _botocore_error(exc) from None

    def _password_from(self, response: dict[str, Any]) -> SecretBuffer:
        text = response.get("SecretString")
        if text is None:
            binary = response.get("SecretBinary")
            if binary and not self._secret_key:
                return SecretBuffer(bytes(binary))
            raise ProviderError(f"{NAME}: secret '{self._secret_name}' has no SecretString")
        document: object = None
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if self._secret_key:
            if not isinstance(document, dict):
                raise ProviderError(
                    f"{NAME}: secret '{self._secret_name}' is not a JSON object, but TATUM_KMS_AWS_SECRET_KEY is set"
                )
            value = document.get(self._secret_key)
            if not isinstance(value, str) or not value:
                raise ProviderError(
                    f"{NAME}: secret '{self._secret_name}' has no key named by TATUM_KMS_AWS_SECRET_KEY "
                    f"('{self._secret_key}')"
                )
            return SecretBuffer.from_str(value)
        if isinstance(document, dict):
            raise ProviderError(
                f"{NAME}: secret '{self._secret_name}' is a JSON object; set TATUM_KMS_AWS_SECRET_KEY to the key "
                "that holds the password"
            )
        if not text:
            raise ProviderError(f"{NAME}: secret '{self._secret_name}' is empty")
        return SecretBuffer.from_str(text)


def _client_error(exc: Any, secret_name: str) -> ProviderError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    operation = getattr(exc, "operation_name", "request")
    if code in _TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientProviderError(f"{NAME}: {operation} failed with {code} (HTTP {status})")
    if code == "ResourceNotFoundException":
        return ProviderError(f"{NAME}: secret '{secret_name}' not found (TATUM_KMS_AWS_SECRET_NAME)")
    if code == "DecryptionFailure":
        return ProviderError(f"{NAME}: the secret's KMS key refused to decrypt it (kms:Decrypt missing?)")
    if code in _REFUSED_CODES or status in (401, 403):
        return ProviderError(
            f"{NAME}: {operation} refused ({code}, HTTP {status}); check the role's or keys' permissions"
        )
    return ProviderError(f"{NAME}: {operation} failed with {code} (HTTP {status})")


def _botocore_error(exc: Exception) -> ProviderError:
    from botocore import exceptions as bce

    transient = (
        bce.ConnectTimeoutError,
        bce.ReadTimeoutError,
        bce.EndpointConnectionError,
        bce.ConnectionClosedError,
        bce.HTTPClientError,
    )
    if isinstance(exc, transient):
        return TransientProviderError(f"{NAME}: cannot reach Secrets Manager ({type(exc).__name__})")
    return ProviderError(f"{NAME}: {_describe_botocore(exc)}")


def _describe_botocore(exc: Exception) -> str:
    from botocore import exceptions as bce

    if isinstance(exc, bce.NoRegionError):
        return "no region; set TATUM_KMS_AWS_REGION (or AWS_REGION / AWS_DEFAULT_REGION)"
    if isinstance(exc, bce.NoCredentialsError):
        return (
            "no AWS credentials found (IRSA/Pod Identity variables, instance role, AWS_PROFILE, "
            "or TATUM_KMS_AWS_ACCESS_KEY_ID/TATUM_KMS_AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, bce.CredentialRetrievalError | bce.PartialCredentialsError):
        return f"could not obtain AWS credentials ({type(exc).__name__})"
    return f"AWS SDK error ({type(exc).__name__})"


RDS_IAM = "rds-iam"


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
