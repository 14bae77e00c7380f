"""A small threaded HTTP(S) server with a request log and fault injection, the base of every fake service here."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Fault:
    """Answer the next ``count`` requests matching ``matches`` with ``response`` (or drop the connection)."""

    count: int
    response: Response | None
    matches: Callable[[Request], bool] = lambda request: True


class FakeServer:
    """Subclasses implement ``handle(request) -> Response``; tests read ``requests`` and queue ``faults``."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.errors: list[Exception] = []
        self._lock = threading.Lock()
        self._ssl_context = ssl_context
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
                try:
                    response = server._dispatch(request)
                except Exception as exc:  # a bug in a fake must fail the test, not pass as a flaky network
                    server.errors.append(exc)
                    raise
                if response is None:  # a dropped connection: the client sees a transport error
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _dispatch(self, request: Request) -> Response | None:
        with self._lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.count > 0 and fault.matches(request):
                    fault.count -= 1
                    return fault.response
        return self.handle(request)

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def fail_next(
        self, count: int, response: Response | None, matches: Callable[[Request], bool] = lambda request: True
    ) -> None:
        with self._lock:
            self.faults.append(Fault(count, response, matches))

    def count(self, predicate: Callable[[Request], bool] = lambda request: True) -> int:
        with self._lock:
            return sum(1 for request in self.requests if predicate(request))

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if self.errors and exc is None:
            raise AssertionError(f"{type(self).__name__} failed while serving: {self.errors[0]!r}")
