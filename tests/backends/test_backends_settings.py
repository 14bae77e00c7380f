"""kms.settings: env-file parsing with dotenv 16's rules, precedence, and refusal of unsafe files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kms.errors import UsageError
from kms.settings import SECRET_SETTINGS, load_settings, parse_dotenv

# The cases dotenv 16 documents and tests (tests/.env of motdotla/dotenv), with the values it yields.
DOTENV_SAMPLE = """\
BASIC=basic

# previous line intentionally left blank
AFTER_LINE=after_line
EMPTY=
EMPTY_SINGLE_QUOTES=''
EMPTY_DOUBLE_QUOTES=""
SINGLE_QUOTES='single_quotes'
SINGLE_QUOTES_SPACED='    single quotes    '
DOUBLE_QUOTES="double_quotes"
DOUBLE_QUOTES_SPACED="    double quotes    "
DOUBLE_QUOTES_INSIDE_SINGLE='double "quotes" work inside single quotes'
BACKTICKS=`backticks`
EXPAND_NEWLINES="expand\\nnew\\nlines"
DONT_EXPAND_UNQUOTED=dontexpand\\nnewlines
DONT_EXPAND_SQUOTED='dontexpand\\nnewlines'
# COMMENTS=work
INLINE_COMMENTS=inline comments # work #very #well
INLINE_COMMENTS_SINGLE_QUOTES='inline comments outside of #singlequotes' # work
EQUAL_SIGNS=equals==
RETAIN_INNER_QUOTES={"foo": "bar"}
TRIM_SPACE_FROM_UNQUOTED=    some spaced out string
USERNAME=therealnerdybeast@example.tld
    SPACED_KEY = parsed
export EXPORTED=exported value
COLON: colon value
MULTI_DOUBLE_QUOTED="THIS
IS
A
MULTILINE"
WINDOWS=crlf\r
"""


def test_parses_like_dotenv_16() -> None:
    values = parse_dotenv(DOTENV_SAMPLE)
    assert values["BASIC"] == "basic"
    assert values["AFTER_LINE"] == "after_line"
    assert values["EMPTY"] == values["EMPTY_SINGLE_QUOTES"] == values["EMPTY_DOUBLE_QUOTES"] == ""
    assert values["SINGLE_QUOTES"] == "single_quotes"
    assert values["SINGLE_QUOTES_SPACED"] == "    single quotes    "
    assert values["DOUBLE_QUOTES"] == "double_quotes"
    assert values["DOUBLE_QUOTES_SPACED"] == "    double quotes    "
    assert values["DOUBLE_QUOTES_INSIDE_SINGLE"] == 'double "quotes" work inside single quotes'
    assert values["BACKTICKS"] == "backticks"
    assert values["EXPAND_NEWLINES"] == "expand\nnew\nlines"
    assert values["DONT_EXPAND_UNQUOTED"] == "dontexpand\\nnewlines"
    assert values["DONT_EXPAND_SQUOTED"] == "dontexpand\\nnewlines"
    assert "COMMENTS" not in values
    assert values["INLINE_COMMENTS"] == "inline comments"
    assert values["INLINE_COMMENTS_SINGLE_QUOTES"] == "inline comments outside of #singlequotes"
    assert values["EQUAL_SIGNS"] == "equals=="
    assert values["RETAIN_INNER_QUOTES"] == '{"foo": "bar"}'
    assert values["TRIM_SPACE_FROM_UNQUOTED"] == "some spaced out string"
    assert values["USERNAME"] == "therealnerdybeast@example.tld"
    assert values["SPACED_KEY"] == "parsed"
    assert values["EXPORTED"] == "exported value"
    assert values["COLON"] == "colon value"
    assert values["MULTI_DOUBLE_QUOTED"] == "THIS\nIS\nA\nMULTILINE"
    assert values["WINDOWS"] == "crlf"


def test_later_lines_win() -> None:
    assert parse_dotenv("A=1\nA=2\n") == {"A": "2"}


def write_env(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    env_file = write_env(tmp_path / "kms.env", "TATUM_KMS_PASSWORD=from-file\nTATUM_KMS_AWS_REGION=eu-west-1\n")
    settings = load_settings(env_file, environ={"TATUM_KMS_PASSWORD": "from-env"})
    assert settings["TATUM_KMS_PASSWORD"] == "from-env"
    assert settings["TATUM_KMS_AWS_REGION"] == "eu-west-1"
    assert settings.source("TATUM_KMS_PASSWORD") == "environment"
    assert settings.source("TATUM_KMS_AWS_REGION") == "env file"
    assert settings.source("NOPE") is None
    assert settings.env_file == env_file
    assert sorted(settings) == ["TATUM_KMS_AWS_REGION", "TATUM_KMS_PASSWORD"] and len(settings) == 2
    assert "from-env" not in repr(settings) and "from-file" not in repr(settings)


def test_default_file_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(environ={}).env_file is None
    (tmp_path / ".tatumrc").mkdir()
    write_env(tmp_path / ".tatumrc" / ".env", "TATUM_API_KEY=k-123\n")
    settings = load_settings(environ={})
    assert settings["TATUM_API_KEY"] == "k-123"
    assert settings.env_file == tmp_path / ".tatumrc" / ".env"


def test_an_explicit_env_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(tmp_path / "missing.env", environ={})


def test_unsafe_env_files_are_refused(tmp_path: Path) -> None:
    writable = write_env(tmp_path / "w.env", "TATUM_KMS_AWS_REGION=eu-west-1\n", 0o666)
    with pytest.raises(UsageError, match=r"is writable by group or others \(mode 0666\); chmod 600 it"):
        load_settings(writable, environ={})
    readable = write_env(tmp_path / "r.env", "TATUM_KMS_PASSWORD=hunter2\nTATUM_API_KEY=k\n", 0o644)
    with pytest.raises(UsageError, match="holds TATUM_API_KEY, TATUM_KMS_PASSWORD but is readable by others") as caught:
        load_settings(readable, environ={})
    assert "hunter2" not in str(caught.value)
    # Without secrets in it, a world-readable file is only configuration.
    harmless = write_env(tmp_path / "h.env", "TATUM_KMS_AWS_REGION=eu-west-1\n", 0o644)
    assert load_settings(harmless, environ={})["TATUM_KMS_AWS_REGION"] == "eu-west-1"
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(UsageError, match="is not a regular file"):  # refused at once, not waited on
        load_settings(fifo, environ={})


def test_display_masks_secrets() -> None:
    settings = load_settings(None, environ={"TATUM_KMS_VGS_PASSWORD": "s3cret", "TATUM_KMS_AWS_REGION": "eu-west-1"})
    assert settings.display("TATUM_KMS_VGS_PASSWORD") == "******"
    assert settings.display("TATUM_KMS_AWS_REGION") == "eu-west-1"
    assert settings.display("TATUM_KMS_VGS_ALIAS") == "N/A"
    assert {"TATUM_KMS_PASSWORD", "TATUM_API_KEY", "TATUM_KMS_VAULT_TOKEN"} <= SECRET_SETTINGS
