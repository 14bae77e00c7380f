"""The packages point one way: signers and chains never reach the Tatum client, the client never reaches them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KMS = Path(__file__).resolve().parents[1] / "kms"
FORBIDDEN = {
    "chains": ("kms.tatum",),
    "signing": ("kms.tatum",),
    "tatum": ("kms.chains", "kms.signing"),
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
