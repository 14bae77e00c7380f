"""XLM signing: byte-identical to upstream (stellar-sdk through the Tatum SDK), signatures verified with stellar-sdk
for the network passphrase the daemon's --testnet flag names, and bad input refused with one line."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from stellar_sdk import Keypair, TransactionBuilder, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError

from kms.chains.xlm import MAINNET_PASSPHRASE, NETWORK_PASSPHRASES, TESTNET_PASSPHRASE, network_passphrase
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.signing.xlm import XlmSigner
from tests.conftest import load_vectors
from tests.signing_fakes import handle, pending_of, raw_key

VECTORS = load_vectors("signing-xlm.json")
OTHER_SECRET = "SCZANGBA5YHTNYVVV4C3U252E2B6P6F5T3U6MM63WBSBZATAQI3EBTQ4"


def sign(vector: dict[str, Any], serialized: str | None = None, testnet: bool | None = None, secret: str = "") -> str:
    key = handle(raw_key("XLM", secret or vector["input"]["wallet"]["secret"]))
    net = vector["testnet"] if testnet is None else testnet
    return XlmSigner("XLM", NETWORK_PASSPHRASES).sign(pending_of(vector, serialized), [key], net, None).payload


def verifies(payload: str, address: str, passphrase: str) -> bool:
    envelope = TransactionEnvelope.from_xdr(payload, passphrase)
    assert len(envelope.signatures) == 1
    try:
        Keypair.from_public_key(address).verify(envelope.hash(), envelope.signatures[0].signature)
    except BadSignatureError:
        return False
    return envelope.signatures[0].signature_hint == Keypair.from_public_key(address).signature_hint()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_upstream_vector_is_reproduced_byte_for_byte(vector: dict[str, Any]) -> None:
    assert sign(vector) == vector["expected"]["txData"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["description"])
def test_signature_verifies_for_the_flagged_network_only_and_the_transaction_is_unchanged(
    vector: dict[str, Any],
) -> None:
    payload = sign(vector)
    address = vector["input"]["wallet"]["address"]
    right, wrong = network_passphrase(vector["testnet"]), network_passphrase(not vector["testnet"])
    assert verifies(payload, address, right)
    assert not verifies(payload, address, wrong)
    signed = TransactionEnvelope.from_xdr(payload, right).transaction
    unsigned = TransactionEnvelope.from_xdr(vector["input"]["pending"]["serializedTransaction"], right).transaction
    assert signed.to_xdr_object().to_xdr() == unsigned.to_xdr_object().to_xdr()
    assert signed.source.account_id == address


def test_network_passphrase_follows_the_daemon_flag() -> None:
    vector = VECTORS[0]
    address = vector["input"]["wallet"]["address"]
    as_mainnet = sign(vector, testnet=False)
    assert as_mainnet != vector["expected"]["txData"]
    assert verifies(as_mainnet, address, MAINNET_PASSPHRASE)
    assert not verifies(as_mainnet, address, TESTNET_PASSPHRASE)


def test_already_signed_envelope_is_refused() -> None:
    with pytest.raises(SigningError, match="already carries a signature"):
        sign(VECTORS[0], VECTORS[0]["expected"]["txData"])


def test_envelope_of_another_source_account_is_refused() -> None:
    with pytest.raises(SigningError, match="source account is not the address of the signing key"):
        sign(VECTORS[0], secret=OTHER_SECRET)


def test_fee_bump_envelope_is_refused() -> None:
    inner = TransactionEnvelope.from_xdr(VECTORS[0]["input"]["pending"]["serializedTransaction"], TESTNET_PASSPHRASE)
    fee_bump = TransactionBuilder.build_fee_bump_transaction(
        Keypair.from_secret(OTHER_SECRET).public_key, 200, inner, TESTNET_PASSPHRASE
    )
    with pytest.raises(SigningError, match="ENVELOPE_TYPE_TX_FEE_BUMP"):
        sign(VECTORS[0], fee_bump.to_xdr())


@pytest.mark.parametrize(
    ("serialized", "message"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x00\x00\x00\x02garbage").decode(), "not a Stellar transaction envelope"),
        ("====", "not base64|not a Stellar"),
    ],
)
def test_malformed_xdr_is_refused(serialized: str, message: str) -> None:
    with pytest.raises(SigningError, match=message) as refused:
        sign(VECTORS[0], serialized)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "secret", ["", "GDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZA57", "SABC", "S" + "A" * 55]
)
def test_malformed_secret_is_refused_without_echo(secret: str) -> None:
    with pytest.raises(SigningError) as refused:
        raw_key("XLM", secret)
    assert not secret or secret not in str(refused.value)


def test_raw_key_is_the_ed25519_seed() -> None:
    secret = VECTORS[0]["input"]["wallet"]["secret"]
    with raw_key("XLM", secret) as raw:
        assert raw.bytes() == Keypair.from_secret(secret).raw_secret_key()


def test_other_chain_key_count_and_key_kind_are_refused() -> None:
    key = handle(raw_key("XLM", VECTORS[0]["input"]["wallet"]["secret"]))
    with pytest.raises(SigningError, match="not a XLM transaction"):
        XlmSigner("XLM", NETWORK_PASSPHRASES).sign(replace(pending_of(VECTORS[0]), chain="XRP"), [key], True, None)
    with pytest.raises(SigningError, match="exactly one key, got 2"):
        XlmSigner("XLM", NETWORK_PASSPHRASES).sign(pending_of(VECTORS[0]), [key, key], True, None)
    with pytest.raises(SigningError, match="not a 32-byte ed25519 seed"):
        XlmSigner("XLM", NETWORK_PASSPHRASES).sign(
            pending_of(VECTORS[0]), [handle(SecretBuffer(bytes(range(1, 65))))], True, None
        )
