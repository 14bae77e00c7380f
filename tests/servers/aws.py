"""AWS test plumbing: a forwarding proxy in front of moto's server that logs every call and can inject faults.

The proxy passes requests through byte for byte (Host header included, so SigV4 signatures still verify at moto) and
records the AWS action (``X-Amz-Target`` or the query ``Action``) and the access key ID each request was signed with.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from tests.servers.base import FakeServer, Request, Response

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


def action_of(request: Request) -> str:
    target = request.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    form = parse_qs(request.body.decode("utf-8", "replace")) if request.body else {}
    return (form.get("Action") or request.query.get("Action") or [""])[0]


def access_key_of(request: Request) -> str | None:
    match = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    return match.group(1) if match else None


class AwsProxy(FakeServer):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.responses: list[tuple[str, int, bytes]] = []
        self.after_response: Callable[[str, int, bytes], None] | None = None

    def handle(self, request: Request) -> Response:
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            path = request.path + (
                "?" + "&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs) if request.query else ""
            )
            connection.request(request.method, path, body=request.body, headers=request.headers)
            answer = connection.getresponse()
            body = answer.read()
            headers = {
                k: v
                for k, v in answer.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")
            }
        finally:
            connection.close()
        self.responses.append((action_of(request), answer.status, body))
        if self.after_response is not None:
            self.after_response(action_of(request), answer.status, body)
        return Response(answer.status, body, headers)

    def actions(self) -> list[str]:
        return [action_of(request) for request in self.requests]
