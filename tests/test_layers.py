"""The packages point one way: signers and chains never reach the Tatum client, the client never reaches them, the
daemon and the seal never reach the command line, and a cloud or database SDK is imported only by its own backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KMS = Path(__file__).resolve().parents[1] / "kms"
FORBIDDEN = {
    "chains": ("kms.tatum",),
    "signing": ("kms.tatum",),
    "tatum": ("kms.chains", "kms.signing"),
    "daemon": ("kms.cli",),
    "seal": ("kms.cli",),
}
REPO = KMS.parent
SDKS = ("boto3", "botocore", "azure", "hvac", "psycopg")
# The one module each SDK may be imported from (the core starts without any of them).
SDK_HOMES = {
    "boto3": {"backends/aws.py"},
    "botocore": {"backends/aws.py"},
    "azure": {"backends/azure.py"},
    "hvac": {"backends/vault.py"},
    "psycopg": {"kms/store/postgres.py"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    files = sorted((KMS / package).rglob("*.py"))
    assert files, package
    offending = [
        f"{path.relative_to(KMS.parent)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[package])
    ]
    assert offending == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from kms.tatum.gateway import TatumGateway\nimport kms.signing.evm\n")
    assert {"kms.tatum.gateway", "kms.signing.evm"} <= imported_modules(module)


def test_cloud_and_database_sdks_are_imported_only_by_their_backend() -> None:
    files = sorted([*(REPO / "kms").rglob("*.py"), *(REPO / "backends").rglob("*.py")])
    offending = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        for sdk in SDKS
        if (name == sdk or name.startswith(sdk + ".")) and str(path.relative_to(REPO)) not in SDK_HOMES[sdk]
    ]
    assert offending == []
