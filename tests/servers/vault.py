"""A fake HashiCorp Vault: KV v1/v2 reads, token, AppRole and Kubernetes logins, revoke-self.

Answers follow Vault's HTTP API documentation (response envelopes, 400 for a bad AppRole login, 403 ``permission
denied`` for a bad token or a path outside the token's policy, 404 ``{"errors": []}`` for a missing secret). A token's
policy is modelled as the set of API paths (``secret/data/kms/password``) it may read.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.servers.base import FakeServer, Request, Response

PERMISSION_DENIED = Response.json(403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]})


@dataclass
class Role:
    readable: set[str]
    secret_id: str | None = None  # AppRole
    jwt: str | None = None  # Kubernetes: the service-account token Vault's TokenReview would accept


@dataclass
class FakeVaultState:
    kv2: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # mount -> path -> data
    kv1: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> readable API paths
    approles: dict[str, Role] = field(default_factory=dict)  # role_id -> role
    k8s_roles: dict[str, Role] = field(default_factory=dict)  # role name -> role
    revoked: list[str] = field(default_factory=list)


class FakeVault(FakeServer):
    def __init__(self, state: FakeVaultState) -> None:
        super().__init__()
        self.state = state

    def handle(self, request: Request) -> Response:
        if not request.path.startswith("/v1/"):
            return Response.json(404, {"errors": []})
        api_path = request.path.removeprefix("/v1/")
        if request.method in ("POST", "PUT") and api_path.startswith("auth/"):
            return self._auth(api_path, request)
        if request.method == "GET":
            return self._read(api_path, request.headers.get("X-Vault-Token"))
        return Response.json(405, {"errors": []})

    def _login(self, readable: set[str], metadata: dict[str, str]) -> Response:
        token = "hvs." + secrets.token_urlsafe(24)
        self.state.tokens[token] = set(readable)
        auth = {
            "client_token": token,
            "accessor": str(uuid.uuid4()),
            "policies": ["default", "kms-password"],
            "token_policies": ["default", "kms-password"],
            "metadata": metadata,
            "lease_duration": 1200,
            "renewable": True,
            "entity_id": str(uuid.uuid4()),
            "token_type": "service",
            "orphan": True,
        }
        return Response.json(200, _envelope(None, auth=auth))

    def _auth(self, api_path: str, request: Request) -> Response:
        body = request.json() or {}
        if api_path == "auth/token/revoke-self":
            token = request.headers.get("X-Vault-Token", "")
            if self.state.tokens.pop(token, None) is None:
                return PERMISSION_DENIED
            self.state.revoked.append(token)
            return Response(204)
        if api_path.endswith("/login") and "role_id" in body:
            role = self.state.approles.get(str(body.get("role_id")))
            if role is None:
                return Response.json(400, {"errors": ["invalid role ID"]})
            if body.get("secret_id") != role.secret_id:
                return Response.json(400, {"errors": ["invalid secret id"]})
            return self._login(role.readable, {"role_name": "kms"})
        if api_path.endswith("/login") and "jwt" in body:
            role = self.state.k8s_roles.get(str(body.get("role")))
            if role is None:
                return Response.json(400, {"errors": [f'invalid role name "{body.get("role")}"']})
            if body.get("jwt") != role.jwt:
                return PERMISSION_DENIED
            return self._login(role.readable, {"role": str(body.get("role")), "service_account_name": "kms"})
        return Response.json(404, {"errors": ["no handler for route"]})

    def _read(self, api_path: str, token: str | None) -> Response:
        readable = self.state.tokens.get(token or "")
        if readable is None or api_path not in readable:
            return PERMISSION_DENIED
        mount, _, rest = api_path.partition("/")
        if mount in self.state.kv2 and rest.startswith("data/"):
            data = self.state.kv2[mount].get(rest.removeprefix("data/"))
            if data is None:
                return Response.json(404, {"errors": []})
            metadata = {
                "created_time": "2024-01-01T00:00:00.000000Z",
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": 1,
            }
            return Response.json(200, _envelope({"data": data, "metadata": metadata}))
        if mount in self.state.kv1:
            data = self.state.kv1[mount].get(rest)
            if data is None:
                return Response.json(404, {"errors": []})
            return Response.json(200, _envelope(data, lease_duration=2764800))
        return PERMISSION_DENIED


def _envelope(data: Any, auth: Any = None, lease_duration: int = 0) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
        "mount_type": "kv",
    }
