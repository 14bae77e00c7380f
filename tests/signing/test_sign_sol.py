"""SOL signing and submitting: byte-identical to upstream (@solana/web3.js 1.56 through @tatumio/solana 2.2.100), with
the same JSON-RPC calls in the same order; signatures verified with solders; a lying or failing node gateway and bad
input refused with one line and nothing signed or sent."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from bip_utils import Base58Encoder
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction

from kms.chains.sol import RPC_PATH
from kms.errors import SigningError, TatumApiError
from kms.signing.base import LANDED, RESEND, RESIGN, SignedTransaction
from kms.signing.sol import CONFIRM_ATTEMPTS, SolSigner, transaction_id
from tests.conftest import load_vectors
from tests.signing_fakes import API_KEY, ScriptedGateway, handle, pending_of, raw_key, sequence

VECTORS = load_vectors("signing-sol.json")
recovery_decision = SolSigner("SOL", RPC_PATH).recovery_decision
PLACEHOLDER_BLOCKHASH = Hash.from_string("7WyEshBZcZwEbJsvSeGgCkSNMxxxFAym3x7Cuj6UjAUE")
CONFIRMED = {"slot": 5, "meta": {"err": None}, "transaction": {}}


def keys_of(vector: Mapping[str, Any]) -> list[Any]:
    return [handle(raw_key("SOL", w["privateKey"]), f"wallet-{i}") for i, w in enumerate(vector["input"]["wallets"])]


def sent_id(params: Sequence[Any]) -> str:
    """What a node answers to sendTransaction: the transaction's first signature."""
    return str(Transaction.from_bytes(base64.b64decode(params[0])).signatures[0])


def node_for(vector: Mapping[str, Any], **answers: Any) -> ScriptedGateway:
    blockhash = {"context": {"slot": 1}, "value": vector["input"]["rpcAnswers"]["getLatestBlockhash"]}
    script = {"getLatestBlockhash": blockhash, "sendTransaction": sent_id, "getTransaction": CONFIRMED}
    return ScriptedGateway({**script, **answers})


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sign(vector: Mapping[str, Any], gateway: Any, serialized: str | None = None, keys: Any = None) -> SignedTransaction:
    pending = pending_of(vector, serialized)
    return SolSigner("SOL", RPC_PATH, sleep=Sleeps()).sign(
        pending, keys_of(vector) if keys is None else keys, True, gateway
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_upstream_vector_is_reproduced_with_the_same_calls(vector: dict[str, Any]) -> None:
    gateway = node_for(vector)
    signer = SolSigner("SOL", RPC_PATH, sleep=Sleeps())
    signed = signer.sign(pending_of(vector), keys_of(vector), vector["testnet"], gateway)
    assert signed.payload == vector["expected"]["sentTransactionBase64"]
    assert gateway.methods() == ["getLatestBlockhash"]  # signing sends nothing
    assert signer.submit(signed, gateway) == vector["expected"]["txData"]
    assert [{"method": c.method, "params": c.params} for c in gateway.calls] == vector["expected"]["rpcCalls"]
    assert {c.path for c in gateway.calls} == {vector["input"]["rpcPath"]}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_signatures_verify_with_solders_and_the_message_is_the_pending_one(vector: dict[str, Any]) -> None:
    answer = vector["input"]["rpcAnswers"]["getLatestBlockhash"]
    signed = sign(vector, node_for(vector))
    tx = Transaction.from_bytes(base64.b64decode(signed.payload))
    tx.verify()  # every signature over the message, by its account key
    assert all(result for result in tx.verify_with_results())
    assert str(tx.message.recent_blockhash) == answer["blockhash"]
    pending = Message.from_bytes(
        bytes.fromhex(json.loads(vector["input"]["pending"]["serializedTransaction"])["txData"])
    )
    assert tx.message.account_keys == pending.account_keys
    assert tx.message.instructions == pending.instructions
    assert tx.message.header == pending.header
    wallets = {w["address"] for w in vector["input"]["wallets"]}
    assert {str(k) for k in tx.message.account_keys[: tx.message.header.num_required_signatures]} == wallets
    assert signed.meta == {
        "blockhash": answer["blockhash"],
        "lastValidBlockHeight": answer["lastValidBlockHeight"],
        "txId": vector["expected"]["txData"],
    }
    assert transaction_id(signed.payload) == vector["expected"]["txData"]


def test_keys_in_another_order_than_the_message_sign_the_same_bytes() -> None:
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 2)
    signed = sign(vector, node_for(vector), keys=list(reversed(keys_of(vector))))
    assert signed.payload == vector["expected"]["sentTransactionBase64"]


def test_the_same_key_named_twice_signs_once() -> None:
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 1)
    signed = sign(vector, node_for(vector), keys=keys_of(vector) + keys_of(vector))
    assert signed.payload == vector["expected"]["sentTransactionBase64"]


def test_hex_secret_key_is_the_same_key() -> None:
    wallet = VECTORS[0]["input"]["wallets"][0]
    secret_hex = bytes(Keypair.from_base58_string(wallet["privateKey"])).hex()
    with raw_key("SOL", wallet["privateKey"]) as base58_form, raw_key("SOL", secret_hex) as hex_form:
        assert base58_form == hex_form
        assert str(Keypair.from_seed(hex_form.bytes()).pubkey()) == wallet["address"]


def test_mint_key_from_the_pending_transaction_signs_too() -> None:
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 1)
    payer = Pubkey.from_string(vector["input"]["wallets"][0]["address"])
    mint = Keypair()
    instruction = create_account(
        CreateAccountParams(from_pubkey=payer, to_pubkey=mint.pubkey(), lamports=1, space=82, owner=Pubkey.default())
    )
    message = Message.new_with_blockhash([instruction], payer, PLACEHOLDER_BLOCKHASH)
    mint_secret = Base58Encoder.Encode(bytes(mint))
    serialized = json.dumps({"txData": bytes(message).hex(), "mintPK": mint_secret})
    signed = sign(vector, node_for(vector), serialized)
    tx = Transaction.from_bytes(base64.b64decode(signed.payload))
    tx.verify()
    assert tx.message.account_keys[:2] == [payer, mint.pubkey()]
    with pytest.raises(SigningError, match="Signature verification failed"):
        sign(vector, node_for(vector), json.dumps({"txData": bytes(message).hex()}))
    with pytest.raises(SigningError, match="invalid mintPK") as refused:
        sign(vector, node_for(vector), json.dumps({"txData": bytes(message).hex(), "mintPK": mint_secret[:-2]}))
    assert mint_secret[:-2] not in str(refused.value)


# --- keys that do not fit ----------------------------------------------------------------------------------------


def test_missing_signer_is_refused_before_any_call() -> None:
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 2)
    gateway = node_for(vector)
    with pytest.raises(SigningError, match=r"^Signature verification failed"):
        sign(vector, gateway, keys=keys_of(vector)[1:])
    assert gateway.calls == []


def test_unknown_extra_key_is_refused_before_any_call() -> None:
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 1)
    stranger = Keypair()
    gateway = node_for(vector)
    keys = [*keys_of(vector), handle(raw_key("SOL", str(stranger)), "stranger")]
    with pytest.raises(SigningError, match=f"^unknown signer: {stranger.pubkey()}$"):
        sign(vector, gateway, keys=keys)
    assert gateway.calls == []


def test_key_of_an_account_that_does_not_sign_is_refused() -> None:
    """web3.js would quietly make the account a signer (another message); kms refuses."""
    vector = next(v for v in VECTORS if len(v["input"]["wallets"]) == 1)
    message = Message.from_bytes(
        bytes.fromhex(json.loads(vector["input"]["pending"]["serializedTransaction"])["txData"])
    )
    recipient = Keypair()
    instruction = transfer(
        TransferParams(from_pubkey=message.account_keys[0], to_pubkey=recipient.pubkey(), lamports=5)
    )
    other = Message.new_with_blockhash([instruction], message.account_keys[0], PLACEHOLDER_BLOCKHASH)
    keys = [*keys_of(vector), handle(raw_key("SOL", str(recipient)), "recipient")]
    with pytest.raises(SigningError, match="unknown signer"):
        sign(vector, node_for(vector), json.dumps({"txData": bytes(other).hex()}), keys=keys)


def test_no_keys_and_keys_of_another_kind_are_refused() -> None:
    from kms.hygiene import SecretBuffer

    with pytest.raises(SigningError, match="at least one key"):
        sign(VECTORS[0], node_for(VECTORS[0]), keys=[])
    with pytest.raises(SigningError, match="not a 32-byte ed25519 seed"):
        sign(VECTORS[0], node_for(VECTORS[0]), keys=[handle(SecretBuffer(bytes(range(1, 65))))])


@pytest.mark.parametrize(
    "text",
    ["", "0OIl", "11" * 64, "ab" * 63 + "zz", "x" * 88],
    ids=["empty", "not-base58", "hex-of-wrong-pubkey", "bad-hex", "garbage"],
)
def test_malformed_private_key_text_is_refused_without_echo(text: str) -> None:
    with pytest.raises(SigningError) as refused:
        raw_key("SOL", text)
    assert not text or text not in str(refused.value)


def test_secret_key_whose_halves_do_not_belong_together_is_refused() -> None:
    a, b = Keypair(), Keypair()
    mixed = Base58Encoder.Encode(bytes(a)[:32] + bytes(b.pubkey()))
    with pytest.raises(SigningError, match="public half does not belong"):
        raw_key("SOL", mixed)


# --- malformed transactions ------------------------------------------------------------------------------------


def _vector_message() -> Message:
    return Message.from_bytes(
        bytes.fromhex(json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])["txData"])
    )


def _web3js_before(a: Pubkey, b: Pubkey) -> bool:
    """web3.js's order of two accounts of the same kind (ICU collation of base58 text)."""
    return (str(a).lower(), str(a).swapcase()) < (str(b).lower(), str(b).swapcase())


def _two_transfers(web3js_ordered: bool) -> str:
    """Two transfers to recipients that solders orders by their bytes; pick recipients whose byte order agrees (or
    disagrees) with web3.js's base58 order."""
    payer = _vector_message().account_keys[0]
    while True:
        first, second = sorted([Keypair().pubkey(), Keypair().pubkey()], key=bytes)
        if _web3js_before(first, second) == web3js_ordered:
            break
    instructions = [
        transfer(TransferParams(from_pubkey=payer, to_pubkey=first, lamports=1)),
        transfer(TransferParams(from_pubkey=payer, to_pubkey=second, lamports=1)),
    ]
    message = Message.new_with_blockhash(instructions, payer, PLACEHOLDER_BLOCKHASH)
    assert list(message.account_keys[1:3]) == [first, second]
    return bytes(message).hex()


@pytest.mark.parametrize(
    ("serialized", "message"),
    [
        ("{", "not valid JSON"),
        ('["txData"]', "not a JSON object"),
        ('{"txData": 5}', "no txData hex"),
        ('{"txData": "abc"}', "no txData hex"),
        ('{"txData": "zz"}', "no txData hex"),
        ('{"txData": "80"}', "versioned message"),
        ('{"txData": "0100"}', "not a Solana message"),
        (json.dumps({"txData": bytes(_vector_message()).hex() + "00"}), "bytes after the message"),
        (json.dumps({"txData": _two_transfers(web3js_ordered=False)}), "not in the account order"),
        (json.dumps({"txData": bytes(_vector_message()).hex(), "mintPK": 7}), "mintPK that is not text"),
    ],
    ids=["json", "array", "number", "odd-hex", "not-hex", "versioned", "short", "trailing", "order", "mint-type"],
)
def test_malformed_transaction_is_refused_before_any_call(serialized: str, message: str) -> None:
    gateway = node_for(VECTORS[0])
    with pytest.raises(SigningError, match=message) as refused:
        sign(VECTORS[0], gateway, serialized)
    assert "\n" not in str(refused.value)
    assert gateway.calls == []


def test_web3js_ordered_transfers_are_signed() -> None:
    """The counterpart of the order refusal: recipients in web3.js's order pass the same check."""
    serialized = json.dumps({"txData": _two_transfers(web3js_ordered=True)})
    signed = sign(VECTORS[0], node_for(VECTORS[0]), serialized)
    Transaction.from_bytes(base64.b64decode(signed.payload)).verify()


def test_signing_needs_a_gateway() -> None:
    with pytest.raises(SigningError, match="needs the Tatum node gateway"):
        sign(VECTORS[0], None)


def test_other_chain_is_refused() -> None:
    with pytest.raises(SigningError, match="not a SOL transaction"):
        SolSigner("SOL", RPC_PATH).sign(
            replace(pending_of(VECTORS[0]), chain="XLM"), keys_of(VECTORS[0]), True, node_for(VECTORS[0])
        )


# --- a lying or failing node gateway -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"value": None},
        {"value": {"blockhash": "not-base58!", "lastValidBlockHeight": 1}},
        {"value": {"blockhash": "1111", "lastValidBlockHeight": 1}},
        {"value": {"blockhash": "GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi", "lastValidBlockHeight": -1}},
        {"value": {"blockhash": "GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi", "lastValidBlockHeight": True}},
        {"value": {"blockhash": "GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi"}},
    ],
    ids=["null", "list", "no-value", "not-base58", "short", "negative-height", "bool-height", "no-height"],
)
def test_bad_blockhash_answer_is_refused(answer: Any) -> None:
    with pytest.raises(TatumApiError, match="SOL blockhash") as refused:
        sign(VECTORS[0], node_for(VECTORS[0], getLatestBlockhash=answer))
    assert "\n" not in str(refused.value)


def test_gateway_failure_while_signing_propagates() -> None:
    with pytest.raises(TatumApiError, match="unreachable"):
        sign(VECTORS[0], node_for(VECTORS[0], getLatestBlockhash=TatumApiError("SOL blockhash: unreachable")))


def _signed(vector: Mapping[str, Any]) -> SignedTransaction:
    return sign(vector, node_for(vector))


def test_send_error_is_reported_and_nothing_polled() -> None:
    vector = VECTORS[0]
    gateway = node_for(vector, sendTransaction=TatumApiError("SOL send: Transaction simulation failed"))
    with pytest.raises(TatumApiError, match="simulation failed"):
        SolSigner("SOL", RPC_PATH, sleep=Sleeps()).submit(_signed(vector), gateway)
    assert gateway.methods() == ["sendTransaction"]


def test_send_answer_that_is_another_transaction_id_is_refused() -> None:
    vector = VECTORS[0]
    gateway = node_for(vector, sendTransaction=vector["expected"]["txData"][::-1])
    with pytest.raises(TatumApiError, match="not this transaction's"):
        SolSigner("SOL", RPC_PATH, sleep=Sleeps()).submit(_signed(vector), gateway)
    assert gateway.methods() == ["sendTransaction"]


def test_transaction_that_failed_on_chain_is_reported() -> None:
    vector = VECTORS[0]
    failed = {"slot": 5, "meta": {"err": {"InstructionError": [0, {"Custom": 1}]}}}
    gateway = node_for(vector, getTransaction=failed)
    with pytest.raises(TatumApiError, match=r'failed with error: \{"InstructionError"') as refused:
        SolSigner("SOL", RPC_PATH, sleep=Sleeps()).submit(_signed(vector), gateway)
    assert vector["expected"]["txData"] in str(refused.value)


def test_unconfirmed_transaction_is_polled_as_upstream_then_reported() -> None:
    vector = VECTORS[0]
    gateway = node_for(vector, getTransaction=None)
    sleeps = Sleeps()
    with pytest.raises(TatumApiError, match="has not been confirmed yet"):
        SolSigner("SOL", RPC_PATH, sleep=sleeps).submit(_signed(vector), gateway)
    assert gateway.methods() == ["sendTransaction"] + ["getTransaction"] * CONFIRM_ATTEMPTS
    assert sleeps == list(range(1, CONFIRM_ATTEMPTS + 1))


def test_transaction_confirmed_on_a_later_poll_is_accepted() -> None:
    vector = VECTORS[0]
    gateway = node_for(vector, getTransaction=sequence(None, None, CONFIRMED))
    sleeps = Sleeps()
    assert SolSigner("SOL", RPC_PATH, sleep=sleeps).submit(_signed(vector), gateway) == vector["expected"]["txData"]
    assert sleeps == [1, 2]


@pytest.mark.parametrize("answer", [[], "confirmed", TatumApiError("SOL transaction status: HTTP 500")])
def test_bad_status_answer_is_reported(answer: Any) -> None:
    gateway = node_for(VECTORS[0], getTransaction=answer)
    with pytest.raises(TatumApiError):
        SolSigner("SOL", RPC_PATH, sleep=Sleeps()).submit(_signed(VECTORS[0]), gateway)


def test_submit_refuses_a_payload_that_is_not_a_signed_transaction() -> None:
    gateway = node_for(VECTORS[0])
    with pytest.raises(SigningError, match="not a signed Solana transaction"):
        SolSigner("SOL", RPC_PATH).submit(SignedTransaction("bm90IGEgdHJhbnNhY3Rpb24="), gateway)
    assert gateway.calls == []


# --- after a crash: re-send the same bytes, re-sign only when the node proves the old ones can never land ---------


def _status(found: bool) -> dict[str, Any]:
    return {
        "context": {"slot": 9},
        "value": [{"slot": 8, "err": None, "confirmationStatus": "confirmed"} if found else None],
    }


@pytest.mark.parametrize(
    ("height", "found", "decision"),
    [(2001, True, LANDED), (1999, True, LANDED), (2000, False, RESEND), (1500, False, RESEND), (2001, False, RESIGN)],
)
def test_recovery_decision(height: int, found: bool, decision: str) -> None:
    vector = VECTORS[0]
    signed = _signed(vector)  # lastValidBlockHeight 2000
    gateway = node_for(vector, getBlockHeight=height, getSignatureStatuses=_status(found))
    assert recovery_decision(signed, gateway) == decision
    assert gateway.methods() == ["getBlockHeight", "getSignatureStatuses"]  # height first: then "not found" is proof
    assert gateway.calls[1].params == [[vector["expected"]["txData"]], {"searchTransactionHistory": True}]


def test_recovery_without_a_recorded_height_never_resigns() -> None:
    signed = replace(_signed(VECTORS[0]), meta={})
    gateway = node_for(VECTORS[0], getBlockHeight=10**9, getSignatureStatuses=_status(False))
    assert recovery_decision(signed, gateway) == RESEND


@pytest.mark.parametrize(
    ("height", "statuses"),
    [(None, _status(False)), (True, _status(False)), (2001, None), (2001, {"value": []}), (2001, {"value": ["x"]})],
)
def test_recovery_with_unreadable_answers_is_an_error(height: Any, statuses: Any) -> None:
    gateway = node_for(VECTORS[0], getBlockHeight=height, getSignatureStatuses=statuses)
    with pytest.raises(TatumApiError):
        recovery_decision(_signed(VECTORS[0]), gateway)


# --- through a real HTTP JSON-RPC server on 127.0.0.1 ----------------------------------------------------------------


class _HttpNodeGateway:
    """A minimal NodeGateway over HTTP for this test (kms.tatum's gateway is tested on its own)."""

    testnet = True

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=5)

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer = self._client.post(path.replace("{apiKey}", API_KEY), json=body).json()
        if "error" in answer:
            raise TatumApiError(f"{what}: {answer['error'].get('message', 'error')}")
        return answer["result"]


@pytest.fixture
def sol_node() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    vector = VECTORS[1]
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "method": request["method"], "params": request["params"]})
            result = {
                "getLatestBlockhash": lambda: {
                    "context": {"slot": 1},
                    "value": vector["input"]["rpcAnswers"]["getLatestBlockhash"],
                },
                "sendTransaction": lambda: sent_id(request["params"]),
                "getTransaction": lambda: CONFIRMED,
            }[request["method"]]()
            data = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_sign_and_submit_through_a_real_json_rpc_server(sol_node: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = sol_node
    vector = VECTORS[1]
    gateway = _HttpNodeGateway(url)
    signer = SolSigner("SOL", RPC_PATH, sleep=Sleeps())
    signed = signer.sign(pending_of(vector), keys_of(vector), True, gateway)
    assert signer.submit(signed, gateway) == vector["expected"]["txData"]
    assert [{"method": s["method"], "params": s["params"]} for s in seen] == vector["expected"]["rpcCalls"]
    assert {s["path"] for s in seen} == {vector["input"]["rpcPath"]} == {RPC_PATH.replace("{apiKey}", API_KEY)}


UPSTREAM_CASES = json.loads(Path(__file__).with_name("test_sign_sol_upstream_cases.json").read_text())


@pytest.mark.parametrize("case", UPSTREAM_CASES["cases"], ids=lambda c: c["description"])
def test_cases_signed_by_web3js_itself(case: dict[str, Any]) -> None:
    """Computed by @solana/web3.js 1.56.2 as upstream runs it (prepare with the placeholder blockhash, then
    ``Transaction.populate(Message.from(hex))``, the blockhash set, ``sign(...wallets, mintPK)``, ``serialize``):
    a mint account signed with ``mintPK`` and six recipients in web3.js's base58 order."""
    vector = VECTORS[0]
    gateway = node_for(
        vector,
        getLatestBlockhash={
            "context": {"slot": 1},
            "value": {"blockhash": UPSTREAM_CASES["blockhash"], "lastValidBlockHeight": 9},
        },
    )
    keys = [handle(raw_key("SOL", secret), f"wallet-{i}") for i, secret in enumerate(case["wallets"])]
    pending = replace(pending_of(vector), serialized_transaction=case["serializedTransaction"])
    signed = SolSigner("SOL", RPC_PATH, sleep=Sleeps()).sign(pending, keys, True, gateway)
    assert signed.payload == case["sentTransactionBase64"]
    Transaction.from_bytes(base64.b64decode(signed.payload)).verify()
