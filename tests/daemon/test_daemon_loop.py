"""The daemon's cycle in-process (real store file, real sandbox HTTP server on 127.0.0.1, real signers): key
resolution, unsupported chains, hooks (metrics, audit), concurrency, error reporting."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.chains.base import Chain
from kms.chains.evm import evm_signer
from kms.daemon.four_eye import FourEye, Verdict
from kms.daemon.keys import NO_KEYS, resolve_keys
from kms.daemon.loop import Daemon, DaemonConfig, Outcome
from kms.errors import KeyResolutionError, KmsError
from kms.metrics import DaemonMetrics
from kms.sandbox import Sandbox, SandboxAdmin
from kms.signing.base import SignedTransaction
from kms.store import WalletStore
from kms.tatum import RetryPolicy, TatumClient

RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"


@dataclass
class ChainView:
    """A registry entry with its signer replaced (tests of an unsupported chain, or a chain not yet wired)."""

    base: Chain
    signer: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)


def registry_with(signers: dict[str, Any]) -> Any:
    def lookup(code: str) -> Any:
        chain = get_chain(code)
        if chain.code in signers:
            return ChainView(chain, signers[chain.code])
        return chain

    return lookup


ETH_SIGNED = registry_with({"ETH": evm_signer("ETH")})
ETH_UNSUPPORTED = registry_with({"ETH": None})


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TatumClient]:
    with TatumClient(sandbox.url, "key", retry=RetryPolicy(attempts=3, initial_wait=0.01, jitter=0.01)) as c:
        yield c


def make_daemon(store: WalletStore, client: TatumClient, registry: Any = ETH_SIGNED, **kwargs: Any) -> Daemon:
    config = kwargs.pop("config", DaemonConfig(chains=("ETH",), testnet=True, concurrency=4))
    return Daemon(config, store, client, gateway=client.gateway(config.testnet), registry=registry, **kwargs)


def eth_tx(**extra: Any) -> str:
    tx = {"to": RECIPIENT, "value": "1", "gasPrice": "1000000000", "gas": "21000", "nonce": 1, "chainId": 11155111}
    return json.dumps({**tx, **extra})


def pending(pid: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "chain": "ETH", "serializedTransaction": eth_tx(), **fields}


def sent(admin: SandboxAdmin) -> dict[str, str]:
    return {b["signatureId"]: b["txData"] for b in admin.state()["broadcasts"]}


def errors(admin: SandboxAdmin) -> dict[str, str]:
    return {e["signatureId"]: e["error"] for e in admin.state()["errors"]}


# -- key resolution ----------------------------------------------------------------------------------------------------


def test_key_resolution(store: WalletStore, client: TatumClient, admin: SandboxAdmin) -> None:
    eth = get_chain("ETH")
    mnemonic_wallet = eth.generate_wallet(True)
    key_wallet = eth.generate_private_key(True)
    mnemonic_id = store.add("ETH", True, mnemonic_wallet)
    key_id = store.add("ETH", True, {"privateKey": key_wallet["privateKey"]})
    mainnet_id = store.add("ETH", False, {"privateKey": eth.generate_private_key(False)["privateKey"]})
    admin.enqueue(
        [
            pending("mnemonic-at-7", hashes=[mnemonic_id], index=7),
            pending("signatures-at-2", signatures=[{"id": mnemonic_id, "index": 2}]),
            pending("key", hashes=[key_id]),
            pending("mnemonic-no-index", hashes=[mnemonic_id]),
            pending("key-with-index", hashes=[key_id], index=1),
            pending("missing-wallet", hashes=["00000000-0000-4000-8000-000000000000", key_id]),
            pending("only-missing", hashes=["00000000-0000-4000-8000-000000000000"]),
            pending("wrong-network", hashes=[mainnet_id, key_id]),
        ]
    )
    missing = "00000000-0000-4000-8000-000000000000"
    # As upstream's --wallets: poll with these signatureIds, one of which is not in the store.
    config = DaemonConfig(chains=("ETH",), testnet=True, wallets=(mnemonic_id, key_id, mainnet_id, missing))
    daemon = make_daemon(store, client, config=config)
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    broadcast = sent(admin)
    assert Account.recover_transaction(broadcast["mnemonic-at-7"]).lower() == eth.address_at(mnemonic_wallet, 7, True)
    assert Account.recover_transaction(broadcast["signatures-at-2"]).lower() == eth.address_at(mnemonic_wallet, 2, True)
    assert Account.recover_transaction(broadcast["key"]).lower() == key_wallet["address"]
    assert Account.recover_transaction(broadcast["missing-wallet"]).lower() == key_wallet["address"]  # as upstream
    failed = errors(admin)
    assert set(failed) == {"mnemonic-no-index", "key-with-index", "only-missing", "wrong-network"}
    assert failed["mnemonic-no-index"] == (
        f"Private key was not found. Wallet {mnemonic_id} is mnemonic based, but KMS transaction mnemonic-no-index "
        "requires private key based, since tx was requested without index param. Please use another private key "
        "based wallet id or specify 'index' parameter for this mnemonic based wallet during request call "
        "(see docs: https://apidoc.tatum.io/)"
    )
    assert failed["key-with-index"] == (
        f"Private key was not found. Wallet {key_id} is private key based, but KMS transaction key-with-index "
        "requires mnemonic based, since tx was requested with index param. Please use mnemonic based wallet and "
        "signatureId (see docs: https://apidoc.tatum.io/)"
    )
    assert failed["only-missing"] == "No such wallet for signatureId '00000000-0000-4000-8000-000000000000'."
    assert "is a mainnet wallet" in failed["wrong-network"]
    assert report.outcomes[Outcome.BROADCAST] == 4 and report.outcomes[Outcome.FAILED] == 4
    assert "Wallets with requested private keys were not found" in NO_KEYS


def test_unsupported_chain_is_reported_once_and_nothing_signed(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("p1", hashes=[key_id]))
    daemon = make_daemon(store, client, ETH_UNSUPPORTED, four_eye=FourEye(admin.url + "/approval"))
    try:
        daemon.run_cycle()
        daemon.run_cycle()
    finally:
        daemon.close()
    state = admin.state()
    assert state["errors"] == [{"signatureId": "p1", "error": "signing ETH is not supported by this kms"}]
    assert state["broadcasts"] == [] and state["approvals"] == []
    assert store.journal_get("p1") is None


def test_signer_failure_is_reported_and_not_journaled(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue({**pending("bad-chain-id", hashes=[key_id]), "serializedTransaction": eth_tx(chainId=1)})
    daemon = make_daemon(store, client)
    try:
        daemon.run_cycle()
    finally:
        daemon.close()
    assert "chainId 1" in errors(admin)["bad-chain-id"]
    assert store.journal_get("bad-chain-id") is None


class SubmittingSigner:
    """A signer whose chain wants the signed transaction sent to a node first (kms.signing.base.Submitter)."""

    def __init__(self, store: WalletStore) -> None:
        self.store = store
        self.submitted: list[tuple[str, str | None]] = []

    def sign(self, pending: Any, keys: Any, testnet: bool, gateway: Any) -> SignedTransaction:
        return SignedTransaction(f"signed-{pending.id}", {"blockhash": "b"})

    def submit(self, signed: SignedTransaction, gateway: Any) -> str:
        assert gateway is not None and gateway.testnet is True
        # What the journal holds when the node is asked: the signed payload is already on record.
        self.submitted.append((signed.payload, self.store.journal_get(signed.payload.removeprefix("signed-"))))
        return f"txid-of-{signed.payload}"


def test_submitter_sends_to_the_node_after_journaling_and_broadcasts_what_it_returns(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("p1", hashes=[key_id]))
    signer = SubmittingSigner(store)
    daemon = make_daemon(store, client, registry_with({"ETH": signer}))
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert report.errors == []
    assert len(signer.submitted) == 1
    payload, journaled = signer.submitted[0]
    assert payload == "signed-p1" and journaled is not None and "signed-p1" in journaled
    assert sent(admin) == {"p1": "txid-of-signed-p1"}


class Boom(Exception):
    pass


class ExplodingSigner:
    def sign(self, *args: Any, **kwargs: Any) -> str:
        raise Boom("0xdeadbeef secret-looking library text")


def test_unexpected_exceptions_never_leak_library_text(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("p1", hashes=[key_id]))
    daemon = make_daemon(store, client, registry_with({"ETH": ExplodingSigner()}))
    try:
        daemon.run_cycle()
    finally:
        daemon.close()
    assert errors(admin) == {"p1": "internal error (Boom); nothing was signed"}


# -- hooks ---------------------------------------------------------------------------------------------------------


def test_metrics_and_audit_hooks(store: WalletStore, client: TatumClient, admin: SandboxAdmin) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue([pending("ok", hashes=[key_id]), pending("no", hashes=[key_id])])
    admin.configure(approval={"ids": {"no": "deny"}})
    metrics = DaemonMetrics()
    audit: list[dict[str, Any]] = []
    daemon = make_daemon(
        store, client, four_eye=FourEye(admin.url + "/approval"), metrics=metrics, audit=lambda r: audit.append(dict(r))
    )
    try:
        daemon.run_cycle()
    finally:
        daemon.close()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("kms_cycles_total") == 1
    assert sample("kms_pending_seen_total", chain="ETH") == 2
    assert sample("kms_signed_total", chain="ETH") == 1
    assert sample("kms_broadcast_total", chain="ETH") == 1
    assert sample("kms_four_eye_rejections_total", chain="ETH") == 1
    assert sample("kms_wallets", chain="ETH") == 1
    decisions = {r["pendingId"]: r for r in audit if r["record"] == "decision"}
    results = [r for r in audit if r["record"] == "broadcast"]
    assert set(decisions) == {"ok", "no"} and len(audit) == 3  # a decision each, and one broadcast result
    ok = decisions["ok"]
    assert ok["outcome"] == "signed" and ok["signatureIds"] == [key_id]
    assert ok["fourEye"] == {"verdict": "approved", "status": 200}
    sent_tx = next(iter(sent(admin).values()))
    assert ok["payloadSha256"] == hashlib.sha256(sent_tx.encode()).hexdigest()
    assert audit.index(ok) < audit.index(results[0])  # the decision is on record before the broadcast
    assert results[0]["pendingId"] == "ok" and results[0]["broadcast"]["ok"] is True
    assert results[0]["payloadSha256"] == ok["payloadSha256"]
    no = decisions["no"]
    assert no["outcome"] == "refused" and no["fourEye"] == {"verdict": "refused", "status": 403}
    assert no["payloadSha256"] is None
    assert daemon.ready()


def test_audit_failure_stops_the_broadcast(store: WalletStore, client: TatumClient, admin: SandboxAdmin) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("p1", hashes=[key_id]))

    def broken(record: Any) -> None:
        raise KmsError("disk full")

    daemon = make_daemon(store, client, audit=broken)
    try:
        first = daemon.run_cycle()
        admin.enqueue(pending("p2", hashes=[key_id]))
        second = daemon.run_cycle()
    finally:
        daemon.close()
    # Nothing leaves kms without its decision on record; after a failed write nothing more is signed either.
    assert sent(admin) == {}
    assert first.outcomes[Outcome.FAILED] == 1 and second.outcomes[Outcome.FAILED] >= 1


def test_transactions_are_processed_concurrently_within_the_bound(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    eth = get_chain("ETH")
    key_ids = [store.add("ETH", True, {"privateKey": eth.generate_private_key(True)["privateKey"]}) for _ in range(12)]
    admin.enqueue([pending(f"c{i}", hashes=[key_ids[i]]) for i in range(12)])
    admin.configure(faults=[{"kind": "delay", "seconds": 0.3, "path": "/v3/ethereum/broadcast", "times": -1}])
    config = DaemonConfig(chains=("ETH", "BTC", "BSC"), testnet=True, concurrency=3)
    daemon = make_daemon(store, client, config=config)
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert report.outcomes[Outcome.BROADCAST] == 12
    peak = admin.state()["peakInflight"]["POST /v3/ethereum/broadcast"]
    assert 2 <= peak <= 3


def test_one_sender_without_nonces_gets_consecutive_nonces_from_one_look_up(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    generated = get_chain("ETH").generate_private_key(True)
    key_id = store.add("ETH", True, {"privateKey": generated["privateKey"]})
    # No nonce given: the daemon looks the sender's count up once and hands out 5, 6, 7, 8 in the API's order.
    no_nonce = json.dumps({k: v for k, v in json.loads(eth_tx()).items() if k != "nonce"})
    admin.enqueue([pending(f"s{i}", hashes=[key_id], serializedTransaction=no_nonce) for i in range(4)])
    admin.configure(
        nonces={generated["address"]: 5},
        faults=[{"kind": "delay", "seconds": 0.2, "path": "/v3/ethereum/broadcast", "times": -1}],
    )
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("ETH",), testnet=True, concurrency=4))
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert report.outcomes[Outcome.BROADCAST] == 4
    state = admin.state()
    assert state["requests"]["GET /v3/ethereum/transaction/count"] == 1
    assert state["peakInflight"]["POST /v3/ethereum/broadcast"] > 1  # the broadcasts overlap
    nonces = {b["signatureId"]: _nonce(b["txData"]) for b in state["broadcasts"]}
    assert nonces == {"s0": 5, "s1": 6, "s2": 7, "s3": 8}
    assert {e.pending_id: e.meta["nonce"] for e in store.journal_entries()} == nonces


def _nonce(tx_data: str) -> int:
    import rlp

    return int.from_bytes(rlp.decode(bytes.fromhex(tx_data[2:]))[0], "big")


def test_a_failing_chain_does_not_stop_the_others(store: WalletStore, client: TatumClient, admin: SandboxAdmin) -> None:
    eth_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    store.add("BSC", True, {"privateKey": get_chain("BSC").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("eth-1", hashes=[eth_id]))
    admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/kms/pending/BSC", "times": -1}])
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("BSC", "ETH"), testnet=True))
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert set(sent(admin)) == {"eth-1"}
    assert "HTTP 400" in report.chain_errors["BSC"]


def test_not_ready_when_the_last_cycle_did_not_reach_the_api(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("ETH",), testnet=True))
    try:
        daemon.run_cycle()
        assert daemon.ready()
        admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/kms/pending/ETH", "times": -1}])
        daemon.run_cycle()
        assert not daemon.ready()
        admin.configure(faults=[])
        daemon.run_cycle()
        assert daemon.ready()
    finally:
        daemon.close()


def test_chains_without_wallets_are_not_polled(store: WalletStore, client: TatumClient, admin: SandboxAdmin) -> None:
    store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("BTC", "ETH", "BSC"), testnet=True))
    try:
        daemon.run_cycle()
    finally:
        daemon.close()
    assert [p["chain"] for p in admin.state()["polls"]] == ["ETH"]


# -- offchain withdrawals ------------------------------------------------------------------------------------------


def test_utxo_offchain_withdrawal_derives_per_input_and_uses_the_offchain_broadcast(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    from bitcointx.core import CTransaction
    from bitcointx.core.script import CScript
    from bitcointx.core.scripteval import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS, VerifyScript

    from kms.demo import _load_secp256k1_for_bitcointx, _pubkey_hash, _script

    btc = get_chain("BTC")
    wallet = btc.generate_wallet(True)
    sid = store.add("BTC", True, wallet)
    scripts = [_script(*_pubkey_hash(btc.address_at(wallet, i, True))) for i in (3, 5)]
    amount = 100_000
    bitcore = {
        "version": 1,
        "inputs": [{"prevTxId": f"{n:064x}", "outputIndex": 0, "sequenceNumber": 0xFFFFFFFF, "script": "",
                    "scriptString": "", "output": {"satoshis": amount, "script": s.hex()}}
                   for n, s in enumerate(scripts, start=1)],
        "outputs": [{"satoshis": 150_000, "script": scripts[0].hex()}],
        "nLockTime": 0,
    }  # fmt: skip
    admin.enqueue(
        {"id": "wd-pending-1", "chain": "BTC", "serializedTransaction": json.dumps(bitcore), "hashes": [sid],
         "withdrawalId": "withdrawal-77",
         "withdrawalResponses": [{"vIn": "a", "address": {"derivationKey": 3}},
                                 {"vIn": "-1"},
                                 {"vIn": "b", "address": {"derivationKey": 5}}]}
    )  # fmt: skip
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("BTC",), testnet=True))
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert report.outcomes[Outcome.BROADCAST] == 1, admin.state()["errors"]
    (broadcast,) = admin.state()["broadcasts"]
    assert broadcast["path"] == "/v3/offchain/withdrawal/broadcast"
    assert (broadcast["currency"], broadcast["withdrawalId"]) == ("BTC", "withdrawal-77")
    _load_secp256k1_for_bitcointx()
    tx = CTransaction.deserialize(bytes.fromhex(broadcast["txData"]))
    for i, script in enumerate(scripts):
        VerifyScript(
            tx.vin[i].scriptSig, CScript(script), tx, i, flags={SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS},
            amount=amount, witness=tx.wit.vtxinwit[i].scriptWitness,
        )  # fmt: skip


def test_offchain_withdrawal_from_a_key_wallet_is_refused(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    btc = get_chain("BTC")
    sid = store.add("BTC", True, {"privateKey": btc.generate_private_key(True)["privateKey"]})
    admin.enqueue(
        {"id": "wd-2", "chain": "BTC", "serializedTransaction": "{}", "hashes": [sid], "withdrawalId": "w",
         "withdrawalResponses": [{"vIn": "a", "address": {"derivationKey": 1}}]}
    )  # fmt: skip
    daemon = make_daemon(store, client, config=DaemonConfig(chains=("BTC",), testnet=True))
    try:
        daemon.run_cycle()
    finally:
        daemon.close()
    assert "needs a mnemonic based wallet" in errors(admin)["wd-2"]
    assert sent(admin) == {}


def test_a_wallet_of_another_chain_never_signs(store: WalletStore) -> None:
    btc_wallet = store.add("BTC", True, get_chain("BTC").generate_wallet(True))
    bsc_key = store.add("BSC", True, {"privateKey": get_chain("BSC").generate_private_key(True)["privateKey"]})
    eth = get_chain("ETH")
    for wallet_id, index in ((btc_wallet, 3), (bsc_key, None)):
        tx = PendingTransaction(id="p", chain="ETH", serialized_transaction=eth_tx(), hashes=(wallet_id,), index=index)
        with pytest.raises(KeyResolutionError, match="wallet but KMS transaction p is a ETH transaction"):
            resolve_keys(tx, eth, store, True)


class _ApprovalServer(ThreadingHTTPServer):
    """Answers the approval GET with the queued statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.mark.parametrize("status", [401, 408, 429])
def test_answers_that_are_no_verdict_are_asked_again(status: int) -> None:
    server = _ApprovalServer([status])
    try:
        four_eye = FourEye(server.url)
        tx = PendingTransaction(id="later", chain="ETH", serialized_transaction=eth_tx())
        first = four_eye.check(tx)
        assert first.verdict is Verdict.UNAVAILABLE and first.status == status
        assert four_eye.check(tx).approved
    finally:
        server.shutdown()
        server.server_close()


def test_a_refusal_is_a_refusal() -> None:
    server = _ApprovalServer([403])
    try:
        decision = FourEye(server.url).check(PendingTransaction(id="x", chain="ETH", serialized_transaction="{}"))
        assert decision.verdict is Verdict.REFUSED and decision.status == 403 and decision.reason == "HTTP 403"
    finally:
        server.shutdown()
        server.server_close()


def test_an_evm_offchain_withdrawal_needs_its_index(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    mnemonic_id = store.add("ETH", True, get_chain("ETH").generate_wallet(True))
    admin.enqueue(
        pending(
            "eth-offchain",
            hashes=[mnemonic_id],
            withdrawalId="w-1",
            withdrawalResponses=[{"vIn": "a", "address": {"derivationKey": 4}}],
        )
    )
    daemon = make_daemon(store, client)
    try:
        daemon.run_cycle()
    finally:
        daemon.close()
    assert sent(admin) == {}  # withdrawalResponses are a UTXO signer's business; ETH still needs an index
    assert "mnemonic based" in errors(admin)["eth-offchain"]


def test_a_pending_id_that_comes_back_changed_is_not_sent(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.enqueue(pending("p1", hashes=[key_id]))
    admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/ethereum/broadcast", "times": 1}])
    daemon = make_daemon(store, client)
    try:
        daemon.run_cycle()  # signed and journaled, broadcast refused once
        journaled = store.journal_get("p1")
        assert journaled is not None and sent(admin) == {}
        admin.reset()
        admin.enqueue(pending("p1", hashes=[key_id], serializedTransaction=eth_tx(value="999")))
        daemon.run_cycle()
    finally:
        daemon.close()
    assert sent(admin) == {}  # neither the old bytes for the new request, nor a second signature
    assert "different serializedTransaction" in errors(admin)["p1"]
    assert store.journal_get("p1") == journaled


def test_held_and_poisoned_ids_are_neither_signed_nor_sent(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin
) -> None:
    key_id = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    store.journal.hold("held-1", "signed per the audit log", chain="ETH", payload_sha256="ab" * 32)
    store.journal.quarantine("poisoned-1", "ETH", "took a worker down")
    for pid in ("held-1", "poisoned-1", "ok-1"):
        admin.enqueue(pending(pid, hashes=[key_id]))
    daemon = make_daemon(store, client)
    try:
        report = daemon.run_cycle()
    finally:
        daemon.close()
    assert set(sent(admin)) == {"ok-1"} and errors(admin) == {}
    assert report.outcomes[Outcome.SKIPPED] == 2
    assert {e.pending_id: e.status for e in store.journal.entries()} == {
        "held-1": "held", "poisoned-1": "poisoned", "ok-1": "broadcast",
    }  # fmt: skip


def test_refusals_remembered_in_memory_are_bounded(
    store: WalletStore, client: TatumClient, admin: SandboxAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 8: the in-memory set of refused ids keeps only the newest; a forgotten one is still never signed
    (the journal remembers it) and not asked about again."""
    import kms.daemon.loop as loop_module

    monkeypatch.setattr(loop_module, "_REFUSED_MEMORY", 3, raising=False)
    wallet = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.configure(approval={"default": "deny"})
    admin.enqueue([pending(f"r{i}", hashes=[wallet]) for i in range(8)])
    daemon = make_daemon(store, client, four_eye=FourEye(admin.url + "/approval"))
    try:
        first = daemon.run_cycle()
        assert first.outcomes[Outcome.REFUSED] == 8
        remembered = list(daemon._refused_this_run)  # the newest three (refusals come in concurrently, in any order)
        assert len(remembered) == 3 and set(remembered) <= {f"r{i}" for i in range(8)}
        asked = len(admin.state()["approvals"])
        second = daemon.run_cycle()
    finally:
        daemon.close()
    assert second.outcomes[Outcome.SKIPPED] == 8
    assert len(admin.state()["approvals"]) == asked and sent(admin) == {}


def test_the_alerting_metrics_are_fed_by_a_real_cycle(
    store: WalletStore, sandbox: Sandbox, admin: SandboxAdmin
) -> None:
    """The series the shipped alerts and dashboard read move when the daemon works: four-eye verdicts and latency,
    Tatum request latency and retries (through the client's observer), the journal's entries per state, and a failed
    audit write."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    metrics = DaemonMetrics()
    wallet = store.add("ETH", True, {"privateKey": get_chain("ETH").generate_private_key(True)["privateKey"]})
    admin.configure(approval={"default": "approve", "ids": {"deny-1": "deny"}})
    admin.configure(faults=[{"kind": "status", "status": 503, "times": 1, "path": "/v3/kms/pending/"}])
    admin.enqueue([pending("ok-1", hashes=[wallet]), pending("deny-1", hashes=[wallet])])

    def broken_audit(record: object) -> None:
        raise OSError("disk full")

    retry = RetryPolicy(attempts=3, initial_wait=0.01, jitter=0.01)
    with TatumClient(sandbox.url, "key", retry=retry, observer=metrics) as client:
        daemon = make_daemon(store, client, four_eye=FourEye(admin.url + "/approval"), metrics=metrics)
        try:
            daemon.run_cycle()
        finally:
            daemon.close()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
            for s in family.samples
        }
        assert samples[("kms_four_eye_verdicts_total", (("verdict", "approved"),))] == 1
        assert samples[("kms_four_eye_verdicts_total", (("verdict", "refused"),))] == 1
        assert samples[("kms_four_eye_request_duration_seconds_count", ())] == 2
        assert samples[("kms_tatum_retries_total", (("operation", "pending"),))] == 1
        assert samples[("kms_tatum_request_duration_seconds_count", (("operation", "pending"),))] >= 1
        assert samples[("kms_tatum_request_duration_seconds_count", (("operation", "broadcast"),))] == 1
        assert samples[("kms_audit_write_failures_total", ())] == 0
        admin.enqueue(pending("ok-2", hashes=[wallet]))
        daemon = make_daemon(store, client, metrics=metrics, audit=broken_audit)
        try:
            daemon.run_cycle()  # the journal gauge is set at the cycle's start, from the first cycle's entries
        finally:
            daemon.close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in family.samples
    }
    assert samples[("kms_journal_entries", (("state", "broadcast"),))] == 1
    assert samples[("kms_journal_entries", (("state", "refused"),))] == 1
    assert samples[("kms_journal_entries", (("state", "signed"),))] == 0
    assert samples[("kms_audit_write_failures_total", ())] == 1
    assert samples[("kms_audit_log_broken", ())] == 1
