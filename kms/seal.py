"""Sealed start: a daemon that holds no password until an operator sends one over a local Unix socket.

The daemon builds a ``SealedGate`` with a verifier ("try to open the store with this password") and a seal callback
("wipe the keys"), starts it, and waits with ``wait_unsealed()``. ``kms unlock`` calls ``unlock()``, ``kms seal`` calls
``seal()``.

Wire protocol (one request and one answer per connection; integers big-endian)::

    request  = op:1 byte | length:4 bytes | payload:length bytes
               op "U" unlock, payload = the password bytes (1..65536); op "S" seal and op "?" status, no payload
    answer   = status:1 byte | length:4 bytes | message:length bytes (UTF-8, one line, safe to print, <= 1024)
               status "O" done ("unsealed", "sealed", "already unsealed", or for "?" the state),
               "W" wrong password (still sealed), "E" refused or failed (the message says why)

The password travels as raw bytes, read straight into a locked ``SecretBuffer`` on the daemon's side and sent from one
without a copy on the client's; both ends wipe it. Access control, all fail-closed:

* the socket is created 0600 inside a directory owned by the daemon's user that no one else can write (a directory the
  gate creates is 0700), and a stale socket is replaced only after a connect to it fails;
* the daemon reads each peer's credentials (SO_PEERCRED) and serves only its own uid and root;
* the client sends the password only to a socket owned by itself or root, in a directory no one else can write, whose
  listening process (SO_PEERCRED again) runs as itself or root; root may unlock a daemon of another user.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kms.errors import KmsError, WrongPasswordError
from kms.hygiene import SecretBuffer

OP_UNLOCK = b"U"
OP_SEAL = b"S"
OP_STATUS = b"?"
ANSWER_OK = b"O"
ANSWER_WRONG = b"W"
ANSWER_ERROR = b"E"
MAX_PASSWORD = 64 * 1024
MAX_MESSAGE = 1024
_HEADER = struct.Struct(">cI")
_UCRED = struct.Struct("3i")


class SealError(KmsError):
    """The unseal socket could not be used: nothing listening, unsafe permissions, refused peer, bad answer."""


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


def peer_allowed(peer: PeerCredentials, daemon_uid: int) -> bool:
    """Whether the daemon serves this peer: its own user, or root."""
    return peer.uid in (daemon_uid, 0)


def server_allowed(server: PeerCredentials, socket_owner: int, client_uid: int) -> bool:
    """Whether a client may send its password to this listening process."""
    if server.uid != socket_owner:
        return False
    return server.uid in (client_uid, 0) or client_uid == 0


def default_socket_path(settings: Mapping[str, str] | None = None) -> Path:
    """TATUM_KMS_UNSEAL_SOCKET, else $XDG_RUNTIME_DIR/kms/unseal.sock, else /run/kms (root) or ~/.tatumrc/run."""
    env = os.environ if settings is None else settings
    explicit = (env.get("TATUM_KMS_UNSEAL_SOCKET") or "").strip()
    if explicit:
        return Path(os.path.expanduser(explicit))
    runtime = (env.get("XDG_RUNTIME_DIR") or "").strip()
    if runtime:
        return Path(runtime) / "kms" / "unseal.sock"
    if os.geteuid() == 0:
        return Path("/run/kms/unseal.sock")
    return Path(os.path.expanduser("~/.tatumrc/run/unseal.sock"))


def _directory_problem(st: os.stat_result, owner_uids: tuple[int, ...]) -> str | None:
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid not in owner_uids:
        return f"is owned by uid {st.st_uid}"
    if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _recv_exact(sock: socket.socket, view: memoryview) -> None:
    received = 0
    while received < len(view):
        n = sock.recv_into(view[received:])
        if n == 0:
            raise ConnectionError("peer closed the connection early")
        received += n


def _send_frame(sock: socket.socket, kind: bytes, payload: bytes | memoryview = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)))
    if len(payload):
        sock.sendall(payload)


def _safe_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_MESSAGE]


class SealedGate:
    """The daemon's end: a Unix-socket server that unseals (and re-seals) through the daemon's callbacks.

    ``verifier`` gets the password and returns True when it opens the store (or False / raises WrongPasswordError);
    the buffer is wiped when it returns, so it must keep what it needs (a derived key, an opened store), not the
    buffer. ``on_seal`` drops whatever the verifier kept. Callbacks run one at a time on the gate's thread.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        verifier: Callable[[SecretBuffer], bool],
        on_seal: Callable[[], None] | None = None,
        *,
        sealed: bool = True,
        io_timeout: float = 10.0,
    ) -> None:
        self.socket_path = Path(socket_path)
        self._verifier = verifier
        self._on_seal = on_seal
        self._io_timeout = io_timeout
        self._uid = os.geteuid()
        self._unsealed = threading.Event()
        if not sealed:
            self._unsealed.set()
        self._callbacks = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._inode: tuple[int, int] | None = None

    @property
    def sealed(self) -> bool:
        return not self._unsealed.is_set()

    def wait_unsealed(self, timeout: float | None = None) -> bool:
        """Block until unsealed (True) or until ``timeout`` seconds pass (False)."""
        return self._unsealed.wait(timeout)

    def mark_sealed(self) -> None:
        """Record that the daemon sealed itself (e.g. on a fatal store error) without a client asking."""
        self._unsealed.clear()

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the socket (refusing unsafe places) and serve on a background thread."""
        if self._listener is not None:
            raise SealError("unseal socket already started")
        self._prepare_directory()
        self._clear_stale_socket()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket exists as 0600 from its first instant
        try:
            listener.bind(str(self.socket_path))
        except OSError as exc:
            listener.close()
            raise SealError(f"cannot create unseal socket {self.socket_path}: {exc.strerror}") from None
        finally:
            os.umask(previous)
        os.chmod(self.socket_path, 0o600)
        st = os.lstat(self.socket_path)
        self._inode = (st.st_dev, st.st_ino)
        listener.listen(8)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="kms-unseal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        # Remove the socket only if it is still the one this gate created.
        with contextlib.suppress(OSError):
            st = os.lstat(self.socket_path)
            if self._inode == (st.st_dev, st.st_ino):
                os.unlink(self.socket_path)

    def __enter__(self) -> SealedGate:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _prepare_directory(self) -> None:
        directory = self.socket_path.parent
        if not directory.exists():
            try:
                directory.mkdir(mode=0o700, parents=True)
            except OSError as exc:
                raise SealError(f"cannot create {directory}: {exc.strerror}") from None
            os.chmod(directory, 0o700)
        problem = _directory_problem(os.lstat(directory), (self._uid, 0))
        if problem:
            raise SealError(f"refusing to put the unseal socket in {directory}: it {problem}")

    def _clear_stale_socket(self) -> None:
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise SealError(f"{self.socket_path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            os.unlink(self.socket_path)  # nobody listens: a leftover from a daemon that died
            return
        finally:
            probe.close()
        raise SealError(f"another process is already listening on {self.socket_path}")

    # -- serving ---------------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(self._io_timeout)
                    self._handle(conn)
                except OSError:
                    continue  # a client that hangs up or stalls costs nothing but its own connection

    def _answer(self, conn: socket.socket, kind: bytes, message: str) -> None:
        _send_frame(conn, kind, message.encode("utf-8")[:MAX_MESSAGE])

    def _handle(self, conn: socket.socket) -> None:
        peer = peer_credentials(conn)
        if not peer_allowed(peer, self._uid):
            self._answer(conn, ANSWER_ERROR, f"refused: uid {peer.uid} may not unseal or seal this daemon")
            return
        header = bytearray(_HEADER.size)
        _recv_exact(conn, memoryview(header))
        op, length = _HEADER.unpack(bytes(header))
        if op == OP_UNLOCK:
            if not 0 < length <= MAX_PASSWORD:
                self._answer(conn, ANSWER_ERROR, "refused: password length out of range")
                return
            self._unlock(conn, length)
        elif op == OP_SEAL and length == 0:
            self._seal(conn)
        elif op == OP_STATUS and length == 0:
            self._answer(conn, ANSWER_OK, "sealed" if self.sealed else "unsealed")
        else:
            self._answer(conn, ANSWER_ERROR, "refused: malformed request")

    def _unlock(self, conn: socket.socket, length: int) -> None:
        password = SecretBuffer(bytes(length))
        try:
            with memoryview(password.raw()) as target:
                _recv_exact(conn, target)
            with self._callbacks:
                if not self.sealed:
                    self._answer(conn, ANSWER_OK, "already unsealed")
                    return
                try:
                    opened = self._verifier(password)
                except WrongPasswordError:
                    opened = False
                except KmsError as exc:
                    self._answer(conn, ANSWER_ERROR, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    return
                except Exception as exc:  # the daemon's bug must not kill the gate or leak a traceback to clients
                    self._answer(conn, ANSWER_ERROR, f"unlock failed ({type(exc).__name__})")
                    return
                if opened:
                    self._unsealed.set()
                    self._answer(conn, ANSWER_OK, "unsealed")
                else:
                    self._answer(conn, ANSWER_WRONG, "wrong password; still sealed")
        finally:
            password.wipe()

    def _seal(self, conn: socket.socket) -> None:
        with self._callbacks:
            if self.sealed:
                self._answer(conn, ANSWER_OK, "already sealed")
                return
            if self._on_seal is None:
                self._answer(conn, ANSWER_ERROR, "this daemon cannot be sealed while running")
                return
            try:
                self._on_seal()
            except Exception as exc:
                detail = str(exc).splitlines()[0] if isinstance(exc, KmsError) and str(exc) else type(exc).__name__
                self._answer(conn, ANSWER_ERROR, f"seal failed ({detail}); still unsealed")
                return
            self._unsealed.clear()
            self._answer(conn, ANSWER_OK, "sealed")


# -- the client's end ----------------------------------------------------------------------------------------------


def _connect_checked(socket_path: str | os.PathLike[str], timeout: float) -> socket.socket:
    path = Path(socket_path)
    uid = os.geteuid()
    trusted = (uid, 0)
    try:
        dir_st = os.stat(path.parent)
        st = os.lstat(path)
    except FileNotFoundError:
        raise SealError(f"no unseal socket at {path}; is the daemon running sealed (or pass its --socket)?") from None
    except OSError as exc:
        raise SealError(f"cannot use unseal socket {path}: {exc.strerror}") from None
    problem = _directory_problem(dir_st, trusted if uid != 0 else (dir_st.st_uid,))
    if problem:
        raise SealError(f"refusing to use unseal socket {path}: its directory {problem}")
    if not stat.S_ISSOCK(st.st_mode):
        raise SealError(f"refusing to use {path}: not a socket")
    if uid != 0 and st.st_uid not in trusted:
        raise SealError(f"refusing to use unseal socket {path}: owned by uid {st.st_uid}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SealError(
            f"refusing to use unseal socket {path}: accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
        )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        server = peer_credentials(sock)
    except OSError as exc:
        sock.close()
        raise SealError(f"no daemon is listening on {path} ({exc.strerror or type(exc).__name__})") from None
    if not server_allowed(server, st.st_uid, uid):
        sock.close()
        raise SealError(f"refusing to use unseal socket {path}: the listening process runs as uid {server.uid}")
    return sock


def _exchange(sock: socket.socket, op: bytes, payload: memoryview | bytes = b"") -> tuple[bytes, str]:
    try:
        _send_frame(sock, op, payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may refuse (and hang up) before reading the request: its answer is still queued for us
    except TimeoutError:
        raise SealError("the daemon did not answer in time") from None
    try:
        header = bytearray(_HEADER.size)
        _recv_exact(sock, memoryview(header))
        kind, length = _HEADER.unpack(bytes(header))
        if kind not in (ANSWER_OK, ANSWER_WRONG, ANSWER_ERROR) or length > MAX_MESSAGE:
            raise SealError("unexpected answer from the unseal socket")
        body = bytearray(length)
        _recv_exact(sock, memoryview(body))
    except TimeoutError:
        raise SealError("the daemon did not answer in time") from None
    except OSError as exc:
        raise SealError(f"the daemon closed the connection ({exc.strerror or type(exc).__name__})") from None
    return kind, _safe_message(bytes(body))


def _outcome(kind: bytes, message: str) -> str:
    if kind == ANSWER_WRONG:
        raise WrongPasswordError(f"wrong password: {message}")
    if kind == ANSWER_ERROR:
        raise SealError(f"the daemon refused: {message}")
    return message


def unlock(socket_path: str | os.PathLike[str], password: SecretBuffer, timeout: float = 120.0) -> str:
    """Send ``password`` to a sealed daemon; returns its message ("unsealed" or "already unsealed").

    The buffer is wiped before this returns, whatever happens. Raises WrongPasswordError (still sealed) or SealError.
    """
    try:
        if not 0 < len(password) <= MAX_PASSWORD:
            raise SealError("the password must be 1 to 65536 bytes")
        with _connect_checked(socket_path, timeout) as sock:
            kind, message = _exchange(sock, OP_UNLOCK, password.view())
        return _outcome(kind, message)
    finally:
        password.wipe()


def seal(socket_path: str | os.PathLike[str], timeout: float = 30.0) -> str:
    """Ask the daemon to drop its keys and wait for a password again; returns its message."""
    with _connect_checked(socket_path, timeout) as sock:
        kind, message = _exchange(sock, OP_SEAL)
    return _outcome(kind, message)


def is_sealed(socket_path: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    with _connect_checked(socket_path, timeout) as sock:
        kind, message = _exchange(sock, OP_STATUS)
    return _outcome(kind, message) == "sealed"


__all__ = [
    "PeerCredentials",
    "SealError",
    "SealedGate",
    "default_socket_path",
    "is_sealed",
    "peer_allowed",
    "peer_credentials",
    "seal",
    "server_allowed",
    "unlock",
]
