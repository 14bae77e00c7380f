"""Issue 15 item 2: a cycle has a deadline; a transaction stuck past it does not hold the cycle (nor the next), is
never processed twice, and finishes later in the background with its one payload."""

from __future__ import annotations

import threading
from typing import Any

from kms.chains import get_chain
from kms.chains.evm import evm_signer
from kms.daemon.loop import DaemonConfig, Outcome
from kms.daemon.model import CycleReport
from kms.sandbox import SandboxAdmin
from kms.store import WalletStore
from kms.tatum import TatumClient
from tests.daemon.test_daemon_loop import client, make_daemon, pending, registry_with, sent

__all__ = ["client"]  # a fixture of test_daemon_loop; store, sandbox and admin come from conftest


class StuckSigner:
    """Signs like the ETH signer, but a pending id starting with "stuck" waits until ``release`` is set."""

    def __init__(self) -> None:
        self.inner = evm_signer("ETH")
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[str] = []

    def sign(self, pending: Any, keys: Any, testnet: bool, gateway: Any) -> Any:
        self.calls.append(pending.id)
        if pending.id.startswith("stuck"):
            self.entered.set()
            self.release.wait(60)
        return self.inner.sign(pending, keys, testnet, gateway)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cycle_in_thread(daemon: Any) -> tuple[threading.Thread, list[CycleReport]]:
    reports: list[CycleReport] = []
    thread = threading.Thread(target=lambda: reports.append(daemon.run_cycle()), daemon=True)
    thread.start()
    thread.join(30)
    return thread, reports


def test_a_stuck_transaction_does_not_hold_the_cycle(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key = get_chain("ETH").generate_private_key
    stuck_key, ok_key = (store.add("ETH", True, {"privateKey": key(True)["privateKey"]}) for _ in range(2))
    signer = StuckSigner()
    config = DaemonConfig(chains=("ETH",), testnet=True, concurrency=4, cycle_deadline=1.0)
    daemon = make_daemon(store, client, registry_with({"ETH": signer}), config=config)
    admin.enqueue(pending("stuck-1", hashes=[stuck_key]))
    admin.enqueue(pending("ok-1", hashes=[ok_key]))
    try:
        thread, reports = _cycle_in_thread(daemon)
        assert not thread.is_alive(), "the cycle waited for the stuck transaction"
        assert signer.entered.is_set() and set(sent(admin)) == {"ok-1"}
        assert reports[0].abandoned == 1
        admin.enqueue(pending("ok-2", hashes=[ok_key]))
        thread, reports = _cycle_in_thread(daemon)  # the next cycle: the stuck id is skipped, not signed twice
        assert not thread.is_alive() and set(sent(admin)) == {"ok-1", "ok-2"}
        assert reports[0].outcomes[Outcome.SKIPPED] == 1
        signer.release.set()
        daemon.close()  # waits for the background transaction
    finally:
        signer.release.set()
        daemon.close()
    assert set(sent(admin)) == {"ok-1", "ok-2", "stuck-1"} and signer.calls.count("stuck-1") == 1
    entry = store.journal.lookup("stuck-1")
    assert entry is not None and entry.status == "broadcast"
