"""env and prompt providers: variables, password files (Kubernetes secrets, systemd credentials), the terminal."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from backends import get_provider
from kms.errors import ProviderError
from kms.terminal import read_secret_line

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a file to another user or group")


def password_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_password_from_the_variable() -> None:
    with get_provider("env", {"TATUM_KMS_PASSWORD": "pässword"}).fetch() as secret:
        assert secret.bytes() == "pässword".encode()
    assert secret.wiped


def test_nothing_set_is_explained() -> None:
    with pytest.raises(ProviderError, match="neither TATUM_KMS_PASSWORD nor TATUM_KMS_PASSWORD_FILE is set"):
        get_provider("env", {"TATUM_KMS_PASSWORD": ""}).fetch()


def test_password_file_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = password_file(tmp_path / "password", b"from a file \r\n")
    settings = {"TATUM_KMS_PASSWORD_FILE": str(path), "TATUM_KMS_PASSWORD": "ignored when a file is named"}
    assert get_provider("env", settings).fetch().bytes() == b"from a file "


def test_kubernetes_style_symlinked_secret(tmp_path: Path) -> None:
    data = tmp_path / "..2024_01_01"
    data.mkdir()
    password_file(data / "password", b"k8s secret", 0o400)
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "password").symlink_to("..data/password")
    assert get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(tmp_path / "password")}).fetch().bytes() == b"k8s secret"


def test_systemd_credential_name(tmp_path: Path) -> None:
    password_file(tmp_path / "kms-password", b"systemd credential", 0o400)
    settings = {"TATUM_KMS_PASSWORD_FILE": "kms-password", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert get_provider("env", settings).fetch().bytes() == b"systemd credential"
    with pytest.raises(ProviderError, match="must be an absolute path"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": "kms-password"}).fetch()


def test_files_others_can_read_are_refused(tmp_path: Path) -> None:
    path = password_file(tmp_path / "password", b"secret", 0o644)
    with pytest.raises(ProviderError, match=r"is readable by others \(mode 0644\); chmod 600 it \(in Kubernetes") as e:
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(path)}).fetch()
    assert "secret" not in str(e.value).replace("Kubernetes", "")
    os.chmod(path, 0o620)
    with pytest.raises(ProviderError, match="is writable by group or others"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(path)}).fetch()


def test_group_read_is_allowed_only_for_our_own_group(tmp_path: Path) -> None:
    path = password_file(tmp_path / "password", b"fsGroup secret", 0o440)
    assert os.stat(path).st_gid in {os.getegid(), *os.getgroups()}
    assert get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(path)}).fetch().bytes() == b"fsGroup secret"


@ROOT_ONLY
def test_foreign_group_or_owner_is_refused(tmp_path: Path) -> None:
    path = password_file(tmp_path / "password", b"secret", 0o440)
    os.chown(path, 0, 54321)
    with pytest.raises(ProviderError, match=r"is readable by group 54321 \(mode 0440\)"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(path)}).fetch()
    os.chown(path, 54321, 0)
    os.chmod(path, 0o400)
    with pytest.raises(ProviderError, match=r"is owned by another user \(uid 54321\)"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(path)}).fetch()


def test_odd_files_are_refused(tmp_path: Path) -> None:
    empty = password_file(tmp_path / "empty", b"\n")
    with pytest.raises(ProviderError, match="is empty"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(empty)}).fetch()
    huge = password_file(tmp_path / "huge", b"x" * (64 * 1024 + 1))
    with pytest.raises(ProviderError, match="too large to be a password"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(huge)}).fetch()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ProviderError, match="is not a regular file"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(fifo)}).fetch()
    with pytest.raises(ProviderError, match="cannot open TATUM_KMS_PASSWORD_FILE: No such file"):
        get_provider("env", {"TATUM_KMS_PASSWORD_FILE": str(tmp_path / "absent")}).fetch()


def test_terminal_read_turns_echo_off(tmp_path: Path) -> None:
    master, slave = os.openpty()
    shown = bytearray()

    def operator() -> None:
        while b"Password: " not in shown:
            shown.extend(os.read(master, 1024))
        os.write(master, b"typed secret\n")
        shown.extend(os.read(master, 1024))

    typing = threading.Thread(target=operator)
    typing.start()
    try:
        secret = read_secret_line("Password: ", slave)
    finally:
        typing.join(timeout=10)
        os.close(slave)
        os.close(master)
    assert secret.bytes() == b"typed secret"
    assert bytes(shown).startswith(b"Password: ")
    assert b"typed secret" not in shown
