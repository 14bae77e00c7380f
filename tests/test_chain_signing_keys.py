"""The raw signing keys ALGO, EGLD, VET, FLOW and ADA decode once in their chain modules (from key text without a
``str`` copy, from mnemonics at the pending index); the signer settings the daemon hands to the chains' signers; the
BNB retirement as checkconfig and report show it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from kms.chains import get_chain, retired_wallet_warnings, signer_setting_names
from kms.chains.base import KIND_MNEMONIC, SignerSettings, configured_signer, loaded_signer
from kms.chains.common import base32_secret, hex_number_secret
from kms.chains.flow import FLOW
from kms.chains.vet import VET, VET_FACTS
from kms.errors import SigningError, UsageError
from kms.hygiene import SecretBuffer
from tests.cli_helpers import run_kms
from tests.conftest import load_vectors

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
DERIVATION = load_vectors("derivation.json")


def raw(code: str, text: str, kind: str = "privateKey", index: int | None = None, testnet: bool = True) -> bytes:
    with get_chain(code).raw_signing_key(SecretBuffer(text), kind, index, testnet) as key:
        return key.bytes()


@pytest.mark.parametrize("code", ["EGLD", "VET", "FLOW", "ADA"])
@pytest.mark.parametrize("testnet", [True, False])
def test_a_mnemonic_derives_at_the_index_exactly_the_key_private_key_at_prints(code: str, testnet: bool) -> None:
    chain = get_chain(code)
    for index in (0, 1, 7):
        printed = chain.private_key_at(MNEMONIC, index, testnet)
        derived = raw(code, MNEMONIC, KIND_MNEMONIC, index, testnet)
        assert derived == raw(code, printed, testnet=testnet)  # the key text decodes to the same bytes
    assert raw(code, MNEMONIC, KIND_MNEMONIC, 0, testnet) != raw(code, MNEMONIC, KIND_MNEMONIC, 1, testnet)


@pytest.mark.parametrize("code", ["EGLD", "VET", "FLOW", "ADA"])
def test_a_mnemonic_without_an_index_signs_nothing(code: str) -> None:
    with pytest.raises(SigningError, match="index"):
        raw(code, MNEMONIC, KIND_MNEMONIC, None)


def test_vet_mnemonic_wallets_derive_on_vets_own_path_as_upstreams_derivation_vectors() -> None:
    vectors = [v for v in DERIVATION if v["chain"] == "VET"]
    assert vectors, "derivation.json has VET entries"
    for vector in vectors:
        for index, key in vector["expected"]["privateKeys"].items():
            derived = raw("VET", vector["input"]["mnemonic"], KIND_MNEMONIC, int(index), vector["testnet"])
            assert derived == bytes.fromhex(key.removeprefix("0x"))
    assert VET.derivation_path(False) == "m/44'/818'/0'/0" and VET.derivation_path(True) == "m/44'/1'/0'/0"


def test_algo_secret_decodes_to_its_seed_in_either_case() -> None:
    seed = bytes(range(32))
    secret = base64.b32encode(seed + bytes(SigningKey(seed).verify_key)).decode().rstrip("=")
    assert raw("ALGO", secret, "secret") == seed
    assert raw("ALGO", secret.lower(), "secret") == seed
    assert get_chain("ALGO").address_from_private_key(secret, True)  # the same text the chain validates


def test_flow_keys_without_leading_zeros_decode_right_aligned() -> None:
    assert raw("FLOW", "1") == bytes(31) + b"\x01"
    assert raw("FLOW", "abc") == bytes(30) + b"\x0a\xbc"
    assert raw("FLOW", "f" * 63) == bytes.fromhex("0" + "f" * 63)
    assert FLOW.decode_private_key("abc", True) == raw("FLOW", "abc")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("ALGO", "A" * 103),  # halves do not match
        ("ALGO", "not base32"),
        ("EGLD", "0x12"),
        ("EGLD", "g" * 64),
        ("VET", "0x" + "00" * 32),
        ("VET", "0x" + "ff" * 32),
        ("FLOW", ""),
        ("FLOW", "1" * 65),
        ("FLOW", "0x1"),
        ("ADA", "ff" * 64),  # not clamped
        ("ADA", "00" * 63),
    ],
)
def test_bad_key_text_is_refused_without_quoting_it(code: str, text: str) -> None:
    with pytest.raises(SigningError) as caught:
        raw(code, text)
    assert not text or text not in str(caught.value)


def test_buffer_decoders_refuse_what_is_not_exactly_their_encoding() -> None:
    assert base32_secret(SecretBuffer("A" * 102), 64) is None
    assert base32_secret(SecretBuffer("A" * 102 + "B"), 64) is None  # non-zero unused bits
    assert base32_secret(SecretBuffer("A" * 102 + "1"), 64) is None
    assert hex_number_secret(SecretBuffer("12 4"), 32) is None
    assert hex_number_secret(SecretBuffer("1" * 65), 32) is None


# -- signer settings -------------------------------------------------------------------------------------------------


def test_the_node_url_settings_are_declared_by_the_chains_and_reach_their_signers() -> None:
    assert set(signer_setting_names()) == {"TATUM_KMS_VET_NODE_URL", "TATUM_KMS_FLOW_NODE_URL"}
    settings = SignerSettings.of(
        {"TATUM_KMS_VET_NODE_URL": " http://127.0.0.1:8669/ ", "PATH": "/bin"}, signer_setting_names()
    )
    assert dict(settings) == {"TATUM_KMS_VET_NODE_URL": "http://127.0.0.1:8669"}
    vet = configured_signer(VET, settings).load()  # type: ignore[union-attr]
    assert vet.node_url(True) == "http://127.0.0.1:8669"
    assert loaded_signer(VET).node_url(True) == VET_FACTS.default_node_urls[True]  # type: ignore[union-attr]
    flow = configured_signer(FLOW, settings).load()  # type: ignore[union-attr]
    assert flow.access_node(False) == "https://rest-mainnet.onflow.org"  # unset: upstream's public node


@pytest.mark.parametrize("url", ["ftp://node", "https://node/x?key=1", "node.example", "http://a b"])
def test_a_bad_node_url_setting_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(UsageError, match="TATUM_KMS_FLOW_NODE_URL"):
        SignerSettings({"TATUM_KMS_FLOW_NODE_URL": url})


# -- BNB retired ------------------------------------------------------------------------------------------------------


def test_bnb_is_retired_and_live_chains_are_not() -> None:
    assert get_chain("BNB").retired == "BNB Beacon Chain has shut down" and get_chain("BNB").signer is None
    assert get_chain("ETH").retired is None
    assert retired_wallet_warnings({("ETH", True): 3}) == []
    (warning,) = retired_wallet_warnings({("BNB", False): 2, ("ETH", True): 3})
    assert "2 BNB mainnet wallet(s)" in warning and "shut down" in warning


def test_checkconfig_and_report_warn_about_stored_bnb_wallets(tmp_path: Path) -> None:
    key = get_chain("BNB").generate_private_key(False)["privateKey"]
    stored = run_kms(["storemanagedprivatekey", "BNB"], tmp_path, stdin=key + "\n")
    assert stored.code == 0, stored.stderr
    sid = stored.json()["signatureId"]
    config = run_kms(["checkconfig"], tmp_path).json()
    assert any("1 BNB mainnet wallet(s)" in w for w in config["warnings"])
    table = run_kms(["checkconfig", "--table"], tmp_path).stdout
    assert "BNB Beacon Chain has shut down" in table
    report = run_kms(["report", sid], tmp_path).json()
    assert any("BNB mainnet" in w for w in report["warnings"])
    assert any("shut down" in w for w in report["wallets"][sid]["warnings"])
    exported = run_kms(["getmanagedwallet", sid], tmp_path).json()  # still readable
    assert exported["privateKey"] == key


def test_checkconfig_without_bnb_wallets_has_no_warnings(tmp_path: Path) -> None:
    assert "warnings" not in run_kms(["checkconfig"], tmp_path).json()


def test_checkconfig_shows_the_node_url_settings(tmp_path: Path) -> None:
    from tests.cli_helpers import kms_env

    env = kms_env(tmp_path, TATUM_KMS_FLOW_NODE_URL="http://127.0.0.1:8888")
    settings = run_kms(["checkconfig"], tmp_path, env=env).json()["settings"]
    assert settings["TATUM_KMS_FLOW_NODE_URL"] == "http://127.0.0.1:8888"
    assert settings["TATUM_KMS_VET_NODE_URL"] is None
