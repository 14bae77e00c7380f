"""Progress of long CLI work: on stderr when stderr is a terminal (a real pty), nothing otherwise, and stdout the same
byte for byte either way."""

from __future__ import annotations

import io
import os
import pty
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kms.cli.progress import LARGE, Progress
from kms.hygiene import SecretBuffer
from kms.store import KdfParams, WalletStore
from tests.cli_helpers import PASSWORD, kms_env

WALLETS = LARGE + 50
ERASE = "\r\x1b[K"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counted_progress_on_a_terminal() -> None:
    stream = Terminal()
    with Progress("generating keys", WALLETS, stream=stream) as progress:
        assert list(progress.wrap(range(WALLETS))) == list(range(WALLETS))
    text = stream.getvalue()
    assert text.startswith(ERASE + f"generating keys: 0/{WALLETS} (0%)")
    assert f"generating keys: {WALLETS}/{WALLETS} (100%)" in text
    assert text.endswith(ERASE), "the line is erased at the end"
    assert "\n" not in text


def test_a_step_shows_its_text() -> None:
    stream = Terminal()
    with Progress("export", WALLETS, stream=stream) as progress, progress.step(f"decrypting {WALLETS} wallets"):
        pass
    assert f"export: decrypting {WALLETS} wallets... 0s" in stream.getvalue()


def test_silent_when_not_a_terminal_or_small() -> None:
    pipe = io.StringIO()
    with Progress("export", WALLETS, stream=pipe) as progress, progress.step("decrypting"):
        list(progress.wrap(range(3)))
    assert pipe.getvalue() == ""
    small = Terminal()
    with Progress("export", LARGE - 1, stream=small) as progress:
        list(progress.wrap(range(LARGE - 1)))
    assert small.getvalue() == ""


def test_a_terminal_that_goes_away_does_not_fail_the_work() -> None:
    class Gone(Terminal):
        def write(self, text: str) -> int:
            raise OSError("EIO")

    with Progress("export", WALLETS, stream=Gone()) as progress:
        assert sum(progress.wrap(range(WALLETS))) == sum(range(WALLETS))
    assert not progress.shown


# -- the real CLI, stderr on a pty or a pipe -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "wallet.dat"
    with WalletStore.open(
        path, SecretBuffer(PASSWORD), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as store:
        store.add_many(("ETH", True, {"privateKey": "0x" + secrets.token_hex(32)}) for _ in range(WALLETS))
    return path


def run(args: list[str], home: Path, *, stderr_on_pty: bool, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """``kms ARGS`` with stdout on a pipe and stderr on a pty (or a pipe); returns (code, stdout, stderr)."""
    env = kms_env(home)
    if not stderr_on_pty:
        proc = subprocess.run(
            [sys.executable, "-m", "kms", *args], input=stdin, capture_output=True, env=env, timeout=300
        )
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the pty
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kms", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, env=env,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        out, _ = proc.communicate(stdin, timeout=300)
        reader.join(timeout=30)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return proc.returncode, out, b"".join(chunks)


def test_export_of_a_large_store_shows_progress_on_a_terminal_only(large_store: Path, tmp_path: Path) -> None:
    args = ["export", "--path", str(large_store)]
    code, out_tty, err_tty = run(args, tmp_path, stderr_on_pty=True)
    assert code == 0, err_tty
    assert f"export: decrypting {WALLETS} wallets...".encode() in err_tty
    code, out_pipe, err_pipe = run(args, tmp_path, stderr_on_pty=False)
    assert code == 0, err_pipe
    assert out_pipe == out_tty, "stdout is the same byte for byte"
    assert out_pipe.decode().count('"privateKey"') == WALLETS
    assert b"export:" not in err_pipe and b"\r" not in err_pipe and b"\x1b" not in err_pipe


def test_batch_generation_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    args = ["generatemanagedprivatekeybatch", "ETH", str(WALLETS), "--testnet", "--path"]
    code, out_tty, err_tty = run([*args, str(tmp_path / "a.dat")], tmp_path, stderr_on_pty=True)
    assert code == 0, err_tty
    assert f"generating {WALLETS} ETH keys: {WALLETS}/{WALLETS} (100%)".encode() in err_tty
    assert len(out_tty.splitlines()) == WALLETS
    code, out_pipe, err_pipe = run([*args, str(tmp_path / "b.dat")], tmp_path, stderr_on_pty=False)
    assert code == 0, err_pipe
    assert len(out_pipe.splitlines()) == WALLETS
    assert b"generating" not in err_pipe and b"\r" not in err_pipe


def test_passwd_on_a_large_store_shows_progress_on_a_terminal(large_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "wallet.dat"
    copy.write_bytes(large_store.read_bytes())
    copy.chmod(0o600)  # a store readable by others is refused
    new_password = "a-new-password-for-the-copy"
    # No terminal on stdin: the new password is read from it.
    code, out, err = run(["passwd", "--path", str(copy)], tmp_path, stderr_on_pty=True, stdin=new_password.encode())
    assert code == 0, err
    assert f"passwd: re-encrypting {WALLETS} wallets...".encode() in err
    assert b'"passwordChanged": true' in out
    with WalletStore.open(copy, SecretBuffer(new_password), allow_weak_kdf=True) as store:
        assert sum(store.counts().values()) == WALLETS


def test_store_copy_of_a_large_store_shows_progress_on_a_terminal_only(large_store: Path, tmp_path: Path) -> None:
    copies = []
    for name, on_pty in (("tty.dat", True), ("pipe.dat", False)):
        target = tmp_path / name
        code, out, err = run(
            ["store", "copy", "--from", str(large_store), "--to", str(target)], tmp_path, stderr_on_pty=on_pty
        )
        assert code == 0, err
        copies.append((out.replace(name.encode(), b"X"), err))
        with WalletStore.open(target, SecretBuffer(PASSWORD), allow_weak_kdf=True) as copied:
            assert sum(copied.counts().values()) == WALLETS
    (out_tty, err_tty), (out_pipe, err_pipe) = copies
    assert f"store copy: copying and verifying {WALLETS} wallets...".encode() in err_tty
    assert out_pipe == out_tty, "stdout is the same byte for byte (but for the target's name)"
    assert b"store copy:" not in err_pipe and b"\r" not in err_pipe and b"\x1b" not in err_pipe
