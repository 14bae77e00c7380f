"""The README says what an operator needs (issue 17): every setting each password backend reads (endpoints and
regions included), the sandbox's admin bodies, and how `kms passwd` reads its new password without a terminal."""

from __future__ import annotations

import re

import pytest

from backends import BUILTIN_PROVIDERS
from backends.base import backend_settings
from kms.passwords import PASSWORD_RULE
from kms.sandbox.admin_api import APPROVAL_KEYS, CONFIG_KEYS, PENDING_REQUIRED, PENDING_WALLETS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def section(heading: str) -> str:
    """The README text under the ``##``/``###`` heading ``heading``, up to the next such heading."""
    match = re.search(rf"^##+ {re.escape(heading)}\b.*?$(.*?)(?=^##+ )", README, re.MULTILINE | re.DOTALL)
    assert match, f"README has no section {heading!r}"
    return match.group(1)


@pytest.mark.parametrize("backend", [name for name in BUILTIN_PROVIDERS if backend_settings(name)])
def test_every_setting_of_every_backend_is_in_its_readme_section(backend: str) -> None:
    text = section(backend)
    missing = [name for name in backend_settings(backend) if f"`{name}`" not in text]
    assert missing == [], f"README section '{backend}' does not document {missing}"


@pytest.mark.parametrize(
    ("backend", "endpoint", "region"),
    [
        ("aws", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"),
        ("vault", "TATUM_KMS_VAULT_ADDR", "VAULT_NAMESPACE"),
        ("azure", "TATUM_KMS_AZURE_VAULTURL", "AZURE_AUTHORITY_HOST"),
        ("vgs", "TATUM_KMS_VGS_URL", "TATUM_KMS_VGS_CACERT"),
    ],
)
def test_each_network_backend_documents_its_endpoint(backend: str, endpoint: str, region: str) -> None:
    text = section(backend)
    assert endpoint in text and region in text and "endpoint" in text


def test_the_sandbox_admin_bodies_are_documented() -> None:
    text = section("Sandbox")
    for name in (*PENDING_REQUIRED, *PENDING_WALLETS, *CONFIG_KEYS, *APPROVAL_KEYS):
        assert f"`{name}`" in text or f'"{name}"' in text, name
    assert "TATUM_API_KEY=" in text and "400" in text


def test_passwd_and_the_password_rule_are_documented() -> None:
    flat = " ".join(README.split())
    assert PASSWORD_RULE in flat
    assert "first line of standard input" in flat and "no password given" in flat
    assert "--create-dirs" in flat and "creating a new wallet store at" in flat


def test_the_quick_start_stays_two_commands() -> None:
    quick = section("Quick start")
    commands = [line for line in quick.splitlines() if line.startswith("python3 ")]
    assert len(commands) == 2
