"""env: the password from TATUM_KMS_PASSWORD, or from the file named by TATUM_KMS_PASSWORD_FILE."""

from __future__ import annotations

import os
import stat

from backends.base import Settings
from kms.errors import ProviderError
from kms.hygiene import SecretBuffer


class EnvProvider:
    name = "env"

    def __init__(self, settings: Settings) -> None:
        self._password = settings.get("TATUM_KMS_PASSWORD")
        self._file = settings.get("TATUM_KMS_PASSWORD_FILE")

    def fetch(self) -> SecretBuffer:
        if self._file:
            return _read_password_file(self._file)
        if self._password:
            return SecretBuffer.from_str(self._password)
        raise ProviderError("env: neither TATUM_KMS_PASSWORD nor TATUM_KMS_PASSWORD_FILE is set")


def _read_password_file(path: str) -> SecretBuffer:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ProviderError(f"env: cannot open TATUM_KMS_PASSWORD_FILE: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ProviderError(
                f"env: TATUM_KMS_PASSWORD_FILE is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                "chmod 600 it"
            )
        buf = bytearray(os.fstat(fd).st_size + 1)
        n = os.readv(fd, [buf])
    finally:
        os.close(fd)
    # A trailing newline is a file-editing artefact, not part of the password.
    while n and buf[n - 1] in (0x0A, 0x0D):
        n -= 1
    secret = SecretBuffer(memoryview(buf)[:n])
    buf[:] = bytes(len(buf))
    if not secret:
        raise ProviderError("env: TATUM_KMS_PASSWORD_FILE is empty")
    return secret
