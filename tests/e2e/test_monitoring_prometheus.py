"""The shipped alerting rules in a real Prometheus (Debian's `prometheus`), scraping real `kms daemon` processes that
run against `kms sandbox`: a daemon whose approval server is down and a daemon that is sealed each raise their alert,
seen through Prometheus's HTTP API. Also: every metric the rules and the dashboard name is in a daemon's /metrics.
Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kms.sandbox.harness import SandboxProcess, wait_for
from tests.daemon.test_daemon import World, eth_pending
from tests.ops.test_monitoring import EXPECTED_ELSEWHERE, RULES, exported_families, referenced_metrics

PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, trust_env=False)
    except httpx.TransportError:
        return None


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Daemons:
    four_eye_down: str
    """host:port of the metrics listener of a daemon whose approval server refuses connections."""
    sealed: str
    """host:port of the metrics listener of a daemon that started sealed."""


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    with SandboxProcess() as sandbox:
        assert sandbox.admin is not None
        sandbox.admin.reset()
        world = World(tmp_path_factory.mktemp("monitored"), sandbox, keys=1)
        # A daemon holds its store's lock: the sealed daemon gets a store of its own.
        sealed_world = World(tmp_path_factory.mktemp("sealed"), sandbox, keys=1)
        signature_id, _ = world.wallets[0]
        sandbox.admin.enqueue(eth_pending("needs-approval", signature_id))
        down_port, sealed_port = _free_port(), _free_port()
        # Nothing listens on this port: the approval server is down.
        approval_down = f"http://127.0.0.1:{_free_port()}/approval"
        sealed_socket = str(sealed_world.tmp / "run" / "unseal.sock")
        procs = [
            subprocess.Popen(
                [*_daemon_cmd(world, down_port), "--externalUrl", approval_down],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=world.env,
            ),
            subprocess.Popen(
                [*_daemon_cmd(sealed_world, sealed_port), "--sealed", "--socket", sealed_socket],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=sealed_world.env,
            ),
        ]  # fmt: skip
        try:
            for port in (down_port, sealed_port):
                assert wait_for(lambda p=port: _up(p), 60), "a daemon's metrics listener did not come up"
            yield Daemons(f"127.0.0.1:{down_port}", f"127.0.0.1:{sealed_port}")
        finally:
            for proc in procs:
                _stop(proc)


def _daemon_cmd(world: World, metrics_port: int) -> list[str]:
    args = world.args("--period", "0.2", "--metrics-port", str(metrics_port), four_eye=False)
    return [sys.executable, "-m", "kms", "daemon", *args]


def _up(port: int) -> bool:
    response = _get(f"http://127.0.0.1:{port}/healthz")
    return response is not None and response.status_code == 200


def test_every_metric_named_in_rules_and_dashboard_is_in_the_daemons_metrics(daemons: Daemons) -> None:
    response = _get(f"http://{daemons.four_eye_down}/metrics")
    assert response is not None and response.status_code == 200
    exported = exported_families(response.text)
    assert "kms_up" in exported
    missing = referenced_metrics() - exported
    assert missing <= EXPECTED_ELSEWHERE, f"named in ops/monitoring but not exported: {sorted(missing)}"


@pytest.fixture
def prometheus(tmp_path: Path, daemons: Daemons) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian: apt-get install prometheus)")
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],  # the shipped rules, unchanged: an alert is pending as soon as its expr holds
        "scrape_configs": [
            {"job_name": "kms", "static_configs": [{"targets": [daemons.four_eye_down, daemons.sealed]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: (r := _get(f"{url}/-/ready")) is not None and r.status_code == 200, 60):
            _stop(proc)
            assert proc.stderr is not None
            pytest.fail("prometheus did not become ready: " + proc.stderr.read().decode(errors="replace")[-2000:])
        yield url
    finally:
        _stop(proc)


def _alerts(url: str) -> list[dict[str, Any]]:
    response = _get(f"{url}/api/v1/alerts")
    if response is None or response.status_code != 200:
        return []
    return list(response.json()["data"]["alerts"])


def _active(url: str, alert: str, instance: str) -> str | None:
    for entry in _alerts(url):
        labels = entry["labels"]
        if labels.get("alertname") == alert and labels.get("instance") == instance:
            return str(entry["state"])
    return None


@pytest.mark.slow
@pytest.mark.e2e
def test_prometheus_raises_the_shipped_alerts_for_real_failures(prometheus: str, daemons: Daemons) -> None:
    targets = _get(f"{prometheus}/api/v1/targets")
    assert targets is not None and targets.status_code == 200
    rules = _get(f"{prometheus}/api/v1/rules")
    assert rules is not None
    loaded = {r["name"] for g in rules.json()["data"]["groups"] for r in g["rules"]}
    assert {"KmsSealed", "KmsFourEyeFailing"} <= loaded

    def raised() -> bool:
        return _active(prometheus, "KmsFourEyeFailing", daemons.four_eye_down) in ("pending", "firing") and _active(
            prometheus, "KmsSealed", daemons.sealed
        ) in ("pending", "firing")

    assert wait_for(raised, 120, interval=1.0), f"alerts seen: {_alerts(prometheus)}"
    # Each alert is raised for the daemon with that failure only.
    assert _active(prometheus, "KmsSealed", daemons.four_eye_down) is None
    assert _active(prometheus, "KmsFourEyeFailing", daemons.sealed) is None
    assert _active(prometheus, "KmsAuditLogBroken", daemons.four_eye_down) is None
