"""The daemon's end of the unseal socket: a Unix-socket server that unseals (and re-seals) through callbacks.

Access control, all fail-closed: the socket is created 0600 inside a directory owned by the daemon's user that no one
else can write (a directory the gate creates is 0700), and a stale socket is replaced only after a connect to it
fails; the gate reads each peer's credentials (SO_PEERCRED) and serves only its own uid and root. Wrong passwords
are logged with the peer's uid and pid (never the password), reported to ``on_wrong_password`` (a metric) and slowed
down (kms.seal.throttle).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from kms.errors import KmsError, SealError, WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.seal.protocol import (
    ANSWER_ERROR,
    ANSWER_OK,
    ANSWER_WRONG,
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
    send_frame,
)
from kms.seal.throttle import UnlockThrottle

log = logging.getLogger("kms.seal")

WRONG_PASSWORD = "wrong password; still sealed"  # noqa: S105 - the answer, not a password


def peer_allowed(peer: PeerCredentials, daemon_uid: int) -> bool:
    """Whether the daemon serves this peer: its own user, or root."""
    return peer.uid in (daemon_uid, 0)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class SealedGate:
    """Serves the unseal socket on a background thread.

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
        throttle: UnlockThrottle | None = None,
        on_wrong_password: Callable[[], None] | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self._verifier = verifier
        self._on_seal = on_seal
        self._io_timeout = io_timeout
        self._throttle = throttle or UnlockThrottle()
        self._on_wrong_password = on_wrong_password
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
        problem = directory_problem(os.lstat(directory), (self._uid, 0))
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
        send_frame(conn, kind, message.encode("utf-8")[:MAX_MESSAGE])

    def _handle(self, conn: socket.socket) -> None:
        peer = peer_credentials(conn)
        if not peer_allowed(peer, self._uid):
            self._answer(conn, ANSWER_ERROR, f"refused: uid {peer.uid} may not unseal or seal this daemon")
            return
        op, length = recv_header(conn)
        if op == OP_UNLOCK:
            if not 0 < length <= MAX_PASSWORD:
                self._answer(conn, ANSWER_ERROR, "refused: password length out of range")
                return
            self._unlock(conn, length, peer)
        elif op == OP_SEAL and length == 0:
            self._seal(conn)
        elif op == OP_STATUS and length == 0:
            self._answer(conn, ANSWER_OK, "sealed" if self.sealed else "unsealed")
        else:
            self._answer(conn, ANSWER_ERROR, "refused: malformed request")

    def _unlock(self, conn: socket.socket, length: int, peer: PeerCredentials) -> None:
        wait = self._throttle.wait_left()
        if wait > 0 and self.sealed:
            # Not even read: the password stays in the socket buffer and is dropped with the connection.
            log.info("unlock attempt from uid %d pid %d refused: throttled for %.0fs more", peer.uid, peer.pid, wait)
            self._answer(conn, ANSWER_ERROR, f"refused: too many wrong passwords; try again in {wait:.0f}s")
            return
        password = SecretBuffer(bytes(length))
        try:
            with memoryview(password.raw()) as target:
                recv_exact(conn, target)
            with self._callbacks:
                kind, message = self._check(password, peer)
            self._answer(conn, kind, message)
        finally:
            password.wipe()

    def _check(self, password: SecretBuffer, peer: PeerCredentials) -> tuple[bytes, str]:
        """Run the verifier (callbacks lock held); returns the answer to send."""
        if not self.sealed:
            return ANSWER_OK, "already unsealed"
        try:
            opened = self._verifier(password)
        except WrongPasswordError:
            opened = False
        except KmsError as exc:
            return ANSWER_ERROR, _first_line(exc)
        except Exception as exc:  # the daemon's bug must not kill the gate or leak a traceback to clients
            return ANSWER_ERROR, f"unlock failed ({type(exc).__name__})"
        if opened:
            self._throttle.succeeded()
            self._unsealed.set()
            return ANSWER_OK, "unsealed"
        return ANSWER_WRONG, self._wrong_password(peer)

    def _wrong_password(self, peer: PeerCredentials) -> str:
        delay = self._throttle.failed()
        log.warning(
            "unlock failed: wrong password from uid %d pid %d (%d in a row)%s",
            peer.uid,
            peer.pid,
            self._throttle.failures,
            f"; no password is checked for {delay:.0f}s" if delay > 0 else "",
        )
        if self._on_wrong_password is not None:
            with contextlib.suppress(Exception):  # a metric must never decide an unlock
                self._on_wrong_password()
        return WRONG_PASSWORD if delay <= 0 else f"{WRONG_PASSWORD}; try again in {delay:.0f}s"

    def _seal(self, conn: socket.socket) -> None:
        with self._callbacks:
            kind, message = self._seal_now()
        self._answer(conn, kind, message)

    def _seal_now(self) -> tuple[bytes, str]:
        if self.sealed:
            return ANSWER_OK, "already sealed"
        if self._on_seal is None:
            return ANSWER_ERROR, "this daemon cannot be sealed while running"
        try:
            self._on_seal()
        except Exception as exc:
            detail = _first_line(exc) if isinstance(exc, KmsError) else type(exc).__name__
            return ANSWER_ERROR, f"seal failed ({detail}); still unsealed"
        self._unsealed.clear()
        return ANSWER_OK, "sealed"
