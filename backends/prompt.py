"""prompt: the password typed on the controlling terminal, without echo."""

from __future__ import annotations

import os
import sys

from backends.base import Settings
from kms.errors import ProviderError
from kms.hygiene import SecretBuffer
from kms.terminal import read_secret_line

SETTINGS: tuple[str, ...] = ()
"""The settings this backend reads (checkconfig shows them; the README documents them): none."""

DEFAULT_PROMPT = "Enter password to access wallet store: "


class PromptProvider:
    name = "prompt"
    interactive = True  # a person types it: callers creating a store ask twice

    def __init__(self, settings: Settings, prompt: str = DEFAULT_PROMPT) -> None:
        self._prompt = prompt

    def fetch(self) -> SecretBuffer:
        return self.ask(self._prompt)

    def ask(self, prompt: str) -> SecretBuffer:
        """The password typed after ``prompt`` (a new store asks for it, then to repeat it, in other words)."""
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd < 0 and not sys.stdin.isatty():
            raise ProviderError(
                "prompt: no terminal to ask for the password; choose another backend with --backend env "
                "(TATUM_KMS_PASSWORD or TATUM_KMS_PASSWORD_FILE), vgs, azure, aws or vault, "
                "or start the daemon sealed and run 'kms unlock'"
            )
        try:
            secret = read_secret_line(prompt, fd if fd >= 0 else sys.stdin.fileno())
        finally:
            if fd >= 0:
                os.close(fd)
        if not secret:
            raise ProviderError("prompt: empty password")
        return secret
