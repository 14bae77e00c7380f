"""The unseal socket's wire format and the checks both of its ends share.

One request and one answer per connection; integers big-endian::

    request  = op:1 byte | length:4 bytes | payload:length bytes
               op "U" unlock, payload = the password bytes (1..65536); op "S" seal and op "?" status, no payload
    answer   = status:1 byte | length:4 bytes | message:length bytes (UTF-8, one line, safe to print, <= 1024)
               status "O" done ("unsealed", "sealed", "already unsealed", or for "?" the state),
               "W" wrong password (still sealed), "E" refused or failed (the message says why)
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from dataclasses import dataclass

OP_UNLOCK = b"U"
OP_SEAL = b"S"
OP_STATUS = b"?"
ANSWER_OK = b"O"
ANSWER_WRONG = b"W"
ANSWER_ERROR = b"E"
ANSWERS = (ANSWER_OK, ANSWER_WRONG, ANSWER_ERROR)
MAX_PASSWORD = 64 * 1024
MAX_MESSAGE = 1024
HEADER = struct.Struct(">cI")
_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The credentials of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def directory_problem(st: os.stat_result, owner_uids: tuple[int, ...]) -> str | None:
    """Why a directory may not hold the unseal socket (wrong owner, writable by others), or None."""
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid not in owner_uids:
        return f"is owned by uid {st.st_uid}"
    if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def recv_exact(sock: socket.socket, view: memoryview) -> None:
    received = 0
    while received < len(view):
        n = sock.recv_into(view[received:])
        if n == 0:
            raise ConnectionError("peer closed the connection early")
        received += n


def send_frame(sock: socket.socket, kind: bytes, payload: bytes | memoryview = b"") -> None:
    sock.sendall(HEADER.pack(kind, len(payload)))
    if len(payload):
        sock.sendall(payload)


def recv_header(sock: socket.socket) -> tuple[bytes, int]:
    header = bytearray(HEADER.size)
    recv_exact(sock, memoryview(header))
    kind, length = HEADER.unpack(bytes(header))
    return kind, length


def safe_message(raw: bytes) -> str:
    """An answer's text as it may be printed: decoded, control characters blanked, bounded."""
    text = raw.decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_MESSAGE]
