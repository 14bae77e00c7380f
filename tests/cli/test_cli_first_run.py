"""What a new operator meets first (issue 17): one password rule on every path, a new store that says where it goes,
usage errors that point at the command's own help. The CLI runs as a real process; the prompt through a real pty."""

from __future__ import annotations

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from kms.hygiene import SecretBuffer
from kms.passwords import PASSWORD_RULE, password_problem
from tests.cli_helpers import PASSWORD, kms_env, run_kms, snapshot
from tests.conftest import REPO
from tests.store.test_migrate_upstream import write_upstream

ETH_KEY = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


# -- the rule ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "no password given"),
        ("short", "is too short"),
        ("seven77", "is too short"),
        ("pässwö", "is too short"),  # 6 characters, 8 bytes: characters are counted
        (" leading-space", "starts or ends with a space"),
        ("trailing-space ", "starts or ends with a space"),
        ("tab\tinside-it", "contains a control character"),
        ("nul\x00inside-it", "contains a control character"),
        ("eight888", None),
        ("pässwörtér", None),
        ("inner spaces are fine", None),
    ],
)
def test_the_password_rule(password: str, problem: str | None) -> None:
    assert password_problem(SecretBuffer.from_str(password)) == problem


@pytest.mark.parametrize("password", ["a", "short", " padded-password "])
def test_a_new_store_from_the_env_backend_follows_the_rule(home: Path, password: str) -> None:
    result = run_kms(["generatemanagedwallet", "ETH"], home, password=password)
    assert result.code == 2
    assert PASSWORD_RULE in result.error() and "nothing was created" in result.error()
    assert not (home / ".tatumrc" / "wallet.dat").exists()


def test_a_new_store_through_storemanagedprivatekey_follows_the_rule_too(home: Path) -> None:
    result = run_kms(["storemanagedprivatekey", "ETH"], home, stdin=ETH_KEY + "\n", password="short")
    assert result.code == 2 and "is too short" in result.error()
    assert not (home / ".tatumrc" / "wallet.dat").exists()


def test_passwd_follows_the_same_rule_and_says_when_no_password_was_given(home: Path) -> None:
    assert run_kms(["generatemanagedwallet", "ETH"], home).code == 0
    before = snapshot(home / ".tatumrc")
    empty = run_kms(["passwd"], home, stdin="")
    assert empty.code == 2 and empty.error() == "no password given; nothing was changed"
    for bad in ("short", " padded-password "):
        result = run_kms(["passwd"], home, stdin=bad + "\n")
        assert result.code == 2 and PASSWORD_RULE in result.error() and "nothing was changed" in result.error()
    assert snapshot(home / ".tatumrc") == before


def test_passwd_help_says_it_reads_standard_input_without_a_terminal(home: Path) -> None:
    shown = " ".join(run_kms(["passwd", "--help"], home).stdout.split())
    assert "standard input" in shown and "at least 8 characters" in shown


def test_migrate_makes_the_new_store_follow_the_rule(home: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.dat"
    wallets = {"11111111-2222-4333-8444-555555555555": {"chain": "ETH", "testnet": False, "privateKey": ETH_KEY}}
    write_upstream(old, wallets, b"short")
    result = run_kms(["migrate", "--from", str(old)], home, password="short")
    assert result.code == 2 and "is too short" in result.error()
    assert not (home / ".tatumrc").exists()
    write_upstream(old, wallets, PASSWORD.encode())
    assert run_kms(["migrate", "--from", str(old)], home).code == 0


# -- where a new store goes -------------------------------------------------------------------------------------------


def test_a_mistyped_path_is_refused_without_creating_anything(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "walets" / "deep" / "wallet.dat"
    result = run_kms(["generatemanagedwallet", "ETH", "--path", str(target)], home)
    assert result.code == 2
    assert str(target.parent) in result.error() and "--create-dirs" in result.error()
    assert not (tmp_path / "walets").exists()


def test_create_dirs_creates_them_and_the_new_store_is_announced(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "stores" / "deep" / "wallet.dat"
    result = run_kms(["generatemanagedwallet", "ETH", "--path", str(target), "--create-dirs"], home)
    assert result.code == 0, result.stderr
    assert f"creating a new wallet store at {target}" in result.stderr
    assert target.exists()
    again = run_kms(["generatemanagedwallet", "ETH", "--path", str(target)], home)
    assert again.code == 0 and "creating" not in again.stderr


def test_the_default_directory_is_still_created_and_announced(home: Path) -> None:
    result = run_kms(["generatemanagedwallet", "ETH"], home)
    assert result.code == 0, result.stderr
    assert f"creating a new wallet store at {home / '.tatumrc' / 'wallet.dat'}" in result.stderr


# -- the prompt, through a real terminal ------------------------------------------------------------------------------


def _at_terminal(args: list[str], home: Path, answers: dict[bytes, str]) -> tuple[int, str]:
    """Run ``kms ARGS`` with a pty as its controlling terminal (stdin, stdout, stderr and /dev/tty), typing
    ``answers[prompt]`` when a prompt shows; returns the exit code and everything the terminal showed."""
    env = {k: v for k, v in kms_env(home, password=None).items()}
    env["PYTHONPATH"] = str(REPO)
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "kms", *args], env)  # noqa: S606
    shown = b""
    pending = dict(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child exited
                break
            if not chunk:
                break
            shown += chunk
            for prompt in list(pending):
                if shown.rstrip().endswith(prompt.rstrip()):
                    os.write(master, pending.pop(prompt).encode() + b"\n")
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_a_new_store_at_the_prompt_says_where_and_the_rule_then_asks_to_repeat(home: Path) -> None:
    target = home / ".tatumrc" / "wallet.dat"
    code, shown = _at_terminal(
        ["generatemanagedwallet", "ETH"],
        home,
        {b"New store password:": "a-good-long-password", b"Repeat the new password:": "a-good-long-password"},
    )
    assert code == 0, shown
    flat = " ".join(shown.split())
    where = flat.index(f"creating a new wallet store at {target}")
    rule = flat.index(PASSWORD_RULE)
    first = flat.index("New store password:")
    assert where < first and rule < first < flat.index("Repeat the new password:")
    assert "a-good-long-password" not in shown  # no echo
    assert "Enter password to access wallet store" not in shown
    assert json.loads(shown[shown.index("{") :].replace("\r\n", "\n"))["signatureId"]
    assert target.exists()


def test_a_short_password_at_the_prompt_is_refused_before_the_repeat(home: Path) -> None:
    code, shown = _at_terminal(["generatemanagedwallet", "ETH"], home, {b"New store password:": "short"})
    assert code == 2, shown
    assert "is too short" in shown and "Repeat the new password" not in shown
    assert not (home / ".tatumrc" / "wallet.dat").exists()


def test_two_different_passwords_at_the_prompt_create_nothing(home: Path) -> None:
    code, shown = _at_terminal(
        ["generatemanagedwallet", "ETH"],
        home,
        {b"New store password:": "a-good-long-password", b"Repeat the new password:": "a-good-long-passwort"},
    )
    assert code == 2, shown
    assert "the two passwords differ" in shown
    assert not (home / ".tatumrc" / "wallet.dat").exists()


def test_passwd_at_the_prompt_states_the_rule_and_asks_to_repeat(home: Path) -> None:
    assert run_kms(["generatemanagedwallet", "ETH"], home).code == 0
    code, shown = _at_terminal(
        ["passwd"],
        home,
        {
            b"Enter password to access wallet store:": PASSWORD,
            b"New password:": "another-long-password",
            b"Repeat the new password:": "another-long-password",
        },
    )
    assert code == 0, shown
    flat = " ".join(shown.split())
    assert flat.index(PASSWORD_RULE) < flat.index("New password:") < flat.index("Repeat the new password:")
    assert run_kms(["export"], home, password="another-long-password").code == 0


# -- small things -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["getaddress", "only-one-argument"], "getaddress"),
        (["export", "--no-such-flag"], "export"),
        (["generatemanagedprivatekeybatch", "ETH"], "generatemanagedprivatekeybatch"),
        (["daemon", "--chain"], "daemon"),
    ],
)
def test_usage_errors_point_at_the_commands_own_help(home: Path, args: list[str], command: str) -> None:
    result = run_kms(args, home)
    assert result.code == 2
    assert result.error().endswith(f"(see 'kms {command} --help')")
    assert len(result.stderr.strip().splitlines()) == 1


def test_usage_errors_without_a_command_point_at_kms_help(home: Path) -> None:
    assert run_kms(["--no-such-flag"], home).error().endswith("(see 'kms --help')")


def test_the_supported_chain_list_is_sorted(home: Path) -> None:
    message = run_kms(["generatewallet", "NOPE"], home).error()
    listed = message.split("Supported: ")[1].split(", ")
    assert listed == sorted(listed) and "ETH" in listed and len(listed) >= 22


def test_the_daemons_supported_chain_list_is_sorted(home: Path) -> None:
    from kms.daemon.options import parse_chain_list

    with pytest.raises(Exception, match="Supported: ") as raised:
        parse_chain_list("NOPE", ["ETH", "BTC", "ADA"])
    assert str(raised.value).endswith("Supported: ADA, BTC, ETH")


@pytest.mark.parametrize(("command", "what"), [("storemanagedprivatekey", "key"), ("storemanagedwallet", "mnemonic")])
def test_empty_standard_input_says_nothing_was_given(home: Path, command: str, what: str) -> None:
    for stdin in ("", "\n", "   \n"):
        result = run_kms([command, "ETH"], home, stdin=stdin)
        assert result.code == 2
        assert result.error() == f"no {what} given; nothing was stored"
    assert not (home / ".tatumrc").exists()
