"""Settings: the process environment merged with an env file (upstream's ``--envFile``).

As upstream (dotenv 16): the file is ``--envFile PATH`` or, when present, ``~/.tatumrc/.env``; its lines are
``KEY=VALUE`` (optionally ``export KEY=VALUE``, ``KEY: VALUE``), values may be single-, double- or back-quoted (double
quotes expand ``\\n`` and ``\\r``; quoted values may span lines), ``#`` starts a comment outside quotes, and a variable
already in the environment is never overridden by the file. Unlike upstream: an ``--envFile`` that does not exist is an
error rather than silently ignored, ``./.env`` in the working directory is not read, and a file that others could
write, or that others could read while it holds a secret (SECRET_SETTINGS), is refused.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from kms.errors import UsageError

DEFAULT_ENV_FILE = "~/.tatumrc/.env"
MAX_ENV_FILE = 1024 * 1024

SECRET_SETTINGS = frozenset(
    {
        "TATUM_API_KEY",
        "TATUM_KMS_PASSWORD",
        "TATUM_KMS_VGS_PASSWORD",
        "TATUM_KMS_AWS_SECRET_ACCESS_KEY",
        "TATUM_KMS_AWS_SESSION_TOKEN",
        "TATUM_KMS_VAULT_TOKEN",
        "TATUM_KMS_VAULT_SECRET_ID",
        "TATUM_KMS_AUDIT_HMAC_KEY",
        "TATUM_KMS_APPROVAL_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_PASSWORD",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "VAULT_TOKEN",
    }
)
"""Settings whose values are credentials: never printed, and refused from an env file that others can read."""

# dotenv 16's LINE expression (lib/main.js), with \w kept to ASCII as in JavaScript.
_LINE = re.compile(
    r"""(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)""",
    re.MULTILINE | re.ASCII,
)
_QUOTED = re.compile(r"""^(['"`])([\s\S]*)\1$""", re.MULTILINE)


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse env-file text exactly as dotenv 16 does (a later line wins over an earlier one)."""
    values: dict[str, str] = {}
    lines = re.sub(r"\r\n?", "\n", text)
    for match in _LINE.finditer(lines):
        value = (match.group(2) or "").strip()
        quote = value[:1]
        value = _QUOTED.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[match.group(1)] = value
    return values


def private_file_problem(st: os.stat_result, *, readable_matters: bool) -> str | None:
    """Why a file holding secrets or configuration is unsafe to trust, or None.

    Refused: not a regular file; owned by someone other than this user or root; writable by group or others; and, when
    ``readable_matters``, readable by others, or by a group this process is not in (a Kubernetes fsGroup is allowed).
    """
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid not in (os.geteuid(), 0):
        return f"is owned by another user (uid {st.st_uid})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {mode:04o}); chmod 600 it"
    if readable_matters:
        if mode & stat.S_IROTH:
            return f"is readable by others (mode {mode:04o}); chmod 600 it"
        if mode & stat.S_IRGRP and st.st_gid not in {os.getegid(), *os.getgroups()}:
            return f"is readable by group {st.st_gid} (mode {mode:04o}); chmod 600 it"
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """Read and parse an env file, refusing one that is unsafe for what it holds."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must be refused, not waited on.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UsageError(f"cannot read env file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        problem = private_file_problem(st, readable_matters=False)
        if problem:
            raise UsageError(f"env file {path} {problem}")
        try:
            raw = handle.read(MAX_ENV_FILE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read env file {path}: {exc.strerror}") from None
    if len(raw) > MAX_ENV_FILE:
        raise UsageError(f"env file {path} is larger than {MAX_ENV_FILE} bytes")
    try:
        values = parse_dotenv(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"env file {path} is not UTF-8 text") from None
    secrets = sorted(key for key, value in values.items() if key in SECRET_SETTINGS and value)
    if secrets:
        problem = private_file_problem(st, readable_matters=True)
        if problem:
            raise UsageError(f"env file {path} holds {', '.join(secrets)} but {problem}")
    return values


class EnvSettings(Mapping[str, str]):
    """The environment over the env file: what a provider reads its settings from."""

    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str], env_file: Path | None) -> None:
        self._environ = dict(environ)
        self._file_values = dict(file_values)
        self.env_file = env_file

    def __getitem__(self, key: str) -> str:
        if key in self._environ:
            return self._environ[key]
        return self._file_values[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._environ
        yield from (key for key in self._file_values if key not in self._environ)

    def __len__(self) -> int:
        return len(self._environ.keys() | self._file_values.keys())

    def __repr__(self) -> str:
        return f"<EnvSettings env_file={str(self.env_file) if self.env_file else None!r} keys={len(self)}>"

    def source(self, key: str) -> str | None:
        """Where a setting came from: 'environment', 'env file', or None when unset."""
        if key in self._environ:
            return "environment"
        if key in self._file_values:
            return "env file"
        return None

    def display(self, key: str) -> str:
        """A value safe to print (checkconfig): secrets are masked, unset is 'N/A'."""
        value = self.get(key)
        if not value:
            return "N/A"
        if key in SECRET_SETTINGS:
            return "*" * min(len(value), 12)
        return value


def load_settings(
    env_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> EnvSettings:
    """The settings for this run: ``environ`` (default ``os.environ``) over the env file.

    ``env_file`` is the ``--envFile`` value: it must exist. Without it, ``~/.tatumrc/.env`` is read when present.
    """
    env = os.environ if environ is None else environ
    if env_file is not None and str(env_file).strip():
        path = Path(os.path.expanduser(str(env_file)))
        if not path.exists():
            raise UsageError(f"env file {path} does not exist")
    else:
        path = Path(os.path.expanduser(DEFAULT_ENV_FILE))
        if not path.exists():
            return EnvSettings(env, {}, None)
    return EnvSettings(env, read_env_file(path), path)


__all__ = [
    "DEFAULT_ENV_FILE",
    "SECRET_SETTINGS",
    "EnvSettings",
    "load_settings",
    "parse_dotenv",
    "private_file_problem",
    "read_env_file",
]
