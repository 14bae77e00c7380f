"""ALGO signing: upstream's vectors byte for byte, every signature verified with ed25519 over algosdk's own encoding of
the decoded transaction, decoded fields compared with the pending transaction, and bad input refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from algosdk import encoding
from algosdk.atomic_transaction_composer import AccountTransactionSigner
from algosdk.transaction import PaymentTxn, SuggestedParams
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from kms.api import PendingTransaction
from kms.chains.algo import ALGO, GENESIS
from kms.chains.base import loaded_signer
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.algo import AlgoSigner
from tests.conftest import load_vectors
from tests.signing_fakes import raw_key

MAINNET_GENESIS_HASH = GENESIS[False][1]
TESTNET_GENESIS_HASH = GENESIS[True][1]


def algo_raw_key(secret: str) -> object:
    return raw_key("ALGO", secret, kind="secret")


VECTORS = load_vectors("signing-algo.json")
SEED = bytes(range(1, 33))
OTHER_SEED = bytes(range(101, 133))


class NoNetwork:
    """ALGO signing makes no network call: any call fails the test."""

    testnet = True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"ALGO signer called the gateway ({name})")


def secret_of(seed: bytes) -> str:
    """The stored form: base32 (no padding) of the 64-byte algosdk secret key."""
    full = seed + bytes(SigningKey(seed).verify_key)
    return base64.b32encode(full).decode().rstrip("=")


def address_of(seed: bytes) -> str:
    return encoding.encode_address(bytes(SigningKey(seed).verify_key))


def byte_map(data: bytes) -> dict[str, int]:
    return {str(i): b for i, b in enumerate(data)}


def address_object(address: str) -> dict[str, Any]:
    """How JSON.stringify writes an algosdk 1.16 Address: typed arrays as index maps."""
    public_key = encoding.decode_address(address)
    checksum = base64.b32decode(address + "======")[-4:]
    return {"publicKey": byte_map(public_key), "checksum": byte_map(checksum)}


def upstream_json(
    sender: str, receiver: str, *, testnet: bool = True, note: bytes = b"", amount: int = 1_500_000, **extra: Any
) -> dict[str, Any]:
    """The JSON form of ``prepareAlgoSignedTransaction`` with a signatureId (field order as upstream's)."""
    genesis = TESTNET_GENESIS_HASH if testnet else MAINNET_GENESIS_HASH
    tx: dict[str, Any] = {
        "name": "Transaction",
        "tag": {"type": "Buffer", "data": [84, 88]},
        "from": address_object(sender),
        "to": address_object(receiver),
        "amount": amount,
        "note": byte_map(note),
        "type": "pay",
        "flatFee": True,
        "genesisHash": {"type": "Buffer", "data": list(genesis)},
        "fee": 1000,
        "firstRound": 40_000_000,
        "lastRound": 40_001_000,
        "genesisID": "testnet-v1.0" if testnet else "mainnet-v1.0",
        "appArgs": [],
        "lease": {},
    }
    tx.update(extra)
    return tx


def pending(tx: dict[str, Any] | str, chain: str = "ALGO") -> PendingTransaction:
    text = tx if isinstance(tx, str) else json.dumps(tx)
    return PendingTransaction(id="p-1", chain=chain, serialized_transaction=text, hashes=("sig-1",))


def handle(seed: bytes = SEED) -> KeyHandle:
    return KeyHandle("sig-1", algo_raw_key(secret_of(seed)))


def decode_signed(payload: str) -> Any:
    return encoding.msgpack_decode(base64.b64encode(bytes.fromhex(payload)).decode())


def verify(payload: str) -> Any:
    """ed25519 verification against the sender's key, over algosdk's encoding of the decoded transaction."""
    signed = decode_signed(payload)
    public_key = encoding.decode_address(signed.transaction.sender)
    VerifyKey(public_key).verify(signed.transaction.bytes_to_sign(), base64.b64decode(signed.signature))
    return signed


# --- upstream's vectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_byte_for_byte(vector: dict[str, Any]) -> None:
    source = vector["input"]["pending"]
    tx = PendingTransaction(
        id=source["id"],
        chain=source["chain"],
        serialized_transaction=source["serializedTransaction"],
        hashes=("sig-1",),
    )
    key = KeyHandle("sig-1", algo_raw_key(vector["input"]["wallet"]["secret"]))
    signed = AlgoSigner(GENESIS).sign(tx, [key], vector["testnet"], NoNetwork())
    assert signed.payload == vector["expected"]["txData"]
    assert signed.meta["txId"] == vector["expected"]["txId"]
    assert vector["expected"]["broadcastPath"] == f"/v3/{ALGO.broadcast_route}/broadcast"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_upstream_vector_verifies_and_matches_the_pending(vector: dict[str, Any]) -> None:
    source = vector["input"]["pending"]
    upstream = json.loads(source["serializedTransaction"])
    key = KeyHandle("sig-1", algo_raw_key(vector["input"]["wallet"]["secret"]))
    signed = AlgoSigner(GENESIS).sign(pending(source["serializedTransaction"]), [key], vector["testnet"], None)
    txn = verify(signed.payload).transaction
    assert txn.sender == vector["input"]["wallet"]["address"]
    assert encoding.decode_address(txn.receiver) == bytes(upstream["to"]["publicKey"][str(i)] for i in range(32))
    assert txn.amt == upstream["amount"]
    assert txn.fee == upstream["fee"]
    assert (txn.first_valid_round, txn.last_valid_round) == (upstream["firstRound"], upstream["lastRound"])
    assert txn.genesis_id == upstream["genesisID"]
    assert base64.b64decode(txn.genesis_hash) == bytes(upstream["genesisHash"]["data"])
    assert txn.note is None and upstream["note"] == {}
    assert txn.get_txid() == vector["expected"]["txId"]


# --- generated cases, checked against algosdk's own signing -----------------------------------------------------------


@pytest.mark.parametrize("note", [b"", b"invoice 42", bytes(range(256)) * 4])
@pytest.mark.parametrize("testnet", [True, False])
def test_payments_match_algosdk_signing(note: bytes, testnet: bool) -> None:
    receiver = address_of(OTHER_SEED)
    tx = upstream_json(address_of(SEED), receiver, testnet=testnet, note=note, amount=7)
    signed = AlgoSigner(GENESIS).sign(pending(tx), [handle()], testnet, None)
    genesis_id, genesis = ("testnet-v1.0", TESTNET_GENESIS_HASH) if testnet else ("mainnet-v1.0", MAINNET_GENESIS_HASH)
    params = SuggestedParams(1000, 40_000_000, 40_001_000, base64.b64encode(genesis).decode(), genesis_id, True)
    reference = PaymentTxn(address_of(SEED), params, receiver, 7, note=note or None)
    algosdk_key = base64.b64encode(SEED + bytes(SigningKey(SEED).verify_key)).decode()
    [expected] = AccountTransactionSigner(algosdk_key).sign_transactions([reference], [0])
    assert signed.payload == base64.b64decode(encoding.msgpack_encode(expected)).hex()
    txn = verify(signed.payload).transaction
    assert (txn.note or b"") == note
    assert txn.receiver == receiver


def test_verification_fails_on_a_tampered_signature() -> None:
    payload = AlgoSigner(GENESIS).sign(pending(_good()), [handle()], True, None).payload
    signed = decode_signed(payload)
    signature = bytearray(base64.b64decode(signed.signature))
    signature[0] ^= 1
    signed.signature = base64.b64encode(bytes(signature)).decode()
    with pytest.raises(BadSignatureError):
        verify(base64.b64decode(encoding.msgpack_encode(signed)).hex())


def test_zero_amount_is_signed_and_verifies() -> None:
    tx = upstream_json(address_of(SEED), address_of(OTHER_SEED), amount=0)
    assert verify(AlgoSigner(GENESIS).sign(pending(tx), [handle()], True, None).payload).transaction.amt == 0


def test_the_chain_module_wires_the_signer() -> None:
    assert isinstance(loaded_signer(ALGO), AlgoSigner)


# --- refusals --------------------------------------------------------------------------------------------------------


def _refused(tx: dict[str, Any] | str, *, testnet: bool = True, seed: bytes = SEED, chain: str = "ALGO") -> str:
    with pytest.raises(SigningError) as caught:
        AlgoSigner(GENESIS).sign(pending(tx, chain), [handle(seed)], testnet, NoNetwork())
    message = str(caught.value)
    assert "\n" not in message and secret_of(seed) not in message
    return message


def _good() -> dict[str, Any]:
    return upstream_json(address_of(SEED), address_of(OTHER_SEED))


def test_wrong_sender_is_refused() -> None:
    assert "sender is not this wallet" in _refused(_good(), seed=OTHER_SEED)


def test_testnet_transaction_on_a_mainnet_daemon_is_refused() -> None:
    assert "not Algorand mainnet" in _refused(_good(), testnet=False)


def test_mainnet_transaction_on_a_testnet_daemon_is_refused() -> None:
    tx = upstream_json(address_of(SEED), address_of(OTHER_SEED), testnet=False)
    assert "not Algorand testnet" in _refused(tx, testnet=True)


def test_genesis_id_not_matching_the_hash_is_refused() -> None:
    assert "genesis" in _refused({**_good(), "genesisID": "mainnet-v1.0"})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"type": "axfer"}, "only payment"),
        ({"flatFee": False}, "flat-fee"),
        ({"reKeyTo": {"publicKey": {}, "checksum": {}}}, "unsupported fields"),
        ({"closeRemainderTo": {"publicKey": {}, "checksum": {}}}, "unsupported fields"),
        ({"lease": byte_map(bytes(32))}, "lease"),
        ({"appArgs": [[1]]}, "application arguments"),
        ({"tag": {"type": "Buffer", "data": [77, 88]}}, "tag"),
        ({"amount": -1}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 2**64}, "amount"),
        ({"fee": "1000"}, "fee"),
        ({"lastRound": 40_001_001}, "validity window"),
        ({"lastRound": 39_999_999}, "lastRound"),
        ({"note": {"0": 1, "2": 3}}, "gaps"),
        ({"note": {"0": 256}}, "not a byte"),
        ({"note": byte_map(bytes(1025))}, "note over"),
        ({"genesisHash": {"type": "Buffer", "data": [1, 2]}}, "genesisHash"),
        ({"genesisHash": list(TESTNET_GENESIS_HASH)}, "genesisHash"),
    ],
)
def test_malformed_or_unsupported_fields_are_refused(change: dict[str, Any], words: str) -> None:
    assert words in _refused({**_good(), **change})


def test_an_address_with_a_wrong_checksum_is_refused() -> None:
    tx = _good()
    tx["to"]["checksum"]["0"] ^= 1
    assert "checksum" in _refused(tx)


def test_an_address_of_the_wrong_length_is_refused() -> None:
    tx = _good()
    del tx["from"]["publicKey"]["31"]
    assert "32 bytes" in _refused(tx)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", "x" * 70_000, "[" * 100_000])
def test_malformed_json_is_refused(text: str) -> None:
    _refused(text)


def test_another_chain_is_refused() -> None:
    assert "not ALGO" in _refused(_good(), chain="XLM")


def test_exactly_one_key_is_required() -> None:
    with pytest.raises(SigningError, match="one signing key"):
        AlgoSigner(GENESIS).sign(pending(_good()), [handle(), handle()], True, None)
    with pytest.raises(SigningError, match="one signing key"):
        AlgoSigner(GENESIS).sign(pending(_good()), [], True, None)


# --- the raw key -----------------------------------------------------------------------------------------------------


def test_raw_key_is_the_32_byte_seed() -> None:
    with handle().raw() as raw:
        assert bytes(raw) == SEED


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "A" * 102,
        base64.b32encode(bytes(64)).decode().rstrip("=").lower()[:-1] + "1",  # not base32
        base64.b32encode(SEED + bytes(SigningKey(OTHER_SEED).verify_key)).decode().rstrip("="),  # halves do not match
    ],
)
def test_bad_secrets_are_refused_without_quoting_them(secret: str) -> None:
    with pytest.raises(SigningError) as caught:
        algo_raw_key(secret)
    assert secret[:20] not in str(caught.value) or not secret


def test_upper_or_lower_case_secrets_give_the_same_seed() -> None:
    assert algo_raw_key(secret_of(SEED).lower()).bytes() == SEED
