"""VET signing: upstream's vectors byte for byte against a node double answering from the recorded Thor REST answers
(checking every call), the nonce reproduced from upstream's recorded random draw; the sender recovered from every
signature with eth-keys' pure-Python backend (not the coincurve we sign with); decoded fields compared with the
pending transaction and the vector; node answers that fail, time out or lie are refused."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend

from kms.api import PendingTransaction
from kms.chains.base import loaded_signer
from kms.chains.vet import VET, VET_FACTS
from kms.errors import SigningError, TatumApiError, UsageError
from kms.keys import KeyHandle
from kms.signing.vet import VetSigner as _VetSigner
from kms.signing.vet import upstream_nonce
from tests.conftest import load_vectors
from tests.signing_fakes import raw_key

DEFAULT_NODE_URLS = VET_FACTS.default_node_urls
GENESIS_IDS = VET_FACTS.genesis_ids


def VetSigner(node_url: str | None = None, **kwargs: Any) -> _VetSigner:  # as the chain module builds it
    return _VetSigner(VET_FACTS, node_url, **kwargs)


def vet_raw_key(private_key: str) -> Any:
    return raw_key("VET", private_key)


VECTORS = load_vectors("signing-vet.json")
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
PURE_PYTHON = KeyAPI(NativeECCBackend)


class ThorNodeDouble:
    """A NodeGateway double for the VeChainThor node: each call must be the next recorded one (method, URL under
    ``base``, body); it answers with the recorded answer, or raises what ``fail`` gives for that call."""

    def __init__(
        self, answers: list[dict[str, Any]], base: str, fail: Callable[[int], Exception | None] | None = None
    ) -> None:
        self.answers = answers
        self.base = base
        self.testnet = True
        self.calls: list[tuple[str, str, Any]] = []
        self._fail = fail

    def _answer(self, method: str, url: str, body: Any) -> Any:
        position = len(self.calls)
        self.calls.append((method, url, body))
        assert position < len(self.answers), f"unexpected call {method} {url}"
        expected = self.answers[position]
        assert (method, url) == (expected["method"], self.base + expected["path"])
        assert body == expected.get("body")
        failure = self._fail(position) if self._fail else None
        if failure is not None:
            raise failure
        return copy.deepcopy(expected["response"])

    def external_get(self, url: str, *, what: str) -> Any:
        assert what
        return self._answer("GET", url, None)

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        assert what
        return self._answer("POST", url, copy.deepcopy(body))

    def _not_used(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("VET signing calls only the VeChainThor node")

    tatum_get = tatum_post = node_rpc = _not_used

    @property
    def done(self) -> bool:
        return len(self.calls) == len(self.answers)


def recorded_nonce(vector: dict[str, Any]) -> Callable[[], int]:
    draw = vector["input"]["randomNonce"]
    return lambda: upstream_nonce(draw["nowMs"], draw["mathRandom"])


def pending(tx: dict[str, Any] | str, chain: str = "VET") -> PendingTransaction:
    text = tx if isinstance(tx, str) else json.dumps(tx)
    return PendingTransaction(id="p-1", chain=chain, serialized_transaction=text, hashes=("sig-1",))


def wallet_key(vector: dict[str, Any]) -> KeyHandle:
    return KeyHandle("sig-1", vet_raw_key(vector["input"]["wallet"]["privateKey"]))


def blake2b256(*parts: bytes) -> bytes:
    return hashlib.blake2b(b"".join(parts), digest_size=32).digest()


def decode(payload: str) -> dict[str, Any]:
    """Decode ``0x`` + RLP, recover the origin from the signature (eth-keys, pure Python) and compute the tx id."""
    items = rlp.decode(bytes.fromhex(payload[2:]))
    assert len(items) == 10
    *body, signature = items
    signing_hash = blake2b256(rlp.encode(body))
    public_key = PURE_PYTHON.Signature(signature_bytes=signature).recover_public_key_from_msg_hash(signing_hash)
    origin = bytes.fromhex(public_key.to_address()[2:])
    tag, ref, expiration, clauses, coef, gas, depends_on, nonce, reserved = body
    as_int = lambda b: int.from_bytes(b, "big")  # noqa: E731
    return {
        "chainTag": as_int(tag),
        "blockRef": "0x" + ref.rjust(8, b"\0").hex(),
        "expiration": as_int(expiration),
        "clauses": [{"to": "0x" + c[0].hex(), "value": hex(as_int(c[1])), "data": "0x" + c[2].hex()} for c in clauses],
        "gasPriceCoef": as_int(coef),
        "gas": as_int(gas),
        "dependsOn": None if depends_on == b"" else "0x" + depends_on.hex(),
        "nonce": as_int(nonce),
        "origin": "0x" + origin.hex(),
        "id": "0x" + blake2b256(signing_hash, origin).hex(),
        "signature": signature.hex(),
        "reserved": reserved,
    }


def sign_vector(
    vector: dict[str, Any],
    *,
    answers: list[dict[str, Any]] | None = None,
    tx: Any = None,
    node_url: str | None = None,
    fail: Callable[[int], Exception | None] | None = None,
    testnet: bool | None = None,
) -> tuple[str, ThorNodeDouble]:
    testnet = vector["testnet"] if testnet is None else testnet
    base = (node_url or DEFAULT_NODE_URLS[testnet]).rstrip("/")
    node = ThorNodeDouble(answers if answers is not None else vector["input"]["nodeAnswers"], base, fail)
    source = tx if tx is not None else vector["input"]["pending"]["serializedTransaction"]
    signer = VetSigner(node_url, nonce_source=recorded_nonce(vector))
    return signer.sign(pending(source), [wallet_key(vector)], testnet, node).payload, node


# --- upstream's vectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_byte_for_byte(vector: dict[str, Any]) -> None:
    payload, node = sign_vector(vector)
    assert payload == vector["expected"]["txData"]
    assert node.done
    assert vector["expected"]["broadcastPath"] == f"/v3/{VET.broadcast_route}/broadcast"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_decodes_to_the_recorded_fields_and_wallet(vector: dict[str, Any]) -> None:
    payload, _ = sign_vector(vector)
    decoded = decode(payload)
    assert decoded.pop("reserved") == []
    assert decoded == vector["expected"]["decoded"]
    asked = json.loads(vector["input"]["pending"]["serializedTransaction"])
    assert decoded["origin"] == asked["from"]
    assert decoded["clauses"][0]["to"] == asked["to"]
    assert int(decoded["clauses"][0]["value"], 16) == int(asked["value"])


def test_signer_reports_the_transaction_id() -> None:
    vector = VECTORS[0]
    node = ThorNodeDouble(vector["input"]["nodeAnswers"], DEFAULT_NODE_URLS[True])
    signer = VetSigner(nonce_source=recorded_nonce(vector))
    signed = signer.sign(pending(vector["input"]["pending"]["serializedTransaction"]), [wallet_key(vector)], True, node)
    assert signed.meta["txId"] == vector["expected"]["decoded"]["id"]


def test_a_tampered_transaction_recovers_another_sender() -> None:
    vector = VECTORS[0]
    payload, _ = sign_vector(vector)
    items = rlp.decode(bytes.fromhex(payload[2:]))
    items[5] = (21001).to_bytes(3, "big")
    assert decode("0x" + rlp.encode(items).hex())["origin"] != vector["expected"]["decoded"]["origin"]


# --- node URL, networks, mnemonic wallets ----------------------------------------------------------------------------


def test_the_node_url_setting_is_used_instead_of_the_public_node() -> None:
    payload, node = sign_vector(VECTORS[0], node_url="http://127.0.0.1:8669/")
    assert payload == VECTORS[0]["expected"]["txData"]
    assert all(url.startswith("http://127.0.0.1:8669/") and "//accounts" not in url for _, url, _ in node.calls)


def test_mainnet_uses_the_mainnet_node_and_chain_tag() -> None:
    vector = VECTORS[0]
    answers = copy.deepcopy(vector["input"]["nodeAnswers"])
    answers[1]["response"]["id"] = GENESIS_IDS[False]
    payload, node = sign_vector(vector, answers=answers, testnet=False)
    assert node.calls[0][1] == "https://sync-mainnet.vechain.org/accounts/*?revision=best"
    decoded = decode(payload)
    assert decoded["chainTag"] == 0x4A
    assert decoded["origin"] == json.loads(vector["input"]["pending"]["serializedTransaction"])["from"]


def test_mnemonic_wallet_derives_on_vets_own_path_and_signs_data() -> None:
    private_key = VET.private_key_at(MNEMONIC, 1, True)  # m/44'/1'/0'/0/1 on testnet
    sender = VET.address_from_private_key(private_key, True)
    assert (
        sender == "0xc6d7a4dac16fc817126d0184c53cff8c7d0d21dc"
    )  # derivation.json: VET testnet, this mnemonic, index 1
    recipient = "0xb157e208264ff9edebbcb1d36e66d156df8afa6c"
    data = "0xa9059cbb" + "00" * 12 + recipient[2:] + "00" * 31 + "01"
    tx = {"from": sender, "to": recipient, "value": "0", "data": data, "gas": 90000}
    answers = copy.deepcopy(VECTORS[0]["input"]["nodeAnswers"])
    answers[0]["body"] = {"clauses": [{"to": recipient, "value": "0x0", "data": data}], "gas": 90000, "caller": sender}
    answers[0]["response"][0]["gasUsed"] = 23_000
    node = ThorNodeDouble(answers, DEFAULT_NODE_URLS[True])
    signer = VetSigner(nonce_source=lambda: 12345)
    signed = signer.sign(pending(tx), [KeyHandle("s", vet_raw_key(private_key), 1)], True, node)
    decoded = decode(signed.payload)
    payload_bytes = bytes.fromhex(data[2:])
    data_gas = sum(4 if b == 0 else 68 for b in payload_bytes)
    assert decoded["origin"] == sender
    assert decoded["gas"] == 5000 + 16000 + data_gas + 23_000 + 15_000
    assert decoded["clauses"] == [{"to": recipient, "value": "0x0", "data": data}]
    assert decoded["nonce"] == 12345
    assert node.done


def test_without_from_the_wallet_is_the_caller() -> None:
    vector = VECTORS[0]
    tx = json.loads(vector["input"]["pending"]["serializedTransaction"])
    del tx["from"]
    payload, _ = sign_vector(vector, tx=tx)
    assert payload == vector["expected"]["txData"]


def test_hex_value_and_unprefixed_data_are_read_as_web3_does() -> None:
    vector = VECTORS[0]
    tx = {**json.loads(vector["input"]["pending"]["serializedTransaction"]), "value": "0x14D1120D7B160000", "data": ""}
    assert sign_vector(vector, tx=tx)[0] == vector["expected"]["txData"]
    answers = copy.deepcopy(vector["input"]["nodeAnswers"])
    answers[0]["body"]["clauses"][0]["data"] = "0xcafe"
    answers[0]["response"][0]["gasUsed"] = 0
    payload, _ = sign_vector(vector, answers=answers, tx={**tx, "data": "cafe"})
    assert decode(payload)["clauses"][0]["data"] == "0xcafe"
    assert decode(payload)["gas"] == 21000 + 2 * 68


def test_default_nonce_is_random() -> None:
    vector = VECTORS[0]
    nonces = set()
    for _ in range(3):
        node = ThorNodeDouble(vector["input"]["nodeAnswers"], DEFAULT_NODE_URLS[True])
        signed = VetSigner().sign(
            pending(vector["input"]["pending"]["serializedTransaction"]), [wallet_key(vector)], True, node
        )
        nonces.add(decode(signed.payload)["nonce"])
    assert len(nonces) == 3


def test_the_signer_takes_the_node_url_and_the_chain_module_wires_it() -> None:
    assert VetSigner("http://127.0.0.1:1").node_url(True) == "http://127.0.0.1:1"
    assert VetSigner().node_url(False) == DEFAULT_NODE_URLS[False]
    assert isinstance(loaded_signer(VET), _VetSigner)
    assert loaded_signer(VET).node_url(True) == DEFAULT_NODE_URLS[True]  # type: ignore[union-attr]


# --- refusals --------------------------------------------------------------------------------------------------------


def _lying(position: int, change: Callable[[Any], None]) -> list[dict[str, Any]]:
    answers = copy.deepcopy(VECTORS[0]["input"]["nodeAnswers"])
    change(answers[position]["response"])
    return answers


def _set(**values: Any) -> Callable[[Any], None]:
    return lambda response: (response[0] if isinstance(response, list) else response).update(values)


@pytest.mark.parametrize(
    ("position", "change", "words"),
    [
        (0, _set(gasUsed="0"), "gasUsed"),
        (0, _set(gasUsed=-5), "gasUsed"),
        (0, _set(gasUsed=10**12), "gasUsed"),
        (0, _set(reverted=True), "reverts"),
        (0, _set(vmError="out of gas"), "reverts"),
        (0, lambda r: r.clear(), "malformed gas estimate"),
        (1, _set(id=GENESIS_IDS[False]), "not VeChainThor testnet"),
        (1, _set(number=1), "not VeChainThor testnet"),
        (1, _set(id="0x27"), "malformed genesis"),
        (2, _set(number=14983603), "does not carry its number"),
        (2, _set(number="14983602"), "does not carry its number"),
        (2, _set(id=None), "malformed best block"),
    ],
)
def test_lying_node_answers_are_refused(position: int, change: Any, words: str) -> None:
    with pytest.raises(SigningError, match=words) as caught:
        sign_vector(VECTORS[0], answers=_lying(position, change))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_node_failures_and_timeouts_propagate(position: int) -> None:
    def fail(at: int) -> Exception | None:
        return TatumApiError("VET best block: timed out") if at == position else None

    with pytest.raises(TatumApiError, match="timed out"):
        sign_vector(VECTORS[0], fail=fail)


def test_offline_signing_is_refused() -> None:
    vector = VECTORS[0]
    with pytest.raises(SigningError, match="offline"):
        VetSigner().sign(pending(vector["input"]["pending"]["serializedTransaction"]), [wallet_key(vector)], True, None)


def test_wrong_sender_is_refused_before_any_call() -> None:
    tx = json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"])
    tx["from"] = "0xc6d7a4dac16fc817126d0184c53cff8c7d0d21dc"
    with pytest.raises(SigningError, match="sender is not this wallet"):
        sign_vector(VECTORS[0], answers=[], tx=tx)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"to": "0x1234"}, "to is not"),
        ({"to": None}, "to is not"),
        ({"to": "0xC6d7a4dac16fc817126d0184c53cff8c7d0d21dc"}, "checksum"),
        ({"value": "-1"}, "value"),
        ({"value": "1.5"}, "value"),
        ({"value": str(2**256)}, "value"),
        ({"data": "0xabc"}, "data"),
        ({"data": "hello"}, "data"),
        ({"data": 12}, "data"),
        ({"value": "0x"}, "value"),
        ({"gas": 10**12}, "gas"),
        ({"gasPrice": "1"}, "unsupported fields"),
        ({"nonce": 1}, "unsupported fields"),
    ],
)
def test_malformed_fields_are_refused(change: dict[str, Any], words: str) -> None:
    tx = {**json.loads(VECTORS[0]["input"]["pending"]["serializedTransaction"]), **change}
    with pytest.raises(SigningError, match=words):
        sign_vector(VECTORS[0], answers=[], tx=tx)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "x" * 300_000])
def test_malformed_json_is_refused(text: str) -> None:
    with pytest.raises(SigningError):
        sign_vector(VECTORS[0], answers=[], tx=text)


@pytest.mark.parametrize("nonce", [-1, 2**64, 1.5, True])
def test_a_broken_nonce_source_signs_nothing(nonce: Any) -> None:
    vector = VECTORS[0]
    node = ThorNodeDouble(vector["input"]["nodeAnswers"], DEFAULT_NODE_URLS[True])
    with pytest.raises(SigningError, match="nonce"):
        VetSigner(nonce_source=lambda: nonce).sign(
            pending(vector["input"]["pending"]["serializedTransaction"]), [wallet_key(vector)], True, node
        )


@pytest.mark.parametrize("url", ["ftp://node", "https://node/x?key=1", "node.example", ""])
def test_bad_node_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="VET node URL"):
        VetSigner(url or " ")


def test_another_chain_and_key_count_are_refused() -> None:
    key = wallet_key(VECTORS[0])
    with pytest.raises(SigningError, match="not VET"):
        VetSigner().sign(pending("{}", chain="ETH"), [key], True, None)
    with pytest.raises(SigningError, match="one signing key"):
        VetSigner().sign(pending("{}"), [], True, None)


@pytest.mark.parametrize("text", ["", "0x12", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32])
def test_bad_private_keys_are_refused_without_quoting_them(text: str) -> None:
    with pytest.raises(SigningError) as caught:
        vet_raw_key(text)
    assert not text or text not in str(caught.value)


def test_raw_key_is_the_32_byte_scalar() -> None:
    private_key = VECTORS[0]["input"]["wallet"]["privateKey"]
    assert vet_raw_key(private_key).bytes() == bytes.fromhex(private_key[2:])
    assert vet_raw_key(private_key[2:]).bytes() == bytes.fromhex(private_key[2:])
