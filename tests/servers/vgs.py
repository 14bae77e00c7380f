"""A fake VGS vault API: ``GET /aliases/{alias}`` behind basic auth, answering as VGS documents it."""

from __future__ import annotations

import base64
import ssl
from urllib.parse import unquote

from tests.servers.base import FakeServer, Request, Response


class FakeVgs(FakeServer):
    def __init__(
        self, username: str, password: str, aliases: dict[str, str], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(ssl_context)
        self._authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.aliases = dict(aliases)

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != self._authorization:
            return Response.json(401, {"errors": [{"status": 401, "title": "Unauthorized"}]})
        if request.method != "GET" or not request.path.startswith("/aliases/"):
            return Response.json(404, {"errors": [{"status": 404, "title": "Not Found"}]})
        alias = unquote(request.path.removeprefix("/aliases/"))
        if alias not in self.aliases:
            return Response.json(
                404, {"errors": [{"status": 404, "title": "Not Found", "detail": f"Alias {alias} not found"}]}
            )
        record = {
            "aliases": [{"alias": alias, "format": "UUID"}],
            "classifiers": [],
            "created_at": "2024-01-01T00:00:00Z",
            "storage": "PERSISTENT",
            "value": self.aliases[alias],
        }
        return Response.json(200, {"data": [record]})
