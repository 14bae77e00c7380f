"""env: the password from TATUM_KMS_PASSWORD, or from the file named by TATUM_KMS_PASSWORD_FILE.

The file form suits a mounted Kubernetes secret or a systemd credential (``LoadCredential=``): a relative name is
looked up in ``$CREDENTIALS_DIRECTORY``. The file must be a regular file owned by this user or root, unreadable by
others, and readable by its group only when that group is one of this process's own (a Kubernetes ``fsGroup``).
"""

from __future__ import annotations

import os

from backends.base import Settings, setting
from kms.errors import ProviderError
from kms.hygiene import SecretBuffer, zero_bytearray
from kms.settings import private_file_problem

SETTINGS: tuple[str, ...] = ("TATUM_KMS_PASSWORD", "TATUM_KMS_PASSWORD_FILE", "CREDENTIALS_DIRECTORY")
"""The settings this backend reads (checkconfig shows them; the README documents them)."""
MAX_PASSWORD_FILE = 64 * 1024


class EnvProvider:
    name = "env"

    def __init__(self, settings: Settings) -> None:
        # Only presence is checked here: the value is read from the mapping when fetched, not kept as an attribute.
        self._settings = settings
        self._file = setting(settings, "TATUM_KMS_PASSWORD_FILE")
        self._credentials_dir = setting(settings, "CREDENTIALS_DIRECTORY")

    def fetch(self) -> SecretBuffer:
        if self._file:
            return read_password_file(resolve_password_file(self._file, self._credentials_dir))
        password = self._settings.get("TATUM_KMS_PASSWORD")
        if password:
            return SecretBuffer.from_str(password)
        raise ProviderError("env: neither TATUM_KMS_PASSWORD nor TATUM_KMS_PASSWORD_FILE is set")


def resolve_password_file(name: str, credentials_dir: str | None) -> str:
    if os.path.isabs(name):
        return name
    if credentials_dir:
        return os.path.join(credentials_dir, name)
    raise ProviderError(
        "env: TATUM_KMS_PASSWORD_FILE must be an absolute path (or a credential name with $CREDENTIALS_DIRECTORY set)"
    )


def _check_file_access(st: os.stat_result) -> None:
    problem = private_file_problem(st, readable_matters=True)
    if problem:
        hint = " (in Kubernetes: defaultMode 0400, or 0440 with the pod's fsGroup)" if "readable" in problem else ""
        raise ProviderError(f"env: TATUM_KMS_PASSWORD_FILE {problem}{hint}")


def read_password_file(path: str) -> SecretBuffer:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProviderError(f"env: cannot open TATUM_KMS_PASSWORD_FILE: {exc.strerror}") from None
    buf = bytearray(MAX_PASSWORD_FILE + 1)
    try:
        st = os.fstat(fd)
        _check_file_access(st)
        n = 0
        with memoryview(buf) as view:
            while n < len(buf):
                got = os.readv(fd, [view[n:]])
                if got == 0:
                    break
                n += got
        if n > MAX_PASSWORD_FILE:
            raise ProviderError("env: TATUM_KMS_PASSWORD_FILE is too large to be a password")
        # A trailing newline is a file-editing artefact, not part of the password.
        while n and buf[n - 1] in (0x0A, 0x0D):
            n -= 1
        if n == 0:
            raise ProviderError("env: TATUM_KMS_PASSWORD_FILE is empty")
        with memoryview(buf) as whole:
            return SecretBuffer(whole[:n])
    finally:
        os.close(fd)
        zero_bytearray(buf)
