"""The operator's end of the unseal socket: ``unlock``, ``seal``, ``is_sealed``.

The password is sent from a ``SecretBuffer`` without a copy and wiped whatever happens. It is sent only to a listener
of the expected uid: the client's own, unless the caller names another (``peer_uid``, ``kms unlock --peer-uid``).
Root is trusted as a listener too, since it can read any process anyway, but root itself sends only to root's
listener unless told otherwise. Checked before anything is sent, all fail-closed: the socket's directory is owned by
the expected uid or root and no one else can write it; the socket is a socket, owned by the expected uid or root, and
0600; the listening process (SO_PEERCRED) runs as the socket's owner.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from kms.errors import SealError, WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.seal.protocol import (
    ANSWER_ERROR,
    ANSWER_WRONG,
    ANSWERS,
    MAX_MESSAGE,
    MAX_PASSWORD,
    OP_SEAL,
    OP_STATUS,
    OP_UNLOCK,
    PeerCredentials,
    directory_problem,
    peer_credentials,
    recv_exact,
    recv_header,
    safe_message,
    send_frame,
)


def trusted_uids(client_uid: int, peer_uid: int | None = None) -> tuple[int, ...]:
    """The uids a client may send its password to: the expected one (itself unless named) and root."""
    expected = client_uid if peer_uid is None else peer_uid
    return (expected, 0)


def server_allowed(server: PeerCredentials, socket_owner: int, client_uid: int, peer_uid: int | None = None) -> bool:
    """Whether a client may send its password to this listening process."""
    return server.uid == socket_owner and server.uid in trusted_uids(client_uid, peer_uid)


def _check_socket(path: Path, trusted: tuple[int, ...]) -> os.stat_result:
    """Refuse a socket others could reach or replace; returns its lstat."""
    try:
        dir_st = os.stat(path.parent)
        st = os.lstat(path)
    except FileNotFoundError:
        raise SealError(f"no unseal socket at {path}; is the daemon running sealed (or pass its --socket)?") from None
    except OSError as exc:
        raise SealError(f"cannot use unseal socket {path}: {exc.strerror}") from None
    problem = directory_problem(dir_st, trusted)
    if problem:
        raise SealError(f"refusing to use unseal socket {path}: its directory {problem}")
    if not stat.S_ISSOCK(st.st_mode):
        raise SealError(f"refusing to use {path}: not a socket")
    if st.st_uid not in trusted:
        raise SealError(f"refusing to use unseal socket {path}: owned by uid {st.st_uid} (see --peer-uid)")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SealError(
            f"refusing to use unseal socket {path}: accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
        )
    return st


def _connect_checked(socket_path: str | os.PathLike[str], timeout: float, peer_uid: int | None) -> socket.socket:
    path = Path(socket_path)
    uid = os.geteuid()
    st = _check_socket(path, trusted_uids(uid, peer_uid))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        server = peer_credentials(sock)
    except OSError as exc:
        sock.close()
        raise SealError(f"no daemon is listening on {path} ({exc.strerror or type(exc).__name__})") from None
    if not server_allowed(server, st.st_uid, uid, peer_uid):
        sock.close()
        raise SealError(f"refusing to use unseal socket {path}: the listening process runs as uid {server.uid}")
    return sock


def _exchange(sock: socket.socket, op: bytes, payload: memoryview | bytes = b"") -> tuple[bytes, str]:
    try:
        send_frame(sock, op, payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may refuse (and hang up) before reading the request: its answer is still queued for us
    except TimeoutError:
        raise SealError("the daemon did not answer in time") from None
    try:
        kind, length = recv_header(sock)
        if kind not in ANSWERS or length > MAX_MESSAGE:
            raise SealError("unexpected answer from the unseal socket")
        body = bytearray(length)
        recv_exact(sock, memoryview(body))
    except TimeoutError:
        raise SealError("the daemon did not answer in time") from None
    except OSError as exc:
        raise SealError(f"the daemon closed the connection ({exc.strerror or type(exc).__name__})") from None
    return kind, safe_message(bytes(body))


def _outcome(kind: bytes, message: str) -> str:
    if kind == ANSWER_WRONG:
        raise WrongPasswordError(message or "wrong password; still sealed")
    if kind == ANSWER_ERROR:
        raise SealError(f"the daemon refused: {message}")
    return message


def unlock(
    socket_path: str | os.PathLike[str],
    password: SecretBuffer,
    timeout: float = 120.0,
    *,
    peer_uid: int | None = None,
) -> str:
    """Send ``password`` to a sealed daemon; returns its message ("unsealed" or "already unsealed").

    The buffer is wiped before this returns, whatever happens. Raises WrongPasswordError (still sealed) or SealError.
    """
    try:
        if not 0 < len(password) <= MAX_PASSWORD:
            raise SealError("the password must be 1 to 65536 bytes")
        with _connect_checked(socket_path, timeout, peer_uid) as sock:
            kind, message = _exchange(sock, OP_UNLOCK, password.view())
        return _outcome(kind, message)
    finally:
        password.wipe()


def seal(socket_path: str | os.PathLike[str], timeout: float = 30.0, *, peer_uid: int | None = None) -> str:
    """Ask the daemon to drop its keys and wait for a password again; returns its message."""
    with _connect_checked(socket_path, timeout, peer_uid) as sock:
        kind, message = _exchange(sock, OP_SEAL)
    return _outcome(kind, message)


def is_sealed(socket_path: str | os.PathLike[str], timeout: float = 10.0, *, peer_uid: int | None = None) -> bool:
    with _connect_checked(socket_path, timeout, peer_uid) as sock:
        kind, message = _exchange(sock, OP_STATUS)
    return _outcome(kind, message) == "sealed"
