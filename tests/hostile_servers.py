"""Hostile HTTP servers on 127.0.0.1 for the hardening tests: fixed bodies, trickled bodies, endless bodies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    trickle_every: float = 0.0
    """Send the body one byte at a time, this many seconds apart."""
    trickle_headers: bool = False
    """Trickle the status line and headers too."""
    repeat: int = 0
    """Send ``body`` this many times over without a length (chunked), or until the client leaves."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        answer = self.server.answer_for(self.command, self.path)
        try:
            self._write(answer)
        except OSError:  # the client gave up: that is what these servers test
            pass

    def _write(self, answer: Answer) -> None:
        if answer.repeat:
            head = f"HTTP/1.1 {answer.status} OK\r\ntransfer-encoding: chunked\r\n\r\n"
            self.wfile.write(head.encode())
            chunk = f"{len(answer.body):x}\r\n".encode() + answer.body + b"\r\n"
            for _ in range(answer.repeat):
                if self.server.stopping.is_set():
                    return
                self.wfile.write(chunk)
            self.wfile.write(b"0\r\n\r\n")
            return
        head = (
            f"HTTP/1.1 {answer.status} OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(answer.body)}\r\n\r\n"
        ).encode()
        if answer.trickle_every and answer.trickle_headers:
            self._trickle(head + answer.body, answer.trickle_every)
            return
        self.wfile.write(head)
        self.wfile.flush()
        if answer.trickle_every:
            self._trickle(answer.body, answer.trickle_every)
        else:
            self.wfile.write(answer.body)

    def _trickle(self, data: bytes, every: float) -> None:
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            time.sleep(every)

    do_GET = _answer
    do_POST = _answer


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer_for: Callable[[str, str], Answer]) -> None:
        self.answer_for = answer_for
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@contextmanager
def hostile_server(answer_for: Callable[[str, str], Answer]) -> Iterator[HostileServer]:
    server = HostileServer(answer_for)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
