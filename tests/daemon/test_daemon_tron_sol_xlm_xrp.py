"""TRON, SOL, XLM and XRP through the daemon's own path: wallets in a real store, pending transactions as the Tatum API
hands them out on the sandbox (real HTTP on 127.0.0.1), one daemon cycle through the chain registry, and what reaches
the broadcast endpoint compared byte for byte with upstream's vectors. SOL goes through the sandbox's Solana node
(which verifies every signature it is sent); its crash recovery re-sends, re-signs or only broadcasts as the node
proves; bad input ends as one line in the batch report while the other chains go on."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from solders.transaction import Transaction
from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope
from tronpy.keys import Signature
from tronpy.proto.transaction import calculate_txid_from_raw_data
from xrpl.core.binarycodec import decode, encode_for_signing
from xrpl.core.keypairs import derive_classic_address, is_valid_message

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.chains.sol import RPC_PATH
from kms.chains.xlm import network_passphrase
from kms.daemon.journal import request_sha256
from kms.daemon.loop import Daemon, DaemonConfig, Outcome
from kms.sandbox import Sandbox, SandboxAdmin
from kms.signing.sol import SolSigner
from kms.signing.tron_protobuf import encode_raw_data
from kms.store import WalletStore
from kms.store.journal import JournalState
from kms.tatum import RetryPolicy, TatumClient
from tests.conftest import load_vectors
from tests.signing_fakes import handle, raw_key

CHAINS = ("TRON", "SOL", "XLM", "XRP")
API_KEY = "test-api-key"  # what the SOL vectors' rpcPath carries
VECTORS = [v for chain in ("tron", "sol", "xlm", "xrp") for v in load_vectors(f"signing-{chain}.json")]
SIGNED = [v for v in VECTORS if "txData" in v["expected"]]
REFUSED = [v for v in VECTORS if "error" in v["expected"]]
SOL_VECTOR = next(v for v in VECTORS if v["chain"] == "SOL")
KEY_FIELDS = ("privateKey", "secret")


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TatumClient]:
    with TatumClient(sandbox.url, API_KEY, retry=RetryPolicy(attempts=2, initial_wait=0.01, jitter=0.01)) as c:
        yield c


def run_cycle(store: WalletStore, client: TatumClient, testnet: bool = True, audit: Any = None) -> Any:
    config = DaemonConfig(chains=CHAINS, testnet=testnet, concurrency=4)
    daemon = Daemon(config, store, client, gateway=client.gateway(testnet), audit=audit)
    try:
        return daemon.run_cycle()
    finally:
        daemon.close()


def store_wallets(store: WalletStore, vector: Mapping[str, Any]) -> list[str]:
    wallets = vector["input"].get("wallets") or [vector["input"]["wallet"]]
    return [
        store.add(vector["chain"], vector["testnet"], {k: v for k, v in wallet.items() if k in KEY_FIELDS})
        for wallet in wallets
    ]


def queued(vector: Mapping[str, Any], ids: list[str], **extra: Any) -> dict[str, Any]:
    return {**vector["input"]["pending"], "hashes": ids, **extra}


def broadcasts(admin: SandboxAdmin) -> dict[str, dict[str, Any]]:
    return {b["signatureId"]: b for b in admin.state()["broadcasts"]}


def errors(admin: SandboxAdmin) -> dict[str, str]:
    return {e["signatureId"]: e["error"] for e in admin.state()["errors"]}


def use_vector_node(sandbox: Sandbox, vector: Mapping[str, Any]) -> None:
    answer = vector["input"]["rpcAnswers"]["getLatestBlockhash"]
    sandbox.state.solana.configure(
        {"blockhash": answer["blockhash"], "lastValidBlockHeight": answer["lastValidBlockHeight"]}
    )


# -- upstream's vectors, byte for byte at the broadcast endpoint -------------------------------------------------------


@pytest.mark.parametrize("vector", SIGNED, ids=lambda v: f"{v['chain']}: {v['description']}")
def test_every_vector_reaches_the_broadcast_endpoint_byte_for_byte(
    vector: dict[str, Any], sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    if vector["chain"] == "SOL":
        use_vector_node(sandbox, vector)
    pending_id = vector["input"]["pending"]["id"]
    admin.enqueue(queued(vector, store_wallets(store, vector)))
    report = run_cycle(store, client, vector["testnet"])
    assert report.errors == [] and report.outcomes[Outcome.BROADCAST] == 1
    sent = broadcasts(admin)[pending_id]
    assert sent["path"] == vector["expected"]["broadcastPath"]
    assert sent["txData"] == vector["expected"]["txData"]
    entry = store.journal.lookup(pending_id)
    assert entry is not None and entry.state is JournalState.BROADCAST
    if vector["chain"] == "SOL":
        node = sandbox.state.solana
        assert node.sent == [vector["expected"]["sentTransactionBase64"]]
        assert [(m, p) for m, p in node.calls] == [(c["method"], c["params"]) for c in vector["expected"]["rpcCalls"]]
        # the journal holds the wire transaction and what a restart needs to decide about it
        assert entry.payload == vector["expected"]["sentTransactionBase64"]
        blockhash = vector["input"]["rpcAnswers"]["getLatestBlockhash"]
        assert entry.meta is not None and entry.meta["blockhash"] == blockhash["blockhash"]
        assert entry.meta["lastValidBlockHeight"] == blockhash["lastValidBlockHeight"]
    else:
        assert entry.payload == vector["expected"]["txData"]


@pytest.mark.parametrize("vector", REFUSED, ids=lambda v: f"{v['chain']}: {v['description'][:40]}")
def test_upstream_refusals_end_in_the_batch_report(
    vector: dict[str, Any], admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    pending_id = vector["input"]["pending"]["id"]
    admin.enqueue(queued(vector, store_wallets(store, vector)))
    run_cycle(store, client, vector["testnet"])
    assert errors(admin) == {pending_id: vector["expected"]["error"]}
    assert broadcasts(admin) == {} and store.journal.lookup(pending_id) is None


def test_tron_mnemonic_wallet_signs_at_the_pending_index(
    admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    tron = get_chain("TRON")
    mnemonic = next(v for v in load_vectors("derivation.json") if v["chain"] == "TRON")["input"]["mnemonic"]
    wallet = tron.wallet_from_mnemonic(mnemonic, True)
    signature_id = store.add("TRON", True, wallet)
    owner = "41" + tron_hex_address(tron.address_at(wallet, 5, True))
    vector = next(v for v in SIGNED if v["chain"] == "TRON")
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] = owner
    tx["raw_data_hex"] = encode_raw_data(tx["raw_data"]).hex()
    tx["txID"] = calculate_txid_from_raw_data(tx["raw_data"])  # tronpy's own encoder agrees on the id
    admin.enqueue({"id": "tron-at-5", "chain": "TRON", "serializedTransaction": json.dumps(tx),
                   "hashes": [signature_id], "index": 5})  # fmt: skip
    run_cycle(store, client)
    signed = json.loads(broadcasts(admin)["tron-at-5"]["txData"])
    recovered = Signature(bytes.fromhex(signed["signature"][0])).recover_public_key_from_msg_hash(
        bytes.fromhex(signed["txID"])
    )
    assert recovered.to_hex_address() == owner


def tron_hex_address(base58: str) -> str:
    from tronpy.keys import to_hex_address

    return to_hex_address(base58)[2:]


def test_withdrawal_id_is_ignored_as_upstream_ignores_it(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    use_vector_node(sandbox, SOL_VECTOR)
    expected = {}
    for chain in CHAINS:
        vector = next(v for v in SIGNED if v["chain"] == chain and v["testnet"])
        admin.enqueue(queued(vector, store_wallets(store, vector), withdrawalId="w-" + chain))
        expected[vector["input"]["pending"]["id"]] = vector["expected"]
    run_cycle(store, client)
    sent = broadcasts(admin)
    assert {pid: (b["path"], b["txData"]) for pid, b in sent.items()} == {
        pid: (e["broadcastPath"], e["txData"]) for pid, e in expected.items()
    }
    assert all(b["withdrawalId"] is None and b["route"] != "offchain" for b in sent.values())


# -- bad input: one line in the batch report, nothing signed or sent, the other chains go on ---------------------------


def test_bad_input_is_one_line_in_the_report_and_the_daemon_goes_on(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    use_vector_node(sandbox, SOL_VECTOR)
    by_chain = {chain: next(v for v in SIGNED if v["chain"] == chain and v["testnet"]) for chain in CHAINS}
    ids = {chain: store_wallets(store, vector) for chain, vector in by_chain.items()}
    stranger = store.add("SOL", True, {"privateKey": get_chain("SOL").generate_private_key(True)["privateKey"]})
    xrp_tx = json.loads(by_chain["XRP"]["input"]["pending"]["serializedTransaction"])
    bad = {
        "xlm-not-base64": ("XLM", "not base64!", ids["XLM"], "XLM serializedTransaction is not base64"),
        "xrp-other-account": ("XRP", json.dumps({**xrp_tx, "Account": "rGuN53T7cUp6Ec5L2tX9H7oJ7vQzVy6Cvq"}),
                              ids["XRP"], "the XRP transaction's Account is not the address of the signing key"),
        "xrp-duplicate-key": ("XRP", '{"Account": "a", "Account": "b"}', ids["XRP"], "duplicate key 'Account'"),
        "tron-signed": ("TRON", by_chain["TRON"]["expected"]["txData"], ids["TRON"], "Transaction is already signed"),
        "tron-xrp-wallet": ("TRON", by_chain["TRON"]["input"]["pending"]["serializedTransaction"],
                            [*ids["TRON"], *ids["XRP"]],
                            "is a XRP wallet but KMS transaction tron-xrp-wallet is a TRON transaction"),
        "sol-extra-key": ("SOL", by_chain["SOL"]["input"]["pending"]["serializedTransaction"],
                          [*ids["SOL"], stranger], "unknown signer:"),
        "sol-bad-hex": ("SOL", '{"txData": "zz"}', ids["SOL"], "SOL serializedTransaction has no txData hex"),
    }  # fmt: skip
    admin.enqueue([{"id": pid, "chain": chain, "serializedTransaction": text, "hashes": hashes}
                   for pid, (chain, text, hashes, _) in bad.items()])  # fmt: skip
    good = {v["input"]["pending"]["id"]: v["expected"]["txData"] for v in by_chain.values()}
    admin.enqueue([queued(vector, ids[chain]) for chain, vector in by_chain.items()])
    report = run_cycle(store, client)
    reported = errors(admin)
    assert set(reported) == set(bad)
    for pending_id, (_, _, _, message) in bad.items():
        assert message in reported[pending_id] and "\n" not in reported[pending_id]
        assert store.journal.lookup(pending_id) is None
    assert {pid: b["txData"] for pid, b in broadcasts(admin).items()} == good
    assert report.outcomes[Outcome.FAILED] == len(bad) and report.outcomes[Outcome.BROADCAST] == len(good)
    assert sandbox.state.solana.sent == [SOL_VECTOR["expected"]["sentTransactionBase64"]]


def test_a_failing_solana_node_is_reported_and_nothing_is_sent(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/blockchain/node/SOL", "times": -1}])
    tron = next(v for v in SIGNED if v["chain"] == "TRON")
    admin.enqueue([queued(SOL_VECTOR, store_wallets(store, SOL_VECTOR)), queued(tron, store_wallets(store, tron))])
    run_cycle(store, client)
    sol_id = SOL_VECTOR["input"]["pending"]["id"]
    assert errors(admin)[sol_id].startswith("SOL blockhash")
    assert set(broadcasts(admin)) == {tron["input"]["pending"]["id"]}
    assert store.journal.lookup(sol_id) is None and sandbox.state.solana.sent == []


# -- SOL after a crash: journaled, not yet sent ---------------------------------------------------------------------


def crashed_after_journaling(sandbox: Sandbox, store: WalletStore, client: TatumClient) -> tuple[dict[str, Any], str]:
    """The state a crash between journaling and sending leaves: the SOL pending transaction queued again, its signed
    wire transaction (with blockhash and lastValidBlockHeight) journaled, nothing sent. Returns (pending, payload)."""
    use_vector_node(sandbox, SOL_VECTOR)
    ids = store_wallets(store, SOL_VECTOR)
    pending = queued(SOL_VECTOR, ids)
    keys = [handle(raw_key("SOL", w["privateKey"])) for w in SOL_VECTOR["input"]["wallets"]]
    as_daemon_sees_it = PendingTransaction(
        id=pending["id"], chain="SOL", serialized_transaction=pending["serializedTransaction"], hashes=tuple(ids)
    )
    signed = SolSigner("SOL", RPC_PATH).sign(as_daemon_sees_it, keys, True, client.gateway(True))
    store.journal.put(pending["id"], "SOL", signed.payload, request_sha256(as_daemon_sees_it), signed.meta)
    sandbox.state.solana.calls.clear()
    return pending, signed.payload


def tx_id(payload: str) -> str:
    return str(Transaction.from_bytes(base64.b64decode(payload)).signatures[0])


def test_sol_that_landed_before_the_crash_is_only_broadcast(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    pending, payload = crashed_after_journaling(sandbox, store, client)
    sandbox.state.solana.land(payload)  # it was sent, and landed, just before the crash
    admin.enqueue(pending)
    report = run_cycle(store, client)
    assert report.outcomes[Outcome.REBROADCAST] == 1
    assert broadcasts(admin)[pending["id"]]["txData"] == tx_id(payload)
    node = sandbox.state.solana
    assert node.sent == [] and [m for m, _ in node.calls] == ["getBlockHeight", "getSignatureStatuses"]
    entry = store.journal.lookup(pending["id"])
    assert entry is not None and entry.payload == payload and entry.state is JournalState.BROADCAST


def test_sol_whose_blockhash_may_still_be_valid_is_resent_byte_for_byte(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    pending, payload = crashed_after_journaling(sandbox, store, client)
    assert payload == SOL_VECTOR["expected"]["sentTransactionBase64"]
    admin.enqueue(pending)
    report = run_cycle(store, client)
    assert report.outcomes[Outcome.REBROADCAST] == 1
    node = sandbox.state.solana
    assert node.sent == [payload]  # the same bytes, the same signature
    assert [m for m, _ in node.calls] == ["getBlockHeight", "getSignatureStatuses", "sendTransaction", "getTransaction"]
    assert broadcasts(admin)[pending["id"]]["txData"] == SOL_VECTOR["expected"]["txData"]
    entry = store.journal.lookup(pending["id"])
    assert entry is not None and entry.payload == payload and entry.state is JournalState.BROADCAST


def test_sol_proven_expired_and_never_landed_is_resigned_as_a_journal_transition(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    pending, old = crashed_after_journaling(sandbox, store, client)
    node = sandbox.state.solana
    fresh_blockhash = "4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM"
    node.configure({"blockHeight": 2001, "blockhash": fresh_blockhash, "lastValidBlockHeight": 2151})
    admin.enqueue(pending)
    audit: list[dict[str, Any]] = []
    report = run_cycle(store, client, audit=audit.append)
    assert report.errors == [] and report.outcomes[Outcome.BROADCAST] == 1
    calls = [m for m, _ in node.calls]
    # the old signature is proven absent (after the height passed its last valid height) before anything is signed
    assert calls == [
        "getBlockHeight",
        "getSignatureStatuses",
        "getLatestBlockhash",
        "sendTransaction",
        "getTransaction",
    ]
    assert node.calls[1][1][0] == [tx_id(old)]
    entry = store.journal.lookup(pending["id"])
    assert entry is not None and entry.state is JournalState.BROADCAST
    new = entry.payload
    assert new is not None and new != old and node.sent == [new]
    assert entry.meta is not None and entry.meta["blockhash"] == fresh_blockhash
    assert entry.meta["replacedPayloadSha256"] == hashlib.sha256(old.encode()).hexdigest()
    assert "re-signed" in entry.reason
    decision = next(r for r in audit if r["record"] == "decision")
    assert decision["replacesPayloadSha256"] == entry.meta["replacedPayloadSha256"]
    assert decision["payloadSha256"] == hashlib.sha256(new.encode()).hexdigest()
    assert broadcasts(admin)[pending["id"]]["txData"] == tx_id(new) != tx_id(old)
    assert sorted(node.snapshot()["landed"]) == [tx_id(new)]  # one pending id, one landed transaction
    # the fresh transaction is the same message under the fresh blockhash, signed by the same keys (solders verifies)
    old_tx, new_tx = (Transaction.from_bytes(base64.b64decode(p)) for p in (old, new))
    new_tx.verify()
    assert str(new_tx.message.recent_blockhash) == fresh_blockhash
    assert new_tx.message.account_keys == old_tx.message.account_keys
    assert new_tx.message.instructions == old_tx.message.instructions


def test_sol_recovery_with_an_unreachable_node_sends_nothing_and_keeps_the_journal(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    pending, payload = crashed_after_journaling(sandbox, store, client)
    admin.configure(faults=[{"kind": "status", "status": 400, "path": "/v3/blockchain/node/SOL", "times": -1}])
    admin.enqueue(pending)
    run_cycle(store, client)
    assert errors(admin)[pending["id"]].startswith("SOL block height")
    assert broadcasts(admin) == {} and sandbox.state.solana.sent == []
    entry = store.journal.lookup(pending["id"])
    assert entry is not None and entry.payload == payload and entry.state is JournalState.SIGNED


# -- independent checks of what the daemon broadcast -------------------------------------------------------------------


def test_broadcasts_verify_with_the_chain_libraries(
    sandbox: Sandbox, admin: SandboxAdmin, store: WalletStore, client: TatumClient
) -> None:
    """Fresh wallets and fresh transactions (not the vectors): XLM verified with stellar-sdk for the daemon's network,
    XRP decoded with xrpl-py's codec and its Account checked."""
    xlm_wallet = get_chain("XLM").generate_wallet(True)
    xrp_wallet = get_chain("XRP").generate_wallet(True)
    xlm_vector = next(v for v in SIGNED if v["chain"] == "XLM" and v["testnet"])
    xrp_vector = next(v for v in SIGNED if v["chain"] == "XRP")
    envelope = TransactionEnvelope.from_xdr(xlm_vector["input"]["pending"]["serializedTransaction"],
                                            network_passphrase(True))  # fmt: skip
    envelope.transaction.source = MuxedAccount.from_account(xlm_wallet["address"])
    xrp_tx = {**json.loads(xrp_vector["input"]["pending"]["serializedTransaction"]), "Account": xrp_wallet["address"]}
    admin.enqueue([
        {"id": "xlm-fresh", "chain": "XLM", "serializedTransaction": envelope.to_xdr(),
         "hashes": [store.add("XLM", True, {"secret": xlm_wallet["secret"]})]},
        {"id": "xrp-fresh", "chain": "XRP", "serializedTransaction": json.dumps(xrp_tx),
         "hashes": [store.add("XRP", True, {"secret": xrp_wallet["secret"]})]},
    ])  # fmt: skip
    run_cycle(store, client)
    sent = broadcasts(admin)
    signed = TransactionEnvelope.from_xdr(sent["xlm-fresh"]["txData"], network_passphrase(True))
    Keypair.from_public_key(xlm_wallet["address"]).verify(signed.hash(), signed.signatures[0].signature)
    decoded = decode(sent["xrp-fresh"]["txData"])
    assert decoded["Account"] == xrp_wallet["address"] and decoded["Amount"] == xrp_tx["Amount"]
    assert decoded["SigningPubKey"].startswith("ED")
    unsigned = {k: v for k, v in decoded.items() if k != "TxnSignature"}
    assert is_valid_message(
        bytes.fromhex(encode_for_signing(unsigned)), bytes.fromhex(decoded["TxnSignature"]), decoded["SigningPubKey"]
    )
    assert derive_classic_address(decoded["SigningPubKey"]) == xrp_wallet["address"]
