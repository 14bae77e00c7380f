"""Creating a store from the CLI: where it goes, saying so, and the password it gets (asked twice at a terminal).

A mistyped ``--path`` must not quietly become a second, empty store: creating one is announced on stderr with its
path, and a directory that does not exist is only created when asked (``--create-dirs``), except the default
``~/.tatumrc/``, which is created as upstream does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from backends import PasswordProvider
from backends.prompt import PromptProvider
from kms.errors import UsageError
from kms.hygiene import SecretBuffer
from kms.passwords import PASSWORD_RULE, check_new_password
from kms.store import DEFAULT_STORE_PATH

NEW_PASSWORD_PROMPT = "New store password: "  # noqa: S105 - a prompt, not a password
REPEAT_PASSWORD_PROMPT = "Repeat the new password: "  # noqa: S105 - a prompt, not a password
NOTHING_CREATED = "nothing was created"


def check_store_directory(path: Path, *, create_dirs: bool) -> None:
    """Refuse a new store in a directory that does not exist, unless asked to create it or it is the default one."""
    directory = path.parent
    if create_dirs or directory.is_dir() or directory == DEFAULT_STORE_PATH.parent:
        return
    if directory.exists():
        raise UsageError(f"{directory} is not a directory; {NOTHING_CREATED}")
    raise UsageError(
        f"directory {directory} does not exist; check --path, or add --create-dirs to create it; {NOTHING_CREATED}"
    )


def announce(path: Path | str) -> None:
    sys.stderr.write(f"kms: creating a new wallet store at {path}\n")
    sys.stderr.flush()


def new_store_password(provider: PasswordProvider, path: Path | str) -> SecretBuffer:
    """The password for a new store at ``path``, checked against the password rule; the creation is announced.

    At the prompt the rule is stated before asking, and the password is asked twice with two different prompts.
    """
    if not getattr(provider, "interactive", False):
        password = provider.fetch()
        try:
            check_new_password(password, NOTHING_CREATED)
        except BaseException:
            password.wipe()
            raise
        announce(path)
        return password
    announce(path)
    sys.stderr.write(f"kms: its password needs {PASSWORD_RULE}\n")
    sys.stderr.flush()
    password = _ask(provider, NEW_PASSWORD_PROMPT)
    try:
        check_new_password(password, NOTHING_CREATED)
        with _ask(provider, REPEAT_PASSWORD_PROMPT) as again:
            if again != password:
                raise UsageError(f"the two passwords differ; {NOTHING_CREATED}")
    except BaseException:
        password.wipe()
        raise
    return password


def _ask(provider: PasswordProvider, prompt: str) -> SecretBuffer:
    if isinstance(provider, PromptProvider):
        return provider.ask(prompt)
    return provider.fetch()


__all__ = ["NEW_PASSWORD_PROMPT", "REPEAT_PASSWORD_PROMPT", "announce", "check_store_directory", "new_store_password"]
