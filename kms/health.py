"""The optional health and metrics listener: /healthz, /readyz, /metrics, and nothing else.

It serves only process state and counters: never a secret, a signatureId list or a transaction body. It binds to
127.0.0.1 unless told otherwise; it has no authentication, so bind it to a non-loopback address only behind a
firewall or a proxy that restricts who can scrape it.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kms.metrics import DaemonMetrics, NullMetrics

log = logging.getLogger("kms.health")

_TEXT = "text/plain; charset=utf-8"
_REQUEST_TIMEOUT = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: HealthServer) -> None:
        self.owner = owner
        super().__init__(address, handler)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "kms"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = _REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            status, body, ctype = HTTPStatus.OK, b"ok\n", _TEXT
        elif path == "/readyz":
            ready = owner.ready()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            body, ctype = (b"ready\n" if ready else b"not ready\n"), _TEXT
            if owner.status is not None:
                body += owner.status().encode("utf-8", "replace")[:500] + b"\n"
        elif path == "/metrics":
            status, body, ctype = HTTPStatus.OK, owner.metrics_text(), CONTENT_TYPE_LATEST
        else:
            status, body, ctype = HTTPStatus.NOT_FOUND, b"not found\n", _TEXT
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib writes access lines to stderr; route them through logging (and its redaction) at debug level.
        log.debug("health request: " + format, *args)


class HealthServer:
    """Serves /healthz (alive), /readyz (``is_ready()``), /metrics (Prometheus text) from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: DaemonMetrics | NullMetrics | None = None,
        is_ready: Callable[[], bool] = lambda: False,
        status: Callable[[], str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.metrics = metrics if metrics is not None else NullMetrics()
        self._is_ready = is_ready
        self.status = status
        """An extra line for the /readyz body (a replica's share of the work); never a secret or an id list."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the health server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        if self._server is not None:
            return self
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="kms-health", daemon=True
        )
        self._thread.start()
        log.info("health listener on %s (/healthz, /readyz, /metrics)", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ready(self) -> bool:
        try:
            return bool(self._is_ready())
        except Exception as exc:  # readiness that cannot be determined is not readiness
            log.warning("readiness check failed (%s); reporting not ready", type(exc).__name__)
            return False

    def metrics_text(self) -> bytes:
        registry = getattr(self.metrics, "registry", None)
        return generate_latest(registry) if registry is not None else b""


__all__ = ["HealthServer"]
