"""The provider registry: built-ins, backend flags, third-party entry points, and optional cloud SDKs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backends import available_providers, backend_from_flags, get_provider
from backends.base import PasswordProvider
from kms.errors import ProviderError, UsageError

REPO = Path(__file__).resolve().parents[2]


def test_builtins_are_listed() -> None:
    assert {"prompt", "env", "vgs", "azure", "aws", "vault"} <= set(available_providers())


@pytest.mark.parametrize(
    ("backend", "vgs", "azure", "aws", "expected"),
    [
        (None, False, False, False, "prompt"),
        ("", False, False, False, "prompt"),
        ("ENV", False, False, False, "env"),
        (None, True, False, False, "vgs"),
        (None, False, True, False, "azure"),
        (None, False, False, True, "aws"),
        ("aws", False, False, True, "aws"),  # the same choice twice is not a conflict
        ("vault", False, False, False, "vault"),
    ],
)
def test_backend_from_flags(backend: str | None, vgs: bool, azure: bool, aws: bool, expected: str) -> None:
    assert backend_from_flags(backend, vgs, azure, aws) == expected


def test_conflicting_choices_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="choose one password backend, not aws and vgs"):
        backend_from_flags(None, vgs=True, azure=False, aws=True)
    with pytest.raises(UsageError, match="not azure and vault"):
        backend_from_flags("vault", vgs=False, azure=True, aws=False)
    with pytest.raises(UsageError, match="unknown password backend 'gpg'"):
        backend_from_flags("gpg", vgs=False, azure=False, aws=False)


def test_default_follows_upstream_when_settings_are_given() -> None:
    assert backend_from_flags(None, settings={"TATUM_KMS_PASSWORD": "x"}) == "env"
    assert backend_from_flags(None, settings={"TATUM_KMS_PASSWORD_FILE": "/run/secrets/p"}) == "env"
    assert backend_from_flags(None, settings={"TATUM_KMS_PASSWORD": "  "}) == "prompt"
    assert backend_from_flags(None, settings={"TATUM_KMS_BACKEND": "Vault", "TATUM_KMS_PASSWORD": "x"}) == "vault"
    assert backend_from_flags(None, aws=True, settings={"TATUM_KMS_PASSWORD": "x"}) == "aws"


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(UsageError, match="choose one of: aws, azure, env, prompt, vault, vgs"):
        get_provider("kwallet", {})


PLUGIN = """
from kms.hygiene import SecretBuffer


class DemoProvider:
    name = "demo"

    def __init__(self, settings):
        self._value = settings.get("DEMO_PASSWORD", "")

    def fetch(self):
        return SecretBuffer.from_str(self._value)


def not_a_provider(settings):
    return object()
"""


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real installed distribution (module + .dist-info with entry_points.txt) on sys.path."""
    (tmp_path / "kms_demo_provider.py").write_text(PLUGIN)
    info = tmp_path / "kms_demo_provider-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kms-demo-provider\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[kms.password_providers]\n"
        "demo = kms_demo_provider:DemoProvider\n"
        "broken = kms_demo_provider_missing:Factory\n"
        "bogus = kms_demo_provider:not_a_provider\n"
        "env = kms_demo_provider:DemoProvider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_third_party_provider_from_an_entry_point(plugin_dist: Path) -> None:
    assert "demo" in available_providers()
    assert backend_from_flags("demo", False, False, False) == "demo"
    provider = get_provider("demo", {"DEMO_PASSWORD": "from a plug-in"})
    assert isinstance(provider, PasswordProvider)
    assert provider.fetch().bytes() == b"from a plug-in"


def test_a_plugin_cannot_shadow_a_builtin(plugin_dist: Path) -> None:
    assert type(get_provider("env", {"TATUM_KMS_PASSWORD": "x"})).__module__ == "backends.env"


def test_broken_plugins_fail_cleanly(plugin_dist: Path) -> None:
    with pytest.raises(
        ProviderError, match=r"broken: password provider plug-in failed to load \(ModuleNotFoundError\)"
    ):
        get_provider("broken", {})
    with pytest.raises(ProviderError, match="bogus: plug-in did not return a password provider"):
        get_provider("bogus", {})


BLOCKED_SDKS = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockCloudSdks(importlib.abc.MetaPathFinder):
        BLOCKED = ("boto3", "botocore", "azure", "hvac", "msal")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockCloudSdks())

    import backends, backends.retry, kms.settings, kms.seal
    from backends import get_provider
    from kms.errors import ProviderError

    with get_provider("env", {"TATUM_KMS_PASSWORD": "works without extras"}).fetch() as secret:
        print("env:", secret.bytes().decode())
    print("vgs:", type(get_provider("vgs", {"TATUM_KMS_VGS_USERNAME": "u", "TATUM_KMS_VGS_PASSWORD": "p",
                                             "TATUM_KMS_VGS_ALIAS": "a"})).__name__)
    for name in ("aws", "azure", "vault"):
        try:
            get_provider(name, {})
        except ProviderError as exc:
            print(f"{name}: {exc}")
    print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in BlockCloudSdks.BLOCKED))
    """
)


def test_core_imports_and_hints_without_cloud_extras() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_SDKS], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "env: works without extras" in lines
    assert "vgs: VgsProvider" in lines
    assert "aws: aws: the boto3 package is not installed; install it with: pip install 'kms[aws]'" in lines
    assert (
        "azure: azure: the azure.identity package is not installed; install it with: pip install 'kms[azure]'" in lines
    )
    assert "vault: vault: the hvac package is not installed; install it with: pip install 'kms[vault]'" in lines
    assert "loaded: []" in lines
