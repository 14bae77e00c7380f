"""The one rule a new store password must meet, whichever path sets it (a new store, `kms passwd`, `kms migrate`).

Checked on the bytes in the wipeable buffer: no copy of the password is made to check it.
"""

from __future__ import annotations

from kms.errors import UsageError
from kms.hygiene import SecretBuffer

MIN_PASSWORD_CHARACTERS = 8

PASSWORD_RULE = f"at least {MIN_PASSWORD_CHARACTERS} characters, no control characters, and no spaces at either end"
"""The rule in words, shown before a new password is asked for and in every refusal."""

_SPACE_AT_END = frozenset(b" \t")


def password_problem(password: SecretBuffer) -> str | None:
    """Why ``password`` may not become a store password, or None when it meets PASSWORD_RULE.

    Control characters cannot be put in an environment variable (NUL) or typed the same way at every terminal;
    spaces at either end are trimmed by env files and secret-manager consoles, so a store made with one would not
    open once its password moved to a backend.
    """
    if not password:
        return "no password given"
    with password.view() as view:
        if any(byte < 0x20 or byte == 0x7F for byte in view):
            return "contains a control character"
        if view[0] in _SPACE_AT_END or view[-1] in _SPACE_AT_END:
            return "starts or ends with a space"
        # Characters, not bytes: a UTF-8 continuation byte (10xxxxxx) does not start a character.
        characters = sum(1 for byte in view if byte & 0xC0 != 0x80)
    if characters < MIN_PASSWORD_CHARACTERS:
        return "is too short"
    return None


def check_new_password(password: SecretBuffer, consequence: str) -> None:
    """Raise a UsageError saying what is wrong and ``consequence`` (e.g. "nothing was changed") unless the password
    meets PASSWORD_RULE."""
    problem = password_problem(password)
    if problem == "no password given":
        raise UsageError(f"no password given; {consequence}")
    if problem:
        raise UsageError(f"the new password {problem}: a store password needs {PASSWORD_RULE}; {consequence}")


__all__ = ["MIN_PASSWORD_CHARACTERS", "PASSWORD_RULE", "check_new_password", "password_problem"]
