"""A daemon run in its own process for tests/daemon/test_daemon_quarantine.py: one cycle (runOnce) over the ETH
wallets of the store at argv[1], against the sandbox at argv[2], in-flight markers in argv[3]. The ETH signer kills the
process (SIGKILL, as a SIGSEGV in a C extension would end it) when asked to sign a pending id that starts with
"poison"."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from kms.chains import get_chain
from kms.chains.evm import evm_signer
from kms.daemon.loop import Daemon, DaemonConfig
from kms.daemon.quarantine import InFlight
from kms.hygiene import SecretBuffer
from kms.store import WalletStore
from kms.tatum import RetryPolicy, TatumClient
from tests.daemon.test_daemon_loop import ChainView


class KillingSigner:
    def __init__(self) -> None:
        self.inner = evm_signer("ETH")

    def sign(self, pending: Any, keys: Any, testnet: bool, gateway: Any) -> Any:
        if pending.id.startswith("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.sign(pending, keys, testnet, gateway)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main(store_path: str, url: str, inflight_dir: str) -> int:
    signer = KillingSigner()

    def registry(code: str) -> Any:
        chain = get_chain(code)
        return ChainView(chain, signer) if chain.code == "ETH" else chain

    config = DaemonConfig(chains=("ETH",), testnet=True, concurrency=4, run_once=True)
    with (
        WalletStore.open(Path(store_path), SecretBuffer(b"pw"), allow_weak_kdf=True) as store,
        TatumClient(url, "key", retry=RetryPolicy(attempts=2, initial_wait=0.01, jitter=0.01)) as client,
    ):
        daemon = Daemon(
            config, store, client, gateway=client.gateway(True), registry=registry,
            inflight=InFlight(Path(inflight_dir)),
        )  # fmt: skip
        try:
            daemon.run_forever()
        finally:
            daemon.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
