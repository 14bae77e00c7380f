"""EGLD signing: upstream's vectors byte for byte against a gateway double that answers from the recorded node answers
and checks every call; every signature verified with ed25519 (PyNaCl) over the transaction decoded from txData;
decoded fields compared with the pending transaction; node answers that fail, time out or lie are refused."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from bip_utils import Bech32Decoder
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from kms.api import PendingTransaction
from kms.chains.base import loaded_signer
from kms.chains.egld import EGLD, EGLD_FACTS
from kms.errors import SigningError, TatumApiError
from kms.keys import KeyHandle
from kms.signing.egld import EgldSigner, address_of_public_key
from tests.conftest import load_vectors
from tests.signing_fakes import raw_key


def egld_raw_key(private_key: str) -> Any:
    return raw_key("EGLD", private_key)


VECTORS = load_vectors("signing-egld.json")
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
RECEIVER = "erd13ryyu0akcgxujk3zgkj6u9u3l68fqqxwzk5lc0gsucxhuhxccyxs7vmk4u"


class RecordedGateway:
    """A NodeGateway double: each call must be the next recorded one (method, path with the API key placeholder, body);
    it answers with the recorded answer, or raises what ``fail`` gives for that call."""

    def __init__(
        self, answers: list[dict[str, Any]], testnet: bool = True, fail: Callable[[int], Exception | None] | None = None
    ) -> None:
        self.answers = [{**a, "path": a["path"].replace("{TATUM_API_KEY}", "{apiKey}")} for a in answers]
        self.testnet = testnet
        self.calls: list[tuple[str, str, Any]] = []
        self._fail = fail

    def _answer(self, method: str, path: str, body: Any) -> Any:
        position = len(self.calls)
        self.calls.append((method, path, body))
        assert position < len(self.answers), f"unexpected call {method} {path}"
        expected = self.answers[position]
        assert (method, path) == (expected["method"], expected["path"])
        assert body == expected.get("body")
        failure = self._fail(position) if self._fail else None
        if failure is not None:
            raise failure
        return copy.deepcopy(expected["response"])

    def tatum_get(self, path: str, *, what: str) -> Any:
        assert what
        return self._answer("GET", path, None)

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        assert what
        return self._answer("POST", path, copy.deepcopy(body))

    def node_rpc(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("EGLD signing uses no JSON-RPC")

    def external_get(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("EGLD signing calls nothing outside the Tatum gateway")

    external_post = external_get

    @property
    def done(self) -> bool:
        return len(self.calls) == len(self.answers)


def pending(tx: dict[str, Any] | str, chain: str = "EGLD") -> PendingTransaction:
    text = tx if isinstance(tx, str) else json.dumps(tx)
    return PendingTransaction(id="p-1", chain=chain, serialized_transaction=text, hashes=("sig-1",))


def vector_pending(vector: dict[str, Any]) -> PendingTransaction:
    source = vector["input"]["pending"]
    return PendingTransaction(
        id=source["id"], chain=source["chain"], serialized_transaction=source["serializedTransaction"], hashes=("s",)
    )


def wallet_key(vector: dict[str, Any]) -> str:
    wallet = vector["input"]["wallet"]
    if "privateKey" in wallet:
        return wallet["privateKey"]
    return EGLD.private_key_at(wallet["mnemonic"], vector["input"]["pending"]["index"], vector["testnet"])


def verify(payload: str) -> dict[str, Any]:
    """ed25519 verification with the sender's public key over erdjs' compact JSON without the signature."""
    sent = json.loads(payload)
    signature = bytes.fromhex(sent.pop("signature"))
    public_key = Bech32Decoder.Decode("erd", sent["sender"])
    VerifyKey(public_key).verify(json.dumps(sent, separators=(",", ":")).encode(), signature)
    return sent


def answers_for(sender: str, *, nonce: Any = 3, chain_id: Any = "D", gas: Any = 70_000, body: dict[str, Any]) -> list:
    """Node answers in the recorded shape, for generated cases."""
    base = "/v3/egld/node/{apiKey}"
    config = {"erd_chain_id": chain_id, "erd_min_gas_price": 1_000_000_000, "erd_min_transaction_version": 1}
    return [
        {"method": "GET", "path": f"{base}/network/config", "response": {"data": {"config": config}}},
        {"method": "GET", "path": f"{base}/address/{sender}/nonce", "response": {"data": {"nonce": nonce}}},
        {"method": "POST", "path": f"{base}/transaction/cost", "body": body, "response": {"data": {"txGasUnits": gas}}},
    ]


# --- upstream's vectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_byte_for_byte(vector: dict[str, Any]) -> None:
    gateway = RecordedGateway(vector["input"]["nodeAnswers"], vector["testnet"])
    key = KeyHandle("sig-1", egld_raw_key(wallet_key(vector)))
    signed = EgldSigner(EGLD_FACTS).sign(vector_pending(vector), [key], vector["testnet"], gateway)
    assert signed.payload == vector["expected"]["txData"]
    assert gateway.done
    assert vector["expected"]["broadcastPath"] == f"/v3/{EGLD.broadcast_route}/broadcast"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_verifies_and_matches_the_pending(vector: dict[str, Any]) -> None:
    gateway = RecordedGateway(vector["input"]["nodeAnswers"], vector["testnet"])
    key = KeyHandle("sig-1", egld_raw_key(wallet_key(vector)))
    sent = verify(EgldSigner(EGLD_FACTS).sign(vector_pending(vector), [key], vector["testnet"], gateway).payload)
    asked = json.loads(vector["input"]["pending"]["serializedTransaction"])
    answers = {a["path"].rsplit("/", 1)[-1]: a["response"]["data"] for a in vector["input"]["nodeAnswers"]}
    assert sent["sender"] == asked["from"]
    assert sent["receiver"] == asked["to"]
    assert int(sent["value"]) == Decimal(asked["value"]) * 10**18
    assert base64.b64decode(sent.get("data", "")).decode() == asked.get("data", "")
    assert sent["nonce"] == answers["nonce"]["nonce"]
    assert sent["gasLimit"] == answers["cost"]["txGasUnits"]
    assert sent["chainID"] == answers["config"]["config"]["erd_chain_id"]


def test_a_tampered_transaction_does_not_verify() -> None:
    vector = VECTORS[0]
    gateway = RecordedGateway(vector["input"]["nodeAnswers"])
    sent = json.loads(
        EgldSigner(EGLD_FACTS)
        .sign(vector_pending(vector), [KeyHandle("s", egld_raw_key(wallet_key(vector)))], True, gateway)
        .payload
    )
    sent["value"] = "250000000000000001"
    with pytest.raises(BadSignatureError):
        verify(json.dumps(sent))


# --- a mnemonic wallet with data -------------------------------------------------------------------------------------


def test_mnemonic_wallet_at_its_index_signs_data() -> None:
    private_key = EGLD.private_key_at(MNEMONIC, 1, True)
    sender = address_of_public_key(bytes(SigningKey(bytes.fromhex(private_key)).verify_key), "erd")
    data = "memo: café ✓"
    encoded = base64.b64encode(data.encode()).decode()
    cost_body = {
        "nonce": 3, "value": "1000000000000000000", "receiver": RECEIVER, "sender": sender,
        "gasPrice": 1_000_000_000, "gasLimit": 0, "data": encoded, "chainID": "D", "version": 1,
    }  # fmt: skip
    gateway = RecordedGateway(answers_for(sender, body=cost_body))
    tx = {"from": sender, "to": RECEIVER, "value": "1", "data": data, "gasPrice": 5, "gasLimit": 5}
    signed = EgldSigner(EGLD_FACTS).sign(pending(tx), [KeyHandle("s", egld_raw_key(private_key), 1)], True, gateway)
    sent = verify(signed.payload)
    assert gateway.done
    assert list(sent) == [*list(cost_body)[:6], "data", "chainID", "version"]
    assert {**sent, "gasLimit": 0} == cost_body
    assert sent["gasLimit"] == 70_000
    assert signed.meta == {"nonce": 3, "chainID": "D"}


def test_without_from_the_key_is_the_sender() -> None:
    vector = VECTORS[0]
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    del tx["from"]
    gateway = RecordedGateway(vector["input"]["nodeAnswers"])
    signed = EgldSigner(EGLD_FACTS).sign(pending(tx), [KeyHandle("s", egld_raw_key(wallet_key(vector)))], True, gateway)
    assert signed.payload == vector["expected"]["txData"]


def test_factory_builds_a_signer() -> None:
    assert isinstance(loaded_signer(EGLD), EgldSigner)


# --- refusals --------------------------------------------------------------------------------------------------------


def _sign_vector(answers: list[dict[str, Any]] | None = None, tx: Any = None, **kwargs: Any) -> RecordedGateway:
    vector = VECTORS[0]
    gateway = RecordedGateway(answers if answers is not None else vector["input"]["nodeAnswers"], **kwargs)
    source = tx if tx is not None else vector["input"]["pending"]["serializedTransaction"]
    key = KeyHandle("s", egld_raw_key(wallet_key(vector)))
    EgldSigner(EGLD_FACTS).sign(pending(source), [key], gateway.testnet, gateway)
    return gateway


def _lying(position: int, change: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    answers = copy.deepcopy(VECTORS[0]["input"]["nodeAnswers"])
    change(answers[position]["response"])
    return answers


def _config(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda response: response["data"]["config"].update(values)


@pytest.mark.parametrize(
    ("position", "change", "words"),
    [
        (0, _config(erd_chain_id="1"), "chain id"),
        (0, _config(erd_chain_id=None), "chain id"),
        (0, _config(erd_min_gas_price="1000000000"), "erd_min_gas_price"),
        (0, _config(erd_min_gas_price=10**15), "erd_min_gas_price"),
        (0, _config(erd_min_transaction_version=7), "version"),
        (0, lambda r: r["data"].pop("config"), "malformed network config"),
        (0, lambda r: r.pop("data"), "malformed network config"),
        (1, lambda r: r["data"].update(nonce="7"), "nonce"),
        (1, lambda r: r["data"].update(nonce=7.5), "nonce"),
        (1, lambda r: r["data"].update(nonce=-1), "nonce"),
        (1, lambda r: r["data"].update(nonce=True), "nonce"),
        (1, lambda r: r.update(data=[7]), "malformed nonce"),
        (2, lambda r: r["data"].update(txGasUnits=0), "txGasUnits"),
        (2, lambda r: r["data"].update(txGasUnits=10**12), "txGasUnits"),
        (2, lambda r: r["data"].update(txGasUnits="50000"), "txGasUnits"),
    ],
)
def test_lying_node_answers_are_refused(position: int, change: Any, words: str) -> None:
    with pytest.raises(SigningError, match=words) as caught:
        _sign_vector(_lying(position, change))
    assert "\n" not in str(caught.value)


def test_mainnet_daemon_refuses_a_devnet_chain_id() -> None:
    with pytest.raises(SigningError, match="not one of MultiversX mainnet"):
        _sign_vector(testnet=False)


def test_missing_gas_price_falls_back_to_upstreams_default() -> None:
    answers = _lying(0, lambda r: r["data"]["config"].pop("erd_min_gas_price"))
    assert _sign_vector(answers).done


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("failure", ["timed out", "HTTP 502"])
def test_gateway_failures_propagate_and_nothing_is_signed(position: int, failure: str) -> None:
    def fail(at: int) -> Exception | None:
        return TatumApiError(f"EGLD look-up: {failure}") if at == position else None

    with pytest.raises(TatumApiError, match=failure):
        _sign_vector(fail=fail)


def test_offline_signing_is_refused() -> None:
    vector = VECTORS[0]
    with pytest.raises(SigningError, match="offline"):
        EgldSigner(EGLD_FACTS).sign(
            vector_pending(vector), [KeyHandle("s", egld_raw_key(wallet_key(vector)))], True, None
        )


def test_wrong_sender_is_refused_before_any_call() -> None:
    tx = json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])
    tx["from"] = RECEIVER
    gateway = RecordedGateway([])
    key = KeyHandle("s", egld_raw_key(wallet_key(VECTORS[0])))
    with pytest.raises(SigningError, match="sender is not this wallet"):
        EgldSigner(EGLD_FACTS).sign(pending(tx), [key], True, gateway)
    assert gateway.calls == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"value": "0.0000000000000000001"}, "18 decimals"),
        ({"value": "-1"}, "value"),
        ({"value": "1e3"}, "value"),
        ({"value": None}, "value"),
        ({"value": True}, "value"),
        ({"to": "erd1notanaddress"}, "to is not"),
        ({"to": "erd13ryyu0akcgxujk3zgkj6u9u3l68fqqxwzk5lc0gsucxhuhxccyxs7vmk4v"}, "to is not"),
        ({"data": {"x": 1}}, "data must be text"),
        ({"nonce": 1}, "unsupported fields"),
    ],
)
def test_malformed_fields_are_refused(change: dict[str, Any], words: str) -> None:
    tx = {**json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"]), **change}
    with pytest.raises(SigningError, match=words):
        _sign_vector([], tx=tx)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "x" * 70_000])
def test_malformed_json_is_refused(text: str) -> None:
    with pytest.raises(SigningError):
        _sign_vector([], tx=text)


def test_another_chain_and_key_count_are_refused() -> None:
    key = KeyHandle("s", egld_raw_key(wallet_key(VECTORS[0])))
    with pytest.raises(SigningError, match="not EGLD"):
        EgldSigner(EGLD_FACTS).sign(pending("{}", chain="ALGO"), [key], True, None)
    with pytest.raises(SigningError, match="one signing key"):
        EgldSigner(EGLD_FACTS).sign(vector_pending(VECTORS[0]), [key, key], True, None)


@pytest.mark.parametrize("text", ["", "12", "zz" * 32, "ab" * 33, "0x" + "ab" * 31])
def test_bad_private_keys_are_refused_without_quoting_them(text: str) -> None:
    with pytest.raises(SigningError) as caught:
        egld_raw_key(text)
    assert not text or text not in str(caught.value)


def test_raw_key_is_the_32_byte_seed() -> None:
    private_key = wallet_key(VECTORS[0])
    assert egld_raw_key(private_key).bytes() == bytes.fromhex(private_key)
    assert egld_raw_key("0x" + private_key.upper()).bytes() == bytes.fromhex(private_key)
