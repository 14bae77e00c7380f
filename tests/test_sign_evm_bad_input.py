"""Bad pending transactions and keys: a one-line SigningError, no secret in it, and nothing signed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account

from kms.api import PendingTransaction
from kms.chains.evm import evm_signer
from kms.errors import KmsError, SigningError
from kms.signing import evm_encode
from tests.test_sign_evm import FakeLookups, handle, key, pending_for

PK = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"
OTHER_PK = "0x" + "11" * 32
ADDRESS = Account.from_key(PK).address
GOOD: dict[str, Any] = {
    "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
    "value": "1000",
    "gasPrice": "20000000000",
    "gas": "21000",
    "nonce": 7,
    "chainId": 11155111,
}


@pytest.fixture(autouse=True)
def signatures_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts every signature made (the EVM signers sign only through evm_encode's one digest signer), so each bad
    input can prove nothing was signed."""
    made: list[str] = []
    real_sign_digest = evm_encode._sign_digest

    def sign_digest(key: Any, digest: bytes) -> Any:
        made.append("hash")
        return real_sign_digest(key, digest)

    monkeypatch.setattr(evm_encode, "_sign_digest", sign_digest)
    yield made


def refuse(
    made: list[str],
    tx: dict[str, Any] | str,
    match: str,
    *,
    chain: str = "ETH",
    testnet: bool = True,
    keys: list[tuple[str, str]] | None = None,
    pending_index: int | None = None,
    lookups: Any = None,
    **pending_extra: Any,
) -> None:
    """``keys``: (signatureId, key text) pairs, made into handles by the chain inside the refusal check; otherwise
    PK, derived at ``pending_index``."""
    pending = pending_for(chain, tx, **pending_extra)
    with pytest.raises(SigningError, match=match) as info:
        handles = [handle(sid, text) for sid, text in keys] if keys is not None else key(PK, pending_index)
        evm_signer(chain).sign(pending, handles, testnet, lookups)
    message = str(info.value)
    assert "\n" not in message
    assert PK[2:] not in message.lower() and OTHER_PK[2:] not in message.lower()
    assert made == [], "something was signed"


def test_the_good_transaction_signs(signatures_made: list[str]) -> None:
    assert evm_signer("ETH").sign(pending_for("ETH", GOOD), key(PK), True).payload.startswith("0xf86a")
    assert signatures_made == ["hash"]


@pytest.mark.parametrize(
    ("serialized", "match"),
    [
        ("", "no serializedTransaction"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"to": NaN}', "not valid JSON"),
        ('{"value": "1", "nonce": 1, "value": "1000000"}', "repeats the field 'value'"),
        ("{" * 5000 + "}" * 5000, "nested too deeply"),
        (json.dumps({**GOOD, "data": "0x" + "00" * 600_000}), "too large"),
    ],
    ids=["empty", "text", "array", "nan", "duplicate", "deep", "huge"],
)
def test_unreadable_serialized_transaction(signatures_made: list[str], serialized: str, match: str) -> None:
    refuse(signatures_made, serialized, match)


def test_missing_serialized_transaction(signatures_made: list[str]) -> None:
    pending = PendingTransaction(id="p", chain="ETH", serialized_transaction=None)  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="no serializedTransaction"):
        evm_signer("ETH").sign(pending, key(PK), True)
    assert signatures_made == []


BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"gasPremium": "1"}, "unknown field 'gasPremium'"),
    ("celo field on eth", {"feeCurrency": "0x" + "22" * 20}, "unknown field 'feeCurrency'"),
    ("access list", {"accessList": []}, "access lists"),
    ("web3 common", {"common": {"customChain": {"chainId": 1}}}, "signing options"),
    ("to not hex", {"to": "0xzz" + "0" * 38}, "'to' is not a 20-byte hex address"),
    ("to short", {"to": "0x1234"}, "'to' is not a 20-byte hex address"),
    ("to bare 0x", {"to": "0x"}, "'to' is not a 20-byte hex address"),
    ("to xdc on eth", {"to": "xdc22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"}, "'to' is not a 20-byte hex address"),
    ("to number", {"to": 12}, "'to' must be an address string"),
    ("to bad checksum", {"to": "0x22D44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"}, "EIP-55 checksum"),
    ("value negative int", {"value": -1}, "'value' is negative"),
    ("value negative str", {"value": "-1000"}, "'value' is negative"),
    ("value overflow", {"value": str(2**256)}, "'value' overflows uint256"),
    ("value hex overflow", {"value": "0x1" + "0" * 64}, "'value' is not a decimal or 0x-hex integer"),
    ("value fraction", {"value": 1.5}, "'value' must be a whole number"),
    ("value bool", {"value": True}, "'value' must be a number, not a boolean"),
    ("value words", {"value": "ten"}, "'value' is not a decimal or 0x-hex integer"),
    ("value empty", {"value": ""}, "'value' is not a decimal or 0x-hex integer"),
    ("value scientific", {"value": "1e18"}, "'value' is not a decimal or 0x-hex integer"),
    ("value unsafe json number", {"value": 2**60}, "above 2\\^53"),
    ("value object", {"value": {"amount": 1}}, "'value' must be a number or a numeric string"),
    ("gas overflow", {"gas": str(2**64)}, "'gas' overflows"),
    ("gas below intrinsic", {"gas": 20999}, "below the intrinsic gas"),
    ("gas below data cost", {"gas": 21000, "data": "0x01"}, "below the intrinsic gas"),
    ("gas and gasLimit disagree", {"gasLimit": 30000}, "'gas' and 'gasLimit' disagree"),
    ("gas price overflow", {"gasPrice": str(2**256)}, "'gasPrice' overflows uint256"),
    ("gas times price overflow", {"gasPrice": str(2**255)}, "overflows uint256"),
    ("nonce eip-2681", {"nonce": str(2**64 - 1)}, "'nonce' overflows"),
    ("nonce negative", {"nonce": -1}, "'nonce' is negative"),
    ("chain id of bsc", {"chainId": 56}, "chainId 56 does not belong to ETH testnet"),
    ("mainnet id on testnet", {"chainId": 1}, "chainId 1 does not belong to ETH testnet"),
    ("chain id zero", {"chainId": 0}, "replayable"),
    ("data not hex", {"data": "0xzz"}, "'data' is not hex"),
    ("data odd", {"data": "0xabc"}, "odd number of hex digits"),
    ("data number", {"data": 5}, "'data' must be a hex string"),
    ("data and input differ", {"data": "0x01", "input": "0x02", "gas": 50000}, "'data' and 'input'"),
    ("eip-1559 on eth", {"maxFeePerGas": "2", "maxPriorityFeePerGas": "1"}, "EIP-1559 fee fields"),
    ("type 2 on eth", {"type": 2}, "EIP-1559 fee fields"),
    ("type 1", {"type": "0x1"}, "type '0x1' is not supported"),
    ("caver type on eth", {"type": "LEGACY"}, "type 'LEGACY' is not supported"),
    ("no recipient no code", {"to": None, "data": None}, "neither a recipient"),
    ("from another key", {"from": Account.from_key(OTHER_PK).address}, "'from' is not the address of the signing key"),
]


@pytest.mark.parametrize(("change", "match"), [(c, m) for _, c, m in BAD_FIELDS], ids=[n for n, _, _ in BAD_FIELDS])
def test_bad_field(signatures_made: list[str], change: dict[str, Any], match: str) -> None:
    refuse(signatures_made, {**GOOD, **change}, match)


def test_chain_id_for_the_other_network_is_refused(signatures_made: list[str]) -> None:
    refuse(signatures_made, {**GOOD, "chainId": 11155111}, "does not belong to ETH mainnet", testnet=False)
    refuse(signatures_made, {**GOOD, "chainId": 1}, "does not belong to BSC mainnet", chain="BSC", testnet=False)
    refuse(signatures_made, {**GOOD, "chainId": 42220}, "does not belong to CELO testnet", chain="CELO")


def test_xdc_eip1559_must_be_complete(signatures_made: list[str]) -> None:
    base = {**GOOD, "chainId": 51}
    del base["gasPrice"]
    refuse(signatures_made, {**base, "maxFeePerGas": "5"}, "needs both", chain="XDC")
    both = {"maxFeePerGas": "5", "maxPriorityFeePerGas": "1"}
    refuse(signatures_made, {**base, **both, "gasPrice": "5"}, "cannot also carry gasPrice", chain="XDC")
    refuse(signatures_made, {**base, "maxFeePerGas": "1", "maxPriorityFeePerGas": "5"}, "greater than", chain="XDC")


def test_xdc_from_must_match_in_either_spelling(signatures_made: list[str]) -> None:
    other = "xdc" + Account.from_key(OTHER_PK).address[2:].lower()
    refuse(signatures_made, {**GOOD, "chainId": 51, "from": other}, "'from' is not the address", chain="XDC")


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ([], "exactly one key, got 0"),
        ([("a", PK), ("b", OTHER_PK)], "exactly one key, got 2"),
        ([("a", PK[:-2])], "not a 32-byte hex private key"),
        ([("a", PK + "00")], "not a 32-byte hex private key"),
        ([("a", "0x" + "zz" * 32)], "not a 32-byte hex private key"),
        ([("a", "0x" + "00" * 32)], "not a valid secp256k1 private key"),
        ([("a", "0x" + "ff" * 32)], "not a valid secp256k1 private key"),
        ([("a", "L1aW4aubDFB7yfras2S1mN3bqg9nwySY8nkoLmJebSLD5BWv3ENZ")], "not a 32-byte hex private key"),
    ],
    ids=["none", "two", "short", "long", "not-hex", "zero", "over-order", "wif"],
)
def test_bad_keys(signatures_made: list[str], keys: list[tuple[str, str]], match: str) -> None:
    refuse(signatures_made, GOOD, match, keys=keys)


def test_key_index_must_match_pending_index(signatures_made: list[str]) -> None:
    refuse(signatures_made, GOOD, "another index", pending_index=3, index=4)


def test_pending_for_another_chain(signatures_made: list[str]) -> None:
    pending = pending_for("BSC", GOOD)
    with pytest.raises(SigningError, match="not a ETH transaction"):
        evm_signer("ETH").sign(pending, key(PK), True)
    assert signatures_made == []


def test_lookup_answers_are_checked(signatures_made: list[str]) -> None:
    tx = {k: v for k, v in GOOD.items() if k not in ("nonce", "chainId")}
    refuse(signatures_made, tx, "unusable ETH nonce", lookups=FakeLookups(nonce=2**64, chain=11155111))
    refuse(signatures_made, tx, "node reports chainId 56", lookups=FakeLookups(chain=56))
    refuse(signatures_made, {**GOOD, "gasPrice": "0"}, "unusable ETH gas price", lookups=FakeLookups(price=0))


def test_signing_errors_are_kms_errors() -> None:
    assert issubclass(SigningError, KmsError)
