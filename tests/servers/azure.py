"""A fake Azure Key Vault (secret GET with the bearer challenge) and a fake Entra ID token endpoint, over HTTPS.

Key Vault answers an unauthenticated request with 401 and ``WWW-Authenticate: Bearer authorization="<authority>/
<tenant>", resource="https://vault.azure.net"``, then serves ``GET /secrets/{name}[/{version}]`` to a bearer token the
token endpoint issued for the vault scope. The token endpoint implements the client-credentials grant with a client
secret or a federated client assertion (AKS workload identity), as ``POST /{tenant}/oauth2/v2.0/token``, and the
tenant's OpenID configuration document that msal reads first.
"""

from __future__ import annotations

import secrets
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from tests.servers.base import FakeServer, Request, Response

VAULT_SCOPE = "https://vault.azure.net/.default"


@dataclass
class EntraState:
    tenant_id: str
    client_id: str
    client_secret: str | None = None
    federated_token: str | None = None  # the service-account token the federated credential trusts
    issued: dict[str, str] = field(default_factory=dict)  # access token -> scope


class FakeEntraId(FakeServer):
    def __init__(self, state: EntraState, ssl_context: ssl.SSLContext) -> None:
        super().__init__(ssl_context)
        self.state = state

    def handle(self, request: Request) -> Response:
        tenant = self.state.tenant_id
        if request.method == "GET" and request.path == f"/{tenant}/v2.0/.well-known/openid-configuration":
            # What msal (behind the client-secret credential) reads to find the token endpoint.
            return Response.json(
                200,
                {
                    "issuer": f"{self.url}/{tenant}/v2.0",
                    "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/devicecode",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                    "tenant_region_scope": "EU",
                },
            )
        if request.method != "POST" or request.path != f"/{tenant}/oauth2/v2.0/token":
            return Response.json(404, {"error": "not_found"})
        form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != self.state.client_id:
            return _oauth_error(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
        assertion = form.get("client_assertion")
        if assertion is not None:
            ok = form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            if not ok or assertion != self.state.federated_token:
                return _oauth_error(401, "invalid_client", "AADSTS700213: No matching federated identity record found.")
        elif form.get("client_secret") is None or form.get("client_secret") != self.state.client_secret:
            return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(24)
        self.state.issued[token] = form.get("scope", "")
        return Response.json(
            200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response.json(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[6 : description.index(":")])],
            "timestamp": "",
        },
    )


@dataclass
class VaultState:
    secrets: dict[str, dict[str, str]]  # name -> version -> value; the last version listed is the latest
    readable: set[str]  # secret names the identity has 'get' on
    authority: str = ""  # where the challenge sends clients, e.g. https://127.0.0.1:PORT/TENANT


class FakeKeyVault(FakeServer):
    def __init__(self, state: VaultState, entra: EntraState, ssl_context: ssl.SSLContext) -> None:
        super().__init__(ssl_context)
        self.state = state
        self.entra = entra

    def handle(self, request: Request) -> Response:
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or token not in self.entra.issued:
            challenge = f'Bearer authorization="{self.state.authority}", resource="https://vault.azure.net"'
            return Response.json(
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer token."}},
                {"WWW-Authenticate": challenge},
            )
        if self.entra.issued[token] != VAULT_SCOPE:
            return Response.json(401, {"error": {"code": "Unauthorized", "message": "AKV10022: Invalid audience."}})
        parts = [unquote(part) for part in request.path.strip("/").split("/")]
        if request.method != "GET" or len(parts) not in (2, 3) or parts[0] != "secrets":
            return Response.json(400, {"error": {"code": "BadParameter", "message": "Unknown operation"}})
        name = parts[1]
        if name not in self.state.readable:
            return Response.json(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource.",
                        "innerError": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        versions = self.state.secrets.get(name, {})
        version = parts[2] if len(parts) == 3 and parts[2] else (list(versions)[-1] if versions else "")
        if version not in versions:
            return Response.json(
                404,
                {"error": {"code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not found."}},
            )
        now = int(time.time())
        return Response.json(
            200,
            {
                "value": versions[version],
                "id": f"{self.url}/secrets/{name}/{version}",
                "attributes": {"enabled": True, "created": now, "updated": now, "recoveryLevel": "Recoverable"},
                "tags": {},
            },
        )
