"""A minimal approval-v2 approver on 127.0.0.1: the sandbox's (``kms sandbox --approver-v2``) and the tests'.

For every ``POST`` it verifies the daemon's signed request (against the pinned daemon key when it has one), applies
its rules to the request's intent, and answers with a signed approve or deny for that request id and payload digest.
``fault`` makes it misbehave in one of the ways the daemon must refuse (tests, demonstrations); ``latency`` delays
every answer. It is a staging tool: a real approver also shows the intent to a person or checks it against its own
books before approving (see ops/README.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kms.approval.keys import PinnedKey, SigningKey, generate_signing_key
from kms.approval.protocol import APPROVE, DENY, AnswerRejected, sign_answer, verify_request

log = logging.getLogger("kms.approval")

MAX_REQUEST = 256 * 1024
FAULTS = frozenset(
    {"tamper", "other_key", "other_digest", "expired", "replay", "bad_json", "redirect", "oversized",
     "oversized_chunked", "trickle", "timeout", "server_error"}
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """Matches when every given field matches; ``decision`` is approve or deny."""

    decision: str
    pending_id: str | None = None
    chain: str | None = None
    destination: str | None = None
    amount_above: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rule:
        unknown = set(raw) - {"decision", "pendingId", "chain", "destination", "amountAbove"}
        if unknown:
            raise ValueError(f"unknown rule field {sorted(unknown)[0]!r}")
        decision = raw.get("decision", DENY)
        if decision not in (APPROVE, DENY):
            raise ValueError("a rule's decision is approve or deny")
        above = raw.get("amountAbove")
        return cls(
            decision=decision,
            pending_id=raw.get("pendingId"),
            chain=str(raw["chain"]).upper() if raw.get("chain") else None,
            destination=str(raw["destination"]).lower() if raw.get("destination") else None,
            amount_above=int(above) if above is not None else None,
        )

    def matches(self, claims: Mapping[str, Any]) -> bool:
        intent = claims.get("intent") if isinstance(claims.get("intent"), Mapping) else {}
        destinations = [d for d in intent.get("destinations") or [] if isinstance(d, Mapping)]
        if self.pending_id is not None and claims.get("pendingId") != self.pending_id:
            return False
        if self.chain is not None and str(claims.get("chain", "")).upper() != self.chain:
            return False
        if self.destination is not None and not any(
            str(d.get("address", "")).lower() == self.destination for d in destinations
        ):
            return False
        if self.amount_above is not None and not any(
            str(d.get("amount", "0")).isdigit() and int(d["amount"]) > self.amount_above for d in destinations
        ):
            return False
        return True


@dataclass
class ApproverConfig:
    key: SigningKey = field(default_factory=generate_signing_key)
    daemon_key: PinnedKey | None = None
    rules: Sequence[Rule] = ()
    default: str = APPROVE
    latency: float = 0.0
    fault: str | None = None
    fault_seconds: float = 3.0
    answers: list[str] = field(default_factory=list)
    """Every answer token sent, oldest first (the ``replay`` fault resends the first)."""

    def decide(self, claims: Mapping[str, Any]) -> tuple[str, str]:
        for index, rule in enumerate(self.rules):
            if rule.matches(claims):
                return rule.decision, f"rule {index}"
        return self.default, "default"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ApproverHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_REQUEST:
            self._send(413, b"request too large")
            return
        token = self.rfile.read(length).decode("ascii", "replace").strip()
        config = self.server.config
        if config.latency:
            time.sleep(config.latency)
        try:
            claims = verify_request(token, config.daemon_key)
        except AnswerRejected as rejected:
            self._send(400, json.dumps({"error": str(rejected)}).encode(), "application/json")
            return
        decision, why = config.decide(claims)
        self._answer(config, claims, decision, why)

    def _answer(self, config: ApproverConfig, claims: dict[str, Any], decision: str, why: str) -> None:
        fault = config.fault
        if fault in ("redirect", "server_error", "bad_json", "oversized", "oversized_chunked", "trickle", "timeout"):
            self._misbehave(fault, config.fault_seconds)
            return
        key = generate_signing_key(config.key.algorithm) if fault == "other_key" else config.key
        if fault == "other_digest":
            claims = {**claims, "payloadSha256": "0" * 64}
        token = sign_answer(key, claims, decision, why, ttl=-60 if fault == "expired" else 30)
        if fault == "tamper":
            token = _tampered(token)
        with self.server.lock:
            config.answers.append(token)
            if fault == "replay":
                token = config.answers[0]
        self._send(200, token.encode(), "application/jwt")

    def _misbehave(self, fault: str, seconds: float) -> None:
        if fault == "redirect":
            self._send(307, b"", headers={"location": "http://127.0.0.1:9/elsewhere"})
        elif fault == "server_error":
            self._send(503, b"unavailable")
        elif fault == "bad_json":
            self._send(200, b'{"approved": true', "application/json")
        elif fault == "oversized":
            self._send(200, b"A" * (1024 * 1024), "application/jwt")
        elif fault == "oversized_chunked":  # no length announced: only counting the bytes can stop it
            self._chunked(b"A" * 8192, 128)
        elif fault == "timeout":
            time.sleep(seconds)
            self._send(503, b"late")
        else:  # trickle: headers at once, then one byte at a time, slower than any total deadline allows
            self.send_response(200)
            self.send_header("content-type", "application/jwt")
            self.send_header("content-length", "4096")
            self.end_headers()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    self.wfile.write(b"e")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            self.close_connection = True

    def _chunked(self, chunk: bytes, count: int) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/jwt")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(count):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _send(
        self, status: int, body: bytes, content_type: str = "text/plain", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the daemon hung up (an oversized answer, a deadline): nothing to tell it
            self.close_connection = True


def _tampered(token: str) -> str:
    """The same answer with one claim changed and the original signature kept."""
    import base64

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["reason"] = "tampered"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


class ApproverHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], config: ApproverConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The daemon hanging up on a slow or oversized answer is expected here; nothing to print.
        log.debug("approver: connection from %s ended early", client_address)


class Approver:
    """``with Approver(ApproverConfig(...)) as approver: approver.url, approver.public_key``."""

    def __init__(self, config: ApproverConfig | None = None, port: int = 0) -> None:
        self.config = config or ApproverConfig()
        self._server = ApproverHttpServer(("127.0.0.1", port), self.config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/approve"

    @property
    def public_key(self) -> PinnedKey:
        return self.config.key.public

    def start(self) -> Approver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kms-approver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Approver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_rules(text: str) -> list[Rule]:
    """``--approver-rules`` JSON: a list of rule objects (``decision``, ``pendingId``, ``chain``, ``destination``,
    ``amountAbove``), first match wins."""
    raw = json.loads(text)
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise ValueError("approver rules are a JSON list of objects")
    return [Rule.from_json(r) for r in raw]


__all__ = ["FAULTS", "Approver", "ApproverConfig", "Rule", "parse_rules"]
