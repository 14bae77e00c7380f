"""The unseal socket: real Unix sockets, a gate on a thread, the client functions, and the permission checks."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.errors import SealError, WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.seal import (
    PeerCredentials,
    SealedGate,
    UnlockThrottle,
    default_socket_path,
    delay_after,
    is_sealed,
    peer_allowed,
    peer_credentials,
    seal,
    server_allowed,
    unlock,
)

GOOD = b"correct horse battery staple"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process under another uid")
NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def python_for_other_users() -> str:
    """An interpreter (and a checkout) another uid can use: the venv's may live under root's private home."""
    candidate = Path("/usr/bin/python3")
    reachable = all(os.stat(p).st_mode & stat.S_IXOTH for p in [REPO, *REPO.parents])
    if not candidate.exists() or not reachable:
        pytest.skip("no interpreter and checkout that another uid can reach")
    return str(candidate)


class Daemon:
    """What a daemon would hand the gate: a verifier that 'opens the store' and a seal callback."""

    def __init__(self) -> None:
        self.seen: list[SecretBuffer] = []
        self.attempts: list[bytes] = []
        self.seals = 0

    def verify(self, password: SecretBuffer) -> bool:
        self.seen.append(password)
        self.attempts.append(password.bytes())
        return password.bytes() == GOOD

    def on_seal(self) -> None:
        self.seals += 1


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary directory other uids can traverse (pytest's own tmp root is private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="kms-seal-"))
    os.chmod(path, 0o755)  # noqa: S103 - traversable, not writable, by others
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "kms"


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


@pytest.fixture
def gate(sock_dir: Path, daemon: Daemon) -> Iterator[SealedGate]:
    with SealedGate(sock_dir / "unseal.sock", daemon.verify, daemon.on_seal) as running:
        yield running


def test_socket_is_private(gate: SealedGate, sock_dir: Path) -> None:
    assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700
    st = os.lstat(gate.socket_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


def test_wrong_then_right_password(gate: SealedGate, daemon: Daemon) -> None:
    wrong = SecretBuffer(b"Tr0ub4dor&3")
    # Said once (it used to read "wrong password: wrong password; still sealed").
    with pytest.raises(WrongPasswordError, match=r"^wrong password; still sealed$"):
        unlock(gate.socket_path, wrong)
    assert wrong.wiped
    assert gate.sealed and is_sealed(gate.socket_path)
    assert not gate.wait_unsealed(timeout=0.01)

    right = SecretBuffer(GOOD)
    assert unlock(gate.socket_path, right) == "unsealed"
    assert right.wiped
    assert gate.wait_unsealed(timeout=5) and not is_sealed(gate.socket_path)
    assert daemon.attempts == [b"Tr0ub4dor&3", GOOD]
    # The gate wiped its copies once the verifier returned.
    assert all(buffer.wiped for buffer in daemon.seen)


def test_unlock_when_unsealed_checks_nothing(gate: SealedGate, daemon: Daemon) -> None:
    unlock(gate.socket_path, SecretBuffer(GOOD))
    assert unlock(gate.socket_path, SecretBuffer(b"anything")) == "already unsealed"
    assert daemon.attempts == [GOOD]


def test_seal_and_reseal(gate: SealedGate, daemon: Daemon) -> None:
    assert seal(gate.socket_path) == "already sealed"
    assert daemon.seals == 0
    unlock(gate.socket_path, SecretBuffer(GOOD))
    assert seal(gate.socket_path) == "sealed"
    assert daemon.seals == 1 and gate.sealed
    with pytest.raises(WrongPasswordError):
        unlock(gate.socket_path, SecretBuffer(b"nope"))
    assert unlock(gate.socket_path, SecretBuffer(GOOD)) == "unsealed"


def test_gate_that_cannot_seal(sock_dir: Path, daemon: Daemon) -> None:
    with SealedGate(sock_dir / "s.sock", daemon.verify, None, sealed=False) as gate:
        with pytest.raises(SealError, match="cannot be sealed while running"):
            seal(gate.socket_path)
        assert not gate.sealed


def test_verifier_errors_are_answered_not_fatal(sock_dir: Path) -> None:
    from kms.errors import StoreError

    def broken(password: SecretBuffer) -> bool:
        if password.bytes() == b"store":
            raise StoreError("wallet store /x is damaged")
        raise RuntimeError("bug with a secret inside: " + password.text())

    with SealedGate(sock_dir / "s.sock", broken) as gate:
        with pytest.raises(SealError, match="the daemon refused: wallet store /x is damaged"):
            unlock(gate.socket_path, SecretBuffer(b"store"))
        with pytest.raises(SealError, match=r"unlock failed \(RuntimeError\)") as caught:
            unlock(gate.socket_path, SecretBuffer(b"hunter2"))
        assert "hunter2" not in str(caught.value)
        assert gate.sealed


def test_client_wipes_even_without_a_daemon(tmp_path: Path) -> None:
    password = SecretBuffer(GOOD)
    with pytest.raises(SealError, match="no unseal socket at"):
        unlock(tmp_path / "absent.sock", password)
    assert password.wiped


def test_close_removes_the_socket(sock_dir: Path, daemon: Daemon) -> None:
    gate = SealedGate(sock_dir / "s.sock", daemon.verify)
    gate.start()
    gate.close()
    assert not gate.socket_path.exists()


def test_stale_socket_is_replaced_but_a_live_one_is_not(sock_dir: Path, daemon: Daemon) -> None:
    sock_dir.mkdir(parents=True, mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_dir / "s.sock"))
    stale.close()  # bound, never listening: what a crashed daemon leaves behind
    with SealedGate(sock_dir / "s.sock", daemon.verify) as first:
        with pytest.raises(SealError, match="another process is already listening"):
            SealedGate(sock_dir / "s.sock", daemon.verify).start()
        assert is_sealed(first.socket_path)


def test_gate_refuses_unsafe_places(tmp_path: Path, daemon: Daemon) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 - deliberately unsafe, to be refused
    with pytest.raises(SealError, match=r"it is writable by group or others \(mode 0777\)"):
        SealedGate(shared / "s.sock", daemon.verify).start()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "s.sock").write_text("not a socket")
    with pytest.raises(SealError, match="exists and is not a socket"):
        SealedGate(private / "s.sock", daemon.verify).start()
    assert (private / "s.sock").read_text() == "not a socket"


def test_client_refuses_a_socket_others_can_use(gate: SealedGate, daemon: Daemon, sock_dir: Path) -> None:
    os.chmod(gate.socket_path, 0o666)  # noqa: S103 - deliberately unsafe, to be refused
    password = SecretBuffer(GOOD)
    with pytest.raises(SealError, match=r"accessible by group or others \(mode 0666\)"):
        unlock(gate.socket_path, password)
    assert password.wiped
    os.chmod(gate.socket_path, 0o600)
    os.chmod(sock_dir, 0o733)  # noqa: S103 - deliberately unsafe, to be refused
    with pytest.raises(SealError, match="its directory is writable by group or others"):
        unlock(gate.socket_path, SecretBuffer(GOOD))
    assert daemon.attempts == []  # nothing was ever sent


def test_peer_rules_with_fake_credentials() -> None:
    daemon_uid = 1000
    assert peer_allowed(PeerCredentials(pid=1, uid=1000, gid=1000), daemon_uid)
    assert peer_allowed(PeerCredentials(pid=1, uid=0, gid=0), daemon_uid)
    assert not peer_allowed(PeerCredentials(pid=1, uid=1001, gid=1000), daemon_uid)
    # client side: the listener must own the socket and be the client itself or root; root may unlock another
    # user's daemon only when told that uid explicitly (--peer-uid).
    assert server_allowed(PeerCredentials(1, 1000, 1000), socket_owner=1000, client_uid=1000)
    assert server_allowed(PeerCredentials(1, 0, 0), socket_owner=0, client_uid=1000)
    assert not server_allowed(PeerCredentials(1, 1000, 1000), socket_owner=1000, client_uid=0)
    assert server_allowed(PeerCredentials(1, 1000, 1000), socket_owner=1000, client_uid=0, peer_uid=1000)
    assert not server_allowed(PeerCredentials(1, 1001, 1001), socket_owner=1001, client_uid=0, peer_uid=1000)
    assert not server_allowed(PeerCredentials(1, 1001, 1001), socket_owner=1001, client_uid=1000)
    assert not server_allowed(PeerCredentials(1, 1001, 1001), socket_owner=1000, client_uid=1000)


def test_peer_credentials_of_a_real_connection(gate: SealedGate) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(gate.socket_path))
        creds = peer_credentials(client)
    assert (creds.uid, creds.gid) == (os.geteuid(), os.getegid()) and creds.pid == os.getpid()


def test_malformed_requests_are_refused(gate: SealedGate) -> None:
    for frame in (struct.pack(">cI", b"U", 0), struct.pack(">cI", b"U", 70000), struct.pack(">cI", b"X", 0)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(gate.socket_path))
            client.sendall(frame)
            assert client.recv(1) == b"E"
    assert gate.sealed and is_sealed(gate.socket_path)


def test_default_socket_path() -> None:
    assert default_socket_path({"TATUM_KMS_UNSEAL_SOCKET": "/srv/kms/u.sock"}) == Path("/srv/kms/u.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path("/run/user/1000/kms/unseal.sock")
    expected = Path("/run/kms/unseal.sock") if os.geteuid() == 0 else Path("~/.tatumrc/run/unseal.sock").expanduser()
    assert default_socket_path({}) == expected


RAW_UNLOCK = textwrap.dedent(
    """
    import socket, struct, sys
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(sys.argv[1])
    try:
        client.sendall(struct.pack(">cI", b"U", 4) + b"abcd")
    except BrokenPipeError:
        pass  # refused before the request was read; the answer is already queued
    kind, length = struct.unpack(">cI", client.recv(5))
    print(kind.decode(), client.recv(length).decode())
    """
)


@ROOT_ONLY
def test_daemon_refuses_a_peer_of_another_uid(public_tmp: Path, daemon: Daemon) -> None:
    with SealedGate(public_tmp / "run" / "unseal.sock", daemon.verify) as gate:
        # Simulate a mis-set socket (everyone may connect): SO_PEERCRED still keeps other users out.
        os.chmod(gate.socket_path.parent, 0o755)  # noqa: S103 - deliberately unsafe, to be refused
        os.chmod(gate.socket_path, 0o666)  # noqa: S103 - deliberately unsafe, to be refused
        result = subprocess.run(
            [python_for_other_users(), "-c", RAW_UNLOCK, str(gate.socket_path)],
            user=NOBODY,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.stdout.strip() == f"E refused: uid {NOBODY} may not unseal or seal this daemon", result.stderr
        assert daemon.attempts == [] and gate.sealed


ROGUE_LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sys.argv[1]); server.listen(1)
    print("listening", flush=True)
    conn, _ = server.accept()
    conn.settimeout(2)
    try:
        data = conn.recv(100)
    except OSError:
        data = b""
    print("received", len(data), flush=True)
    """
)

UNLOCK_AS_CLIENT = textwrap.dedent(
    """
    import sys
    from kms.hygiene import SecretBuffer
    from kms.seal import unlock
    from kms.errors import SealError
    try:
        unlock(sys.argv[1], SecretBuffer(b"correct horse battery staple"))
    except SealError as exc:
        print(exc)
    """
)


@ROOT_ONLY
def test_client_refuses_a_listener_of_another_uid(public_tmp: Path) -> None:
    """A socket that looks like the client's own, but whose listening process runs as someone else."""
    listener_uid, client_uid = NOBODY - 1, NOBODY
    run_dir = public_tmp / "run"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, listener_uid, listener_uid)
    path = run_dir / "unseal.sock"
    rogue = subprocess.Popen(
        [python_for_other_users(), "-c", ROGUE_LISTENER, str(path)],
        user=listener_uid,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert rogue.stdout is not None and rogue.stdout.readline().strip() == "listening"
        os.chown(run_dir, client_uid, client_uid)
        os.chown(path, client_uid, client_uid)
        os.chmod(path, 0o600)
        client = subprocess.run(
            [python_for_other_users(), "-c", UNLOCK_AS_CLIENT, str(path)],
            user=client_uid,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert f"the listening process runs as uid {listener_uid}" in client.stdout, client.stderr
        out, _ = rogue.communicate(timeout=10)
        assert out.strip() == "received 0"  # the password never left the client
    finally:
        rogue.kill()
        rogue.wait()


def test_default_socket_path_ignores_a_runtime_dir_of_another_user(tmp_path: Path) -> None:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    owner = os.stat(runtime).st_uid
    settings = {"XDG_RUNTIME_DIR": str(runtime)}
    assert default_socket_path(settings, uid=owner) == runtime / "kms" / "unseal.sock"
    # Left behind by `su` without `-` or `sudo -E`: someone else's directory is never used for our socket.
    other = owner + 4242
    assert default_socket_path(settings, uid=other) == Path("~/.tatumrc/run/unseal.sock").expanduser()
    if os.geteuid() == 0:
        os.chown(runtime, NOBODY, NOBODY)
        assert default_socket_path(settings) == Path("/run/kms/unseal.sock")
    (tmp_path / "file").write_text("")
    assert default_socket_path({"XDG_RUNTIME_DIR": str(tmp_path / "file")}, uid=owner) != tmp_path / "file" / "kms"


def test_unlock_delay_grows_and_is_bounded() -> None:
    assert [delay_after(n) for n in range(1, 9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert delay_after(10**6) == 60.0  # bounded, and no overflow


def test_unlock_throttle_with_a_fake_clock() -> None:
    now = [100.0]
    throttle = UnlockThrottle(clock=lambda: now[0])
    assert throttle.failed() == 0.0 and throttle.wait_left() == 0.0  # one typo costs nothing
    assert throttle.failed() == 1.0 and throttle.wait_left() == 1.0
    now[0] += 0.5
    assert throttle.wait_left() == 0.5
    now[0] += 0.5
    assert throttle.wait_left() == 0.0
    assert throttle.failed() == 2.0 and throttle.failures == 3
    throttle.succeeded()
    assert throttle.failures == 0 and throttle.wait_left() == 0.0 and throttle.failed() == 0.0


def test_wrong_passwords_are_logged_counted_and_slowed(
    sock_dir: Path, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    counted: list[int] = []
    caplog.set_level("INFO", logger="kms.seal")
    with SealedGate(
        sock_dir / "s.sock",
        daemon.verify,
        throttle=UnlockThrottle(clock=lambda: now[0]),
        on_wrong_password=lambda: counted.append(1),
    ) as gate:
        with pytest.raises(WrongPasswordError, match=r"^wrong password; still sealed$"):
            unlock(gate.socket_path, SecretBuffer(b"guess-one"))
        with pytest.raises(WrongPasswordError, match=r"^wrong password; still sealed; try again in 1s$"):
            unlock(gate.socket_path, SecretBuffer(b"guess-two"))
        # Inside the window even the right password is not checked (the store KDF does not run).
        with pytest.raises(SealError, match="too many wrong passwords; try again in 1s"):
            unlock(gate.socket_path, SecretBuffer(GOOD))
        assert daemon.attempts == [b"guess-one", b"guess-two"] and gate.sealed
        now[0] += 1.0
        assert unlock(gate.socket_path, SecretBuffer(GOOD)) == "unsealed"
    assert counted == [1, 1]
    failures = [r.getMessage() for r in caplog.records if "unlock failed: wrong password" in r.getMessage()]
    assert len(failures) == 2
    assert all(f"from uid {os.geteuid()} pid {os.getpid()}" in line for line in failures)
    assert any("throttled" in r.getMessage() for r in caplog.records)
    assert not any(b"guess" in r.getMessage().encode() or b"staple" in r.getMessage().encode() for r in caplog.records)


def test_a_broken_failure_counter_does_not_decide_the_unlock(sock_dir: Path, daemon: Daemon) -> None:
    def broken() -> None:
        raise RuntimeError("metrics down")

    with SealedGate(sock_dir / "s.sock", daemon.verify, on_wrong_password=broken) as gate:
        with pytest.raises(WrongPasswordError):
            unlock(gate.socket_path, SecretBuffer(b"nope"))
        assert unlock(gate.socket_path, SecretBuffer(GOOD)) == "unsealed"


ROGUE_LISTENER_LOOP = textwrap.dedent(
    """
    import os, socket, sys
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o600); server.listen(4)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        conn.settimeout(2)
        data = b""
        try:
            while len(data) < 5 + 28:
                chunk = conn.recv(100)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        print("received", len(data), flush=True)
        conn.close()
    """
)


@ROOT_ONLY
def test_root_unlock_ignores_a_runtime_dir_of_another_user(public_tmp: Path, tmp_path: Path) -> None:
    """Issue: root's `kms unlock`, with XDG_RUNTIME_DIR left pointing at uid 65534's directory (su without -,
    sudo -E), sent the password to a listener run by 65534."""
    runtime = public_tmp / "xdg"
    (runtime / "kms").mkdir(parents=True, mode=0o700)
    os.chmod(runtime, 0o700)
    for directory in (runtime, runtime / "kms"):
        os.chown(directory, NOBODY, NOBODY)
    path = runtime / "kms" / "unseal.sock"
    rogue = subprocess.Popen(
        [python_for_other_users(), "-c", ROGUE_LISTENER_LOOP, str(path)], user=NOBODY, stdout=subprocess.PIPE, text=True
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(runtime),
        "TATUM_KMS_PASSWORD": GOOD.decode(),
    }

    def kms_unlock(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kms", "unlock", "--backend", "env", *flags],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    try:
        assert rogue.stdout is not None and rogue.stdout.readline().strip() == "listening"
        by_default = kms_unlock()
        # Root's own default place instead (nothing listens there in a test).
        assert by_default.returncode != 0 and "/run/kms/unseal.sock" in by_default.stderr, by_default.stderr
        named = kms_unlock("--socket", str(path))
        assert named.returncode != 0 and f"owned by uid {NOBODY}" in named.stderr, named.stderr
        # Told explicitly, root may unlock another user's daemon.
        explicit = kms_unlock("--socket", str(path), "--peer-uid", str(NOBODY))
        assert "the daemon closed the connection" in explicit.stderr, explicit.stderr
    finally:
        rogue.kill()
        out, _ = rogue.communicate(timeout=10)
    # One connection only, the explicit one: the two before it sent nothing.
    assert out.splitlines() == [f"received {5 + len(GOOD)}"], out
