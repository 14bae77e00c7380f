"""The health listener over a real socket on 127.0.0.1: /healthz, /readyz, /metrics, and 404 for everything else."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from kms.health import HealthServer
from kms.metrics import METRIC_NAMES, DaemonMetrics, NullMetrics

SIGNATURE_ID = "2f6e0c8a-1b2c-4d5e-8f90-123456789abc"
PENDING_ID = "65a1b2c3d4e5f6a7b8c9d0e1"


class Flag:
    def __init__(self) -> None:
        self.value = False

    def __call__(self) -> bool:
        return self.value


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, DaemonMetrics, Flag]]:
    metrics, ready = DaemonMetrics(), Flag()
    server = HealthServer(host="127.0.0.1", port=0, metrics=metrics, is_ready=ready).start()
    try:
        yield server, metrics, ready
    finally:
        server.stop()


def test_healthz_readyz_and_metrics(served: tuple[HealthServer, DaemonMetrics, Flag]) -> None:
    server, metrics, ready = served
    assert server.port > 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        alive = client.get("/healthz")
        assert (alive.status_code, alive.text) == (200, "ok\n")
        assert client.get("/readyz").status_code == 503
        ready.value = True
        assert client.get("/readyz").status_code == 200
        ready.value = False
        assert client.get("/readyz").status_code == 503

        metrics.set_sealed(True)
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        for name in METRIC_NAMES:
            assert f"# TYPE {name} " in response.text, name
        assert "kms_sealed 1.0" in response.text
        assert response.headers["server"] == "kms"


def test_nothing_else_is_served(served: tuple[HealthServer, DaemonMetrics, Flag]) -> None:
    server, _, _ = served
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path in ("/", "/healthz/", "/metrics/x", "/wallets", "/../etc/passwd", "/readyz.json", "/debug"):
            assert client.get(path).status_code == 404, path
        assert client.get("/healthz?verbose=1").status_code == 200
        assert client.head("/healthz").status_code == 200
        assert client.post("/metrics", content=b"x").status_code == 501
        assert client.delete("/healthz").status_code == 501


def test_no_signature_id_or_pending_id_on_any_endpoint(served: tuple[HealthServer, DaemonMetrics, Flag]) -> None:
    server, metrics, ready = served
    ready.value = True
    metrics.cycle_started()
    metrics.pending_seen("ETH", 2)
    metrics.signed("ETH")
    metrics.broadcast("ETH")
    metrics.four_eye_rejected("BTC")
    metrics.error("signing", "ETH")
    metrics.error(SIGNATURE_ID, SIGNATURE_ID)  # a careless caller
    metrics.set_wallet_counts({"ETH": 3, SIGNATURE_ID: 1})
    metrics.observe_cycle(0.1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        bodies = [client.get(p).text for p in ("/healthz", "/readyz", "/metrics", "/" + SIGNATURE_ID)]
    everything = "\n".join(bodies)
    assert 'kms_signed_total{chain="ETH"} 1.0' in everything
    assert SIGNATURE_ID not in everything
    assert PENDING_ID not in everything


def test_a_failing_readiness_check_is_not_ready() -> None:
    def broken() -> bool:
        raise RuntimeError("store exploded")

    with HealthServer(metrics=NullMetrics(), is_ready=broken) as server, httpx.Client(timeout=10) as client:
        assert client.get(server.url + "/readyz").status_code == 503
        metrics = client.get(server.url + "/metrics")
        assert (metrics.status_code, metrics.text) == (200, "")


def test_default_bind_is_loopback_and_stop_releases_the_port() -> None:
    server = HealthServer(metrics=DaemonMetrics()).start()
    port = server.port
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{port}"
    server.stop()
    server.stop()  # idempotent
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        _ = server.port


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = HealthServer(host="::1", metrics=DaemonMetrics(), is_ready=lambda: True).start()
    except OSError:
        pytest.skip("IPv6 loopback is not configured here")
    try:
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    finally:
        server.stop()


def test_concurrent_scrapes(served: tuple[HealthServer, DaemonMetrics, Flag]) -> None:
    server, _, _ = served
    codes: list[int] = []
    lock = threading.Lock()

    def scrape() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(5):
                code = client.get("/metrics").status_code
                with lock:
                    codes.append(code)

    threads = [threading.Thread(target=scrape) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 30
