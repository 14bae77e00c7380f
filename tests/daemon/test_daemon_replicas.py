"""Several `kms daemon` processes on one PostgreSQL store, against `kms sandbox` (all on 127.0.0.1): each pending id
broadcast once with one payload; a replica SIGKILLed while holding claims, whose ids another replica takes over
after the lease and sends with the journaled bytes; a database restart (not ready, then resumed, nothing lost); a
network cut to the database (nothing signed without a claim)."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kms.chains import get_chain
from kms.hygiene import SecretBuffer
from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.harness import SandboxProcess, daemon_env, start_daemon, wait_for
from kms.store import KdfParams, WalletStore
from kms.store.backend import open_backend
from tests.daemon.test_daemon import broadcasts_by_id, eth_pending, sender
from tests.servers.postgres import PostgresServer, free_port
from tests.servers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
LEASE_S = "2"


class Cluster:
    """A PostgreSQL store of ETH testnet wallets and daemon replicas pointed at it and at the sandbox."""

    def __init__(self, tmp: Path, sandbox: SandboxProcess, server: PostgresServer, keys: int = 12) -> None:
        self.server = server
        self.tmp = tmp
        self.dbname = server.create_database()
        self.url = server.url(self.dbname, password=False)
        self.wallets: list[tuple[str, str]] = []
        eth = get_chain("ETH")
        with WalletStore.open(
            open_backend(server.url(self.dbname)), SecretBuffer(PASSWORD.encode()), create=True,
            kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True,
        ) as store:  # fmt: skip
            for _ in range(keys):
                generated = eth.generate_private_key(True)
                self.wallets.append(
                    (store.add("ETH", True, {"privateKey": generated["privateKey"]}), generated["address"])
                )
        extra = {"TATUM_KMS_STORE_PASSWORD": server.password, "TATUM_KMS_CLAIM_LEASE_S": LEASE_S}
        self.env = daemon_env(sandbox.url, PASSWORD, tmp, extra=extra)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *, url: str | None = None, metrics_port: int | None = None, period: str = "0.3"
    ) -> subprocess.Popen[bytes]:
        args = ["--testnet", "--store", url or self.url, "--chain", "ETH", "--period", period]
        if metrics_port is not None:
            args += ["--metricsPort", str(metrics_port)]
        with (self.tmp / f"daemon-{len(self.procs)}.log").open("w") as log:  # a full stderr pipe would stall it
            proc = subprocess.Popen(
                [sys.executable, "-m", "kms", "daemon", *args], stdout=subprocess.DEVNULL, stderr=log, env=self.env
            )
        self.procs.append(proc)
        return proc

    def pending(self, prefix: str, count: int) -> list[dict[str, Any]]:
        # One queue per sender: nonces 0.. per wallet, so every payload is checkable and distinct.
        return [
            eth_pending(f"{prefix}-{n}", self.wallets[n % len(self.wallets)][0], nonce=n // len(self.wallets))
            for n in range(count)
        ]

    def journal(self) -> dict[str, tuple[str, str | None]]:
        with psycopg.connect(self.server.url(self.dbname)) as conn:
            rows = conn.execute("SELECT pending_id, state, payload FROM journal").fetchall()
        return {pid: (state, payload) for pid, state, payload in rows}

    def claims_of(self) -> dict[str, int]:
        with psycopg.connect(self.server.url(self.dbname)) as conn:
            rows = conn.execute("SELECT holder, count(*) FROM claims GROUP BY holder").fetchall()
        return {holder: n for holder, n in rows}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def cluster(tmp_path: Path, sandbox_process: SandboxProcess, postgres_server: PostgresServer) -> Iterator[Cluster]:
    made = Cluster(tmp_path, sandbox_process, postgres_server)
    try:
        yield made
    finally:
        made.stop()


def exactly_once(admin: SandboxAdmin, ids: list[str], cluster: Cluster) -> None:
    """Every id completed; every attempt for an id carried the same payload, which is the journaled one."""
    state = admin.state()
    attempts = broadcasts_by_id(state)
    journal = cluster.journal()
    addresses = {address.lower() for _, address in cluster.wallets}
    for pid in ids:
        assert pid in attempts, f"{pid} never broadcast"
        assert len(set(attempts[pid])) == 1, f"{pid} broadcast with {len(set(attempts[pid]))} payloads"
        assert journal[pid][1] == attempts[pid][0]
        assert sender(attempts[pid][0]) in addresses
    assert sorted(b["signatureId"] for b in state["broadcasts"] if b["signatureId"] in ids) == sorted(ids)


def _status(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def test_three_replicas_share_the_ids_and_each_is_broadcast_once(cluster: Cluster, process_admin: SandboxAdmin) -> None:
    ports = [free_port() for _ in range(3)]
    for port in ports:
        cluster.start(metrics_port=port)
    assert wait_for(lambda: all(_status(p, "/readyz")[0] == 200 for p in ports), 60)
    assert wait_for(lambda: all("3 live" in _status(p, "/readyz")[1] for p in ports), 30)
    items = cluster.pending("share", 60)
    process_admin.enqueue(items)
    ids = [item["id"] for item in items]
    assert wait_for(lambda: not process_admin.state()["pending"], 120)
    exactly_once(process_admin, ids, cluster)

    def shared() -> bool:
        polls = process_admin.state()["polls"]
        return len(polls) >= 9 and max(p["count"] for p in polls[-9:]) < len(cluster.wallets)

    # With all three live, each poll carries one replica's share, never every wallet. A heartbeat delayed past its
    # time-to-live on a loaded machine makes a replica poll everything for a moment (the claims keep that harmless),
    # so the check is on a run of nine polls with all three seen live, not on whichever nine came last.
    assert wait_for(shared, 30, 0.1)


def _share(port: int) -> int:
    """This replica's count of ETH ids from /readyz (``share: ETH 6/13``), or -1 before it polled as one of two."""
    _, body = _status(port, "/readyz")
    if "2 live" not in body or "ETH " not in body:
        return -1
    mine, total = body.rsplit("ETH ", 1)[1].split()[0].split("/")
    return int(mine) if int(mine) < int(total) else -1


def test_a_dead_replicas_ids_are_polled_before_the_survivors_next_regular_poll(
    tmp_path: Path, sandbox_process: SandboxProcess, postgres_server: PostgresServer, process_admin: SandboxAdmin
) -> None:
    """With a long period (8 s: time-to-live 4 s, a heartbeat every second), the survivor sees the SIGKILLed replica
    gone and polls exactly the dead one's ids in a takeover poll, before its own next regular poll (which lists
    all 13 wallets). An odd wallet count makes the two shares differ, so a poll's count says whose it was."""
    cluster = Cluster(tmp_path, sandbox_process, postgres_server, keys=13)
    try:
        ports = [free_port(), free_port()]
        victim, survivor = (cluster.start(metrics_port=port, period="8") for port in ports)
        assert wait_for(lambda: all(_share(port) > 0 for port in ports), 60)
        dead_share, own_share = _share(ports[0]), _share(ports[1])
        assert dead_share + own_share == 13 and dead_share != own_share
        polls_before = len(process_admin.state()["polls"])

        def survivor_polled() -> bool:
            return any(p["count"] == own_share for p in process_admin.state()["polls"][polls_before:])

        assert wait_for(survivor_polled, 30, 0.01)  # its next regular poll is a whole period away from here
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        after_death = len(process_admin.state()["polls"])
        assert wait_for(lambda: any(p["count"] == 13 for p in process_admin.state()["polls"][after_death:]), 60)
        polls = process_admin.state()["polls"][after_death:]
        # The first poll after the death is the takeover: only the dead replica's ids, before the regular one.
        assert [p["count"] for p in polls[:2]] == [dead_share, 13], polls
        assert survivor.poll() is None
    finally:
        cluster.stop()


def _wait_for_claims(cluster: Cluster, holders: int) -> dict[str, int]:
    found: dict[str, int] = {}

    def enough() -> bool:
        found.update(cluster.claims_of())
        return len([h for h, n in cluster.claims_of().items() if n > 0]) >= holders

    wait_for(enough, 60, 0.01)
    return cluster.claims_of()


def test_a_replica_killed_holding_claims_is_taken_over_with_the_journaled_bytes(
    cluster: Cluster, process_admin: SandboxAdmin
) -> None:
    process_admin.configure(latency=0.4)  # slow answers: claims are held while each broadcast is under way
    first, second = cluster.start(), cluster.start()
    items = cluster.pending("kill", 40)
    process_admin.enqueue(items)
    ids = [item["id"] for item in items]
    held = _wait_for_claims(cluster, 2)
    assert len(held) == 2, held
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    orphaned = cluster.claims_of()
    journal_at_kill = cluster.journal()
    process_admin.configure(latency=0.0)
    assert wait_for(lambda: not process_admin.state()["pending"], 120)
    exactly_once(process_admin, ids, cluster)
    journal = cluster.journal()
    for pid, (_state, payload) in journal_at_kill.items():
        assert journal[pid][1] == payload  # taken over: the journaled bytes, never a fresh signature
    assert second.poll() is None
    # The killed replica (its id ends in its pid and a random suffix) still held claims when it died.
    assert any(holder.rsplit("-", 2)[1] == str(first.pid) for holder in orphaned), orphaned


def test_a_database_restart_makes_replicas_unready_then_they_resume(
    cluster: Cluster, process_admin: SandboxAdmin, postgres_server: PostgresServer
) -> None:
    port = free_port()
    cluster.start(metrics_port=port)
    assert wait_for(lambda: _status(port, "/readyz")[0] == 200, 60)
    process_admin.configure(latency=0.2)
    items = cluster.pending("restart", 30)
    process_admin.enqueue(items)
    assert wait_for(lambda: len(process_admin.state()["broadcasts"]) >= 3, 60)
    postgres_server.stop()
    try:
        assert wait_for(lambda: _status(port, "/readyz")[0] == 503, 30)
    finally:
        postgres_server.start()
    process_admin.configure(latency=0.0)
    assert wait_for(lambda: _status(port, "/readyz")[0] == 200, 60)
    assert wait_for(lambda: not process_admin.state()["pending"], 120)
    exactly_once(process_admin, [item["id"] for item in items], cluster)


def test_a_network_cut_to_the_database_stops_all_signing(
    cluster: Cluster, process_admin: SandboxAdmin, postgres_server: PostgresServer
) -> None:
    proxy = TcpProxy(postgres_server.port)
    try:
        port = free_port()
        cluster.start(url=postgres_server.url(cluster.dbname, password=False, port=proxy.port), metrics_port=port)
        assert wait_for(lambda: _status(port, "/readyz")[0] == 200, 60)
        proxy.cut()
        items = cluster.pending("cut", 12)
        process_admin.enqueue(items)
        assert wait_for(lambda: _status(port, "/readyz")[0] == 503, 30)
        time.sleep(float(LEASE_S) + 1.5)  # several periods and a whole lease with the link down
        state = process_admin.state()
        assert state["broadcasts"] == [] and len(state["pending"]) == len(items)  # nothing signed without a claim
        assert not any(pid.startswith("cut-") for pid in cluster.journal())
        proxy.restore()
        assert wait_for(lambda: not process_admin.state()["pending"], 120)
        exactly_once(process_admin, [item["id"] for item in items], cluster)
    finally:
        proxy.close()


def test_a_wrong_database_password_is_one_line_without_the_url_password(cluster: Cluster) -> None:
    url = cluster.server.url(cluster.dbname)  # with the right password in it; the provider's wrong one wins
    proc = start_daemon(
        ["--testnet", "--store", url, "--runOnce", "--chain", "ETH"],
        {**cluster.env, "TATUM_KMS_STORE_PASSWORD": "not-the-password"},
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert cluster.server.password not in out + err and "not-the-password" not in out + err
    assert "password authentication failed" in err
