"""What every test package shares: the upstream vectors and fixtures kept in ``tests/data``, a store with a
deliberately cheap KDF, the Tatum API sandbox (in-process, or as a process for the daemon tests), and the markers.

Markers: ``e2e`` (everything under ``tests/e2e``: real external programs — anvil, Litecoin Core, Prometheus) and
``slow`` (the modules in ``SLOW_MODULES``: real daemon, sandbox or store processes, kills and restarts). The quick
run is ``pytest -m "not slow and not e2e"``; the README's test command runs everything but ``fuzz`` (the long
Hypothesis runs, only with ``pytest -m fuzz``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms.hygiene import SecretBuffer
from kms.sandbox import Sandbox, SandboxAdmin
from kms.sandbox.harness import SandboxProcess
from kms.store import KdfParams, WalletStore
from tests.servers.postgres import postgres_server, postgres_url  # noqa: F401 - session fixtures

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
VECTORS = DATA / "vectors"
"""Vectors computed by upstream's own code (see data/vectors/README.md), kept in the checkout."""
FIXTURES = DATA / "fixtures"
"""An upstream-format wallet.dat, its password and its decrypted contents."""

SLOW_MODULES = frozenset(
    {
        "tests/cli/test_cli.py",
        "tests/cli/test_cli_first_run.py",
        "tests/cli/test_progress.py",
        "tests/cli/test_no_leaks.py",
        "tests/cli/test_demo.py",
        "tests/daemon/test_daemon.py",
        "tests/daemon/test_daemon_pipeline.py",
        "tests/daemon/test_daemon_replicas.py",
        "tests/daemon/test_daemon_quarantine.py",
        "tests/daemon/test_daemon_approvals.py",
        "tests/daemon/test_logs.py",
        "tests/seal/test_seal_processes.py",
        "tests/seal/test_daemon_seal.py",
        "tests/store/test_cli_crash.py",
        "tests/store/test_store_processes.py",
        "tests/store/test_store_postgres.py",
        "tests/store/test_store_copy.py",
        "tests/tatum/test_http_limits.py",
        "tests/tatum/test_nesting_bombs.py",
        "tests/ops/test_monitoring.py",
        "tests/ops/test_ops_k8s.py",
        "tests/ops/test_ops_ha.py",
        "tests/tatum/test_fuzz_parsers.py",
        "tests/tatum/test_sign_evm_lookups.py",
        "tests/signing/test_sign_ada.py",
        "tests/approval/test_approval_v2.py",
        "tests/approval/test_policy_cli.py",
        "tests/sandbox/test_sandbox.py",
        "tests/sandbox/test_sandbox_admin.py",
        "tests/cli/test_checkconfig.py",
        "tests/backends/test_backends_aws.py",
        "tests/backends/test_backends_azure.py",
        "tests/seal/test_seal.py",
        "tests/daemon/test_audit.py",
        "tests/daemon/test_daemon_scheduling.py",
        "tests/chains/test_chain_signing_keys.py",
    }
)
"""Modules whose tests start real processes (daemons, sandboxes, PostgreSQL, moto, kubectl, the kms command), serve
real HTTP doubles that wait out deadlines and retries, or run Hypothesis properties."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fuzz" not in (config.option.markexpr or ""):
        # The long Hypothesis runs only when asked for by name (pytest -m fuzz), whatever else -m selects.
        fuzz = [item for item in items if item.get_closest_marker("fuzz")]
        if fuzz:
            config.hook.pytest_deselected(items=fuzz)
            items[:] = [item for item in items if not item.get_closest_marker("fuzz")]
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        if where.startswith("tests/e2e/"):
            item.add_marker(pytest.mark.e2e)
        if where in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def load_vectors(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"test vectors missing: {path}")
    return json.loads(path.read_text())


def open_fast_store(path: Path, password: bytes = b"pw", *, create: bool = True) -> WalletStore:
    """A store under the deliberately cheap test KDF (never a default: the store refuses it unless told)."""
    return WalletStore.open(
        path, SecretBuffer(password), create=create, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with open_fast_store(tmp_path / "w.db") as opened:
        yield opened


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[SandboxAdmin]:
    with SandboxAdmin(sandbox.url) as connected:
        yield connected


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    """``kms sandbox`` as a real subprocess, one per test module (the daemon-as-a-process tests)."""
    with SandboxProcess() as running:
        yield running


@pytest.fixture
def process_admin(sandbox_process: SandboxProcess) -> SandboxAdmin:
    """The admin end of ``sandbox_process``, reset for each test."""
    assert sandbox_process.admin is not None
    sandbox_process.admin.reset()
    return sandbox_process.admin
