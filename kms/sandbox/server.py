"""A local double of the Tatum API endpoints the daemon uses, plus a four-eye approval server and an admin API.

Tatum side (under ``/v3``): pending transactions, broadcast (every chain route and offchain withdrawals), the error
batch, ``GET``/``DELETE``/``PUT /v3/kms/{id}``, the EVM look-ups (transaction count, fee, web3 JSON-RPC) and the
Solana JSON-RPC node (``kms.sandbox.solana``).
Four-eye: ``GET``/``POST /approval/{id}``. Admin (``/_sandbox``): ``POST pending`` (one pending transaction or a
list), ``POST config`` (latency, faults, approval verdicts, fee, nonces, ...), ``GET state``, ``POST reset``.
Listens on 127.0.0.1 only; it is a test double and a staging tool, never a production endpoint.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kms.sandbox.admin_api import check_config, check_pending
from kms.sandbox.solana import RpcError
from kms.sandbox.state import FaultRule, SandboxState

log = logging.getLogger("kms.sandbox")

MAX_BODY = 64 * 1024 * 1024
_PENDING = re.compile(r"^/v3/kms/pending/([A-Za-z0-9_-]+)$")
_KMS_ID = re.compile(r"^/v3/kms/([^/]+)$")
_KMS_COMPLETE = re.compile(r"^/v3/kms/([^/]+)/([^/]+)$")
_BROADCAST = re.compile(r"^/v3/([A-Za-z0-9_-]+)/broadcast$")
_COUNT = re.compile(r"^/v3/([A-Za-z0-9_-]+)/transaction/count/([^/]+)$")
_FEE = re.compile(r"^/v3/blockchain/fee/([A-Za-z0-9_-]+)$")
_WEB3 = re.compile(r"^/v3/([A-Za-z0-9_-]+)/web3/([^/]+)$")
_NODE = re.compile(r"^/v3/blockchain/node/([A-Za-z0-9_-]+)/([^/]+)$")
_APPROVAL = re.compile(r"^/approval/([^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the client's delayed ACK would add
    # ~40 ms to every answer and swamp the latency the sandbox is asked to simulate.
    disable_nagle_algorithm = True
    server: SandboxHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        # The request line of a web3 call carries the API key in its path: log the route only.
        log.debug("%s %s %s", self.address_string(), self.command, _route_key(urlsplit(self.path).path))

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return raw, None
        try:
            return raw, json.loads(raw)
        except ValueError:
            return raw, None

    _trickle: float = 0.0

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json" if raw is None else "text/html")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not self._trickle:
            self.wfile.write(data)
            return
        try:
            self.wfile.flush()
            for index in range(len(data)):  # a slow server, until the whole answer is out or the client gives up
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                time.sleep(self._trickle)
        except OSError:
            self.close_connection = True

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP reset: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _apply_fault(self, rule: FaultRule) -> bool:
        """True when the fault answered the request (or dropped it)."""
        if rule.kind == "delay":
            time.sleep(rule.seconds)
            return False
        if rule.kind == "trickle":
            self._trickle = rule.seconds
            return False
        if rule.kind == "reset":
            self._reset_connection()
            return True
        if rule.kind == "malformed":
            self._send(200, None, raw=b"<html><body>502 Bad Gateway (not JSON)</body>")
            return True
        if rule.kind == "wrongshape":
            self._send(200, {"unexpected": "shape", "data": None})
            return True
        headers = {"retry-after": f"{rule.retry_after:g}"} if rule.retry_after is not None else None
        self._send(rule.status, {"statusCode": rule.status, "message": "injected fault"}, headers)
        return True

    # -- dispatch ---------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._trickle = 0.0
        path = urlsplit(self.path).path
        try:
            raw, body = self._read_body()
        except (ValueError, OSError):
            self._send(400, {"message": "unreadable body"})
            return
        try:
            if path.startswith("/_sandbox/"):
                self._admin(method, path, body)
            elif path.startswith("/approval/"):
                self._approval(method, path, body)
            elif path.startswith("/v3/"):
                self._tatum(method, path, raw, body)
            else:
                self._send(404, {"message": "not found"})
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"message": f"bad request: {exc}"})

    # -- admin ------------------------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any) -> None:
        state = self.server.state
        if path == "/_sandbox/pending" and method == "POST" and parse_qs(urlsplit(self.path).query).get("unchecked"):
            # Deliberately malformed entries, to see what the daemon makes of them: only an object with a chain.
            items = body if isinstance(body, list) else [body]
            if not all(isinstance(i, dict) for i in items):
                raise ValueError("expected a pending transaction object or a list of them")
            self._send(200, {"ids": state.enqueue(items)})
        elif path == "/_sandbox/state" and method == "GET":
            self._send(200, state.snapshot())
        elif path == "/_sandbox/pending" and method == "POST":
            self._send(200, {"ids": state.enqueue(check_pending(body))})
        elif path == "/_sandbox/config" and method == "POST":
            state.configure(check_config(body))
            self._send(200, {"ok": True})
        elif path == "/_sandbox/reset" and method == "POST":
            state.reset()
            self._send(200, {"ok": True})
        else:
            self._send(404, {"message": "unknown admin endpoint"})

    # -- four-eye ---------------------------------------------------------------------------------------------------

    def _approval(self, method: str, path: str, body: Any) -> None:
        match = _APPROVAL.match(path)
        if not match or method not in ("GET", "POST"):
            self._send(404, {"message": "not found"})
            return
        verdict, hang = self.server.state.approval_for(match.group(1), method, body)
        if verdict == "timeout":
            time.sleep(hang)
            verdict = "approve"
        status = {"approve": 200, "deny": 403, "notfound": 404, "error": 500}[verdict]
        self._send(status, {"id": match.group(1), "approved": status == 200})

    # -- Tatum API --------------------------------------------------------------------------------------------------

    def _tatum(self, method: str, path: str, raw: bytes, body: Any) -> None:
        state = self.server.state
        gateway = _WEB3.match(path) or _NODE.match(path)
        if state.api_key and self.headers.get("x-api-key") != state.api_key and not gateway:
            self._send(401, {"statusCode": 401, "message": "invalid api key"})
            return
        key = f"{method} {_route_key(path)}"
        state.enter(key)
        try:
            if state.latency:
                time.sleep(state.latency)
            signature_id = body.get("signatureId") if isinstance(body, dict) else None
            if path.endswith("/broadcast") and method == "POST":
                state.record_attempt(path, body if body is not None else raw.decode("utf-8", "replace"))
            state.count(key)
            generation = state.generation
            rule = state.take_fault(method, path, signature_id if isinstance(signature_id, str) else None)
            if rule is not None and self._apply_fault(rule):
                return
            if state.generation != generation:
                self._send(503, {"message": "the sandbox was reset while this request waited"})
                return
            self._route(method, path, body)
        finally:
            state.leave(key)

    def _route(self, method: str, path: str, body: Any) -> None:
        state = self.server.state
        if (m := _PENDING.match(path)) and method == "POST":
            ids = body.get("signatureIds") if isinstance(body, dict) else None
            if not isinstance(ids, list):
                self._send(400, {"message": "signatureIds must be a list"})
                return
            found = state.pending_for(m.group(1).upper(), ids, self.headers.get("x-ttm-kms-client-version"))
            headers = {"x-ttm-kms-latest-version": state.latest_version} if state.latest_version else None
            self._send(200, found, headers)
        elif path == "/v3/offchain/withdrawal/broadcast" and method == "POST":
            if not isinstance(body, dict) or not all(k in body for k in ("currency", "withdrawalId", "txData")):
                self._send(400, {"message": "currency, withdrawalId and txData are required"})
                return
            self._send(200, state.broadcast(path, "offchain", body))
        elif path == "/v3/tatum/kms/batch" and method == "POST":
            errors = body.get("errors") if isinstance(body, dict) else None
            if not isinstance(errors, list):
                self._send(400, {"message": "errors must be a list"})
                return
            state.report([e for e in errors if isinstance(e, dict)])
            self._send(200, {})
        elif (m := _BROADCAST.match(path)) and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("txData"), str):
                self._send(400, {"message": "txData is required"})
                return
            self._send(200, state.broadcast(path, m.group(1), body))
        elif (m := _COUNT.match(path)) and method == "GET":
            self._send(200, state.nonce(m.group(2)))
        elif _FEE.match(path) and method == "GET":
            self._send(200, dict(state.fee))
        elif (m := _WEB3.match(path) or _NODE.match(path)) and method == "POST":
            self._web3(m.group(1), m.group(2), body)
        elif (m := _KMS_COMPLETE.match(path)) and method == "PUT":
            found = state.complete(m.group(1), m.group(2))
            self._send(200 if found else 404, {} if found else {"message": "not found"})
        elif (m := _KMS_ID.match(path)) and method in ("GET", "DELETE"):
            if method == "GET":
                item = state.get(m.group(1))
                self._send(200 if item else 404, item or {"message": "not found"})
            else:
                found = state.delete(m.group(1))
                self._send(200 if found else 404, {} if found else {"message": "not found"})
        else:
            self._send(404, {"statusCode": 404, "message": f"no such endpoint {method} {path}"})

    def _web3(self, route: str, api_key: str, body: Any) -> None:
        state = self.server.state
        if state.api_key and api_key != state.api_key:
            self._send(401, {"message": "invalid api key"})
            return
        if not isinstance(body, dict):
            self._send(400, {"message": "expected a JSON-RPC request"})
            return
        rpc_id = body.get("id", 1)
        if route.upper() == "SOL":
            self._solana(rpc_id, body)
            return
        # eth_chainId, klay_chainID, ...: the namespace differs per chain, the answers do not.
        method = str(body.get("method", "")).split("_", 1)[-1].lower()
        result: Any
        if method == "chainid" and route in state.chain_ids:
            result = hex(state.chain_ids[route])
        elif method == "estimategas":
            result = hex(state.estimate_gas)
        elif method == "gasprice":
            result = hex(int(state.fee.get("medium", "0")))
        elif method == "gettransactioncount":
            params = body.get("params") or [""]
            result = hex(state.nonce(str(params[0])))
        else:
            self._send(200, {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": -32601, "message": "not supported"}})
            return
        self._send(200, {"jsonrpc": "2.0", "id": rpc_id, "result": result})

    def _solana(self, rpc_id: Any, body: dict[str, Any]) -> None:
        try:
            result = self.server.state.solana.answer(str(body.get("method", "")), body.get("params"))
        except RpcError as exc:
            self._send(200, {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": exc.code, "message": str(exc)}})
            return
        self._send(200, {"jsonrpc": "2.0", "id": rpc_id, "result": result})


def _route_key(path: str) -> str:
    """A request-counter key without ids or the API key: /v3/ethereum/web3/{key} -> /v3/ethereum/web3."""
    if _WEB3.match(path) or _NODE.match(path):
        return path.rsplit("/", 1)[0]
    if _COUNT.match(path):
        return path.rsplit("/", 1)[0]
    if path.startswith("/v3/kms/pending/"):
        return path
    if _KMS_COMPLETE.match(path) or _KMS_ID.match(path):
        return "/v3/kms/{id}"
    return path


class SandboxHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    """The listen backlog: a daemon opening a few dozen connections at once is not refused (the default is 5)."""

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class Sandbox:
    """The server in a background thread: ``with Sandbox() as sb: sb.url``."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", state: SandboxState | None = None) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the sandbox listens on the loopback interface only")
        self.state = state or SandboxState()
        self._server = SandboxHttpServer((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def approval_url(self) -> str:
        return f"{self.url}/approval"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kms-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Sandbox", "SandboxHttpServer"]
