"""Issue 15 items 2 and 4: every outbound request has a total deadline and a cap on its answer, against real servers
on 127.0.0.1 that trickle bytes or send too many. Assertions are on outcomes, never on durations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.daemon.four_eye import FourEye, Verdict
from kms.daemon.loop import Daemon, DaemonConfig, Outcome
from kms.errors import TatumApiError
from kms.hygiene import SecretBuffer
from kms.sandbox import Sandbox, SandboxAdmin
from kms.signing.evm_lookups import EvmNodeLookups
from kms.store import KdfParams, WalletStore
from kms.tatum import MalformedResponseError, RetryPolicy, TatumClient, TatumUnavailableError
from tests.hostile_servers import Answer, hostile_server

TRICKLE = 0.25
"""Seconds between bytes: the 20-byte answers below take about 5 s, the deadlines are 1 s."""
SLOW_EMPTY_LIST = Answer(body=b"[" + b" " * 18 + b"]", trickle_every=TRICKLE)
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


def evm_lookups(client: TatumClient, code: str) -> EvmNodeLookups:
    """One EVM chain's look-ups as the daemon makes them: over the daemon client's gateway (its bounded transport)."""
    return EvmNodeLookups(client.gateway(True), code, get_chain(code).facts.route)  # type: ignore[attr-defined]


def _client(url: str, **kwargs: object) -> TatumClient:
    return TatumClient(url, "key", retry=RetryPolicy.none(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers-and-body"])
def test_a_trickled_pending_list_fails_at_its_deadline(headers_too: bool) -> None:
    answer = Answer(body=SLOW_EMPTY_LIST.body, trickle_every=TRICKLE, trickle_headers=headers_too)
    with hostile_server(lambda method, path: answer) as server, _client(server.url, deadline=1.0) as client:
        with pytest.raises(TatumUnavailableError):
            client.pending("ETH", ["w1"])


def test_retries_end_at_the_deadline() -> None:
    """Trickled 503s with a retry policy that would try 50 times: the deadline ends the request, not the policy."""
    hits: list[str] = []

    def answer(method: str, path: str) -> Answer:
        hits.append(path)
        return Answer(status=503, body=b'{"message": "later"}', trickle_every=0.1)

    policy = RetryPolicy(attempts=50, initial_wait=0.01, jitter=0.0, max_total=600.0)
    with hostile_server(answer) as server, TatumClient(server.url, "key", retry=policy, deadline=1.0) as client:
        with pytest.raises(TatumApiError):
            client.pending("ETH", ["w1"])
    assert len(hits) < 50


def test_an_endless_pending_list_is_cut_at_its_cap() -> None:
    answer = Answer(body=b" " * 4096, repeat=5_000)  # 20 MB if read to the end
    with hostile_server(lambda method, path: answer) as server, _client(server.url, max_pending_bytes=100_000) as c:
        with pytest.raises(MalformedResponseError, match="larger than 100000 bytes"):
            c.pending("ETH", ["w1"])


def test_a_declared_oversized_answer_is_refused_before_reading() -> None:
    answer = Answer(body=b"[" + b" " * 200_000 + b"]")
    with hostile_server(lambda method, path: answer) as server, _client(server.url, max_pending_bytes=100_000) as c:
        with pytest.raises(MalformedResponseError, match="larger than 100000 bytes"):
            c.pending("ETH", ["w1"])


def test_the_pending_cap_does_not_apply_to_a_list_within_it() -> None:
    items = [{"id": f"p{i}", "chain": "ETH", "hashes": ["w1"], "serializedTransaction": "{}"} for i in range(500)]
    answer = Answer(body=json.dumps(items).encode())
    with hostile_server(lambda method, path: answer) as server, _client(server.url) as client:
        assert len(client.pending("ETH", ["w1"]).transactions) == 500


def test_other_answers_are_capped_too() -> None:
    """A broadcast result is small: a 2 MB one is refused (the pending-list cap does not apply)."""
    answer = Answer(body=b'{"txId": "' + b"a" * 2_000_000 + b'"}')
    with hostile_server(lambda method, path: answer) as server, _client(server.url) as client:
        with pytest.raises(MalformedResponseError, match="larger than"):
            client.broadcast("ethereum", "0xf8", "p1")


def test_evm_lookups_through_the_daemon_client_are_bounded() -> None:
    """Node look-ups go through the daemon client's bounded transport with the gateway's own cap (4 MiB: node answers
    can be larger than the Tatum API's own), not the client's 1 MiB default."""
    fee = {"answer": b'{"medium": "' + b"1" * 5_000_000 + b'"}'}

    def answer(method: str, path: str) -> Answer:
        if "/transaction/count/" in path:
            return Answer(body=b"7" + b" " * 19, trickle_every=TRICKLE)
        return Answer(body=fee["answer"])

    with hostile_server(answer) as server, _client(server.url, deadline=1.0) as client:
        lookups = evm_lookups(client, "ETH")
        with pytest.raises(TatumApiError):
            lookups.transaction_count(RECIPIENT)
        with pytest.raises(TatumApiError, match="larger than 4194304 bytes"):
            lookups.gas_price()
        fee["answer"] = b'{"medium": "7000000000"' + b" " * 2_000_000 + b"}"  # over 1 MiB, under 4 MiB
        assert lookups.gas_price() == 7_000_000_000


@pytest.mark.parametrize(
    "answer",
    [
        Answer(body=b'{"approved": true}' + b" " * 10, trickle_every=TRICKLE),
        Answer(body=b'{"approved": true}' + b" " * 10, trickle_every=TRICKLE, trickle_headers=True),
        Answer(body=b" " * 1_000_000),
        Answer(body=b" " * 4096, repeat=2_000),
    ],
    ids=["trickled-body", "trickled-headers", "1 MB", "endless"],
)
def test_an_approval_that_is_slow_or_huge_is_no_approval(answer: Answer) -> None:
    with hostile_server(lambda method, path: answer) as server:
        four_eye = FourEye(server.url, timeout=1.0)
        try:
            decision = four_eye.check(PendingTransaction(id="p1", chain="ETH", serialized_transaction="{}"))
        finally:
            four_eye.close()
    assert decision.verdict is Verdict.UNAVAILABLE


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with WalletStore.open(
        tmp_path / "w.db", SecretBuffer(b"pw"), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as s:
        yield s


def test_a_slow_approval_fails_closed_for_its_transaction_only(store: WalletStore) -> None:
    eth = get_chain("ETH")
    wallets = [store.add("ETH", True, {"privateKey": eth.generate_private_key(True)["privateKey"]}) for _ in "ab"]
    tx = {"to": RECIPIENT, "value": "1", "gasPrice": "1000000000", "gas": "21000", "nonce": 1, "chainId": 11155111}

    def approval(method: str, path: str) -> Answer:
        return SLOW_EMPTY_LIST if path.endswith("/slow") else Answer(body=b"{}")

    with Sandbox() as sandbox, SandboxAdmin(sandbox.url) as admin, hostile_server(approval) as approver:
        admin.enqueue(
            [
                {"id": pid, "chain": "ETH", "serializedTransaction": json.dumps(tx), "hashes": [wallet]}
                for pid, wallet in zip(("slow", "fast"), wallets, strict=True)
            ]
        )
        with _client(sandbox.url) as client:
            four_eye = FourEye(approver.url, timeout=1.0)
            config = DaemonConfig(chains=("ETH",), testnet=True, concurrency=2)
            daemon = Daemon(config, store, client, four_eye=four_eye, gateway=client.gateway(True))
            try:
                report = daemon.run_cycle()
            finally:
                daemon.close()
                four_eye.close()
        broadcast = {b["signatureId"] for b in admin.state()["broadcasts"]}
    assert broadcast == {"fast"}
    assert report.outcomes[Outcome.UNAVAILABLE] == 1 and report.outcomes[Outcome.BROADCAST] == 1
