"""`kms checkconfig` (issue 17): JSON on stdout, the store and the password backend apart, only secrets masked, every
setting a backend reads shown (endpoints and regions included); upstream's table behind --table."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import BUILTIN_PROVIDERS
from backends.base import backend_settings
from kms.cli.checkconfig import GENERAL_SETTINGS, UPSTREAM_SETTINGS, is_secret
from kms.settings import SECRET_SETTINGS
from tests.cli_helpers import PASSWORD, kms_env, run_kms

CANARY = "canary-Secret-9f3a1c"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def test_json_on_stdout_with_the_store_and_the_backend_apart(home: Path) -> None:
    env = kms_env(
        home,
        password=None,
        TATUM_KMS_AWS_SECRET_NAME="prod/kms-password",
        TATUM_KMS_AWS_REGION="eu-central-1",
        AWS_ENDPOINT_URL="http://127.0.0.1:4566",
        TATUM_KMS_AWS_SECRET_ACCESS_KEY=CANARY,
        TATUM_KMS_AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
    )
    result = run_kms(["checkconfig", "--aws"], home, env=env)
    assert result.code == 0, result.stderr
    config = result.json()
    assert config["store"] == {
        "type": "LOCAL",
        "path": str(home / ".tatumrc" / "wallet.dat"),
        "exists": False,
        "format": "missing",
    }
    backend = config["passwordBackend"]
    assert backend["name"] == "aws"
    assert backend["settings"]["TATUM_KMS_AWS_SECRET_NAME"] == "prod/kms-password"  # a name, not a secret
    assert backend["settings"]["TATUM_KMS_AWS_REGION"] == "eu-central-1"
    assert backend["settings"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert backend["settings"]["TATUM_KMS_AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert backend["settings"]["TATUM_KMS_AWS_SECRET_ACCESS_KEY"] == "********"
    assert CANARY not in result.stdout
    assert config["hardening"]["notDumpable"] is True


def test_the_env_backend_and_the_env_file_are_reported(home: Path) -> None:
    (home / ".tatumrc").mkdir()
    env_file = home / ".tatumrc" / ".env"
    env_file.write_text("TATUM_API_URL=https://api.example.test\n")
    env_file.chmod(0o600)
    config = run_kms(["checkconfig"], home).json()
    assert config["envFile"] == str(env_file)
    assert config["settings"]["TATUM_API_URL"] == "https://api.example.test"
    assert config["passwordBackend"]["name"] == "env"
    assert config["passwordBackend"]["settings"]["TATUM_KMS_PASSWORD"] == "********"
    assert config["settings"]["TATUM_API_KEY"] is None


@pytest.mark.parametrize("backend", BUILTIN_PROVIDERS)
def test_only_secrets_are_masked_for_every_backend(home: Path, backend: str) -> None:
    names = [*backend_settings(backend), *GENERAL_SETTINGS]
    env = kms_env(home, password=None, **{name: f"{CANARY}-{number}" for number, name in enumerate(names)})
    env["TATUM_KMS_BACKEND"] = backend
    result = run_kms(["checkconfig"], home, env=env)
    assert result.code == 0, result.stderr
    config = result.json()
    shown = {**config["passwordBackend"]["settings"], **config["settings"]}
    assert set(backend_settings(backend)) <= set(config["passwordBackend"]["settings"])
    for number, name in enumerate(names):
        value = f"{CANARY}-{number}"
        if name == "TATUM_KMS_BACKEND":
            continue
        if name in SECRET_SETTINGS or is_secret(name):
            assert value not in result.stdout, name
            masked = value[:6] + "*" * (len(value) - 12) + value[-6:] if name == "TATUM_API_KEY" else "********"
            assert shown[name] == masked, name
        else:
            assert shown[name] == value, name


def test_every_setting_a_backend_declares_that_is_a_credential_is_masked() -> None:
    for backend in BUILTIN_PROVIDERS:
        for name in backend_settings(backend):
            if name in SECRET_SETTINGS:
                assert is_secret(name)
    assert not is_secret("TATUM_KMS_AWS_SECRET_NAME") and not is_secret("TATUM_KMS_AWS_SECRET_KEY")
    assert is_secret("TATUM_KMS_VGS_PASSWORD") and is_secret("AZURE_CLIENT_SECRET")


def test_table_keeps_upstreams_rows_in_upstreams_order(home: Path) -> None:
    result = run_kms(["checkconfig", "--table", "--aws"], home)
    assert result.code == 0, result.stderr
    labels = [line.split(":", 1)[0].strip() for line in result.stdout.splitlines()]
    upstream = ["Version", "Wallet file path", "Wallet exists", "Wallet store type", "Environment vars file"]
    assert labels[: len(upstream) + len(UPSTREAM_SETTINGS)] == [*upstream, *UPSTREAM_SETTINGS]
    rows = {name.strip(): value.strip() for name, value in (line.split(":", 1) for line in result.stdout.splitlines())}
    assert rows["Wallet store type"] == "LOCAL" and rows["Password backend"] == "aws"
    widths = {len(line.split(":", 1)[0]) for line in result.stdout.splitlines()}
    assert len(widths) == 1  # one column, however long the longest name
    assert "AWS_ENDPOINT_URL" in labels
    assert PASSWORD not in result.stdout


def test_report_names_the_store_and_the_backend_apart(home: Path) -> None:
    assert run_kms(["generatemanagedwallet", "ETH"], home).code == 0
    system = run_kms(["report"], home).json()["system"]
    assert system["store"]["type"] == "LOCAL" and system["passwordBackend"] == "env"
