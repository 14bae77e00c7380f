"""The chain registry and every chain's wallet generation, self-consistency, validation and index bounds."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from bip_utils import (
    Bip32Secp256k1,
    Bip39Languages,
    Bip39MnemonicValidator,
    OneAddrEncoder,
    P2PKHAddrEncoder,
    P2SHAddrEncoder,
    P2TRAddrEncoder,
    P2WPKHAddrEncoder,
    Secp256k1PrivateKey,
)

from kms.api import MAX_INDEX
from kms.chains import CHAIN_ORDER, all_chains, get_chain, supported_codes
from kms.chains.base import Chain
from kms.errors import InvalidKeyError, KmsError, UnknownChainError, UsageError, WalletKindError
from tests.conftest import FIXTURES

KEYPAIR_CODES = ("ALGO", "XLM", "XRP", "SOL", "BNB")
MNEMONIC_CODES = tuple(code for code in CHAIN_ORDER if code not in KEYPAIR_CODES)
NETWORKS = (False, True)
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

ROUTES = {
    "ETH": "ethereum", "BTC": "bitcoin", "LTC": "litecoin", "DOGE": "dogecoin", "BCH": "bcash", "BSC": "bsc",
    "MATIC": "polygon", "KLAY": "klaytn", "XDC": "xdc", "ONE": "one", "CELO": "celo", "TRON": "tron",
    "SOL": "solana", "XLM": "xlm", "XRP": "xrp", "ALGO": "algorand", "EGLD": "egld", "VET": "vet", "FLOW": "flow",
    "KCS": "kcs", "ADA": "ada", "BNB": "bnb",
}  # fmt: skip

XPUB_PREFIX = {
    ("BTC", False): "xpub", ("BTC", True): "tpub", ("LTC", False): "Ltub", ("LTC", True): "ttub",
    ("DOGE", False): "xpub", ("DOGE", True): "tpub", ("BCH", False): "xpub", ("BCH", True): "tpub",
}  # fmt: skip


def safe_failure(
    action: Callable[[], object], secret: str | None = None, error: type[KmsError] = InvalidKeyError
) -> KmsError:
    """Run an action that must fail with ``error``; its message must be one line, carry no secret and no chained
    library exception."""
    with pytest.raises(error) as caught:
        action()
    exc = caught.value
    assert "\n" not in str(exc)
    assert exc.__cause__ is None and exc.__context__ is None
    if secret:
        assert secret not in str(exc)
    return exc


# --- registry ----------------------------------------------------------------------------------------------------


def test_registry_holds_the_22_upstream_chains_in_daemon_order() -> None:
    assert supported_codes() == list(CHAIN_ORDER)
    assert len(supported_codes()) == 22
    assert [chain.code for chain in all_chains()] == list(CHAIN_ORDER)


SIGNING_CODES = {"ETH", "BSC", "MATIC", "KLAY", "XDC", "ONE", "KCS", "CELO", "BTC", "LTC", "DOGE", "BCH"}
SIGNING_CODES |= {"TRON", "SOL", "XLM", "XRP", "ALGO", "EGLD", "VET", "FLOW", "ADA"}


@pytest.mark.parametrize("code", CHAIN_ORDER)
def test_chain_objects_follow_the_protocol(code: str) -> None:
    chain = get_chain(code)
    assert isinstance(chain, Chain)
    assert chain.code == code
    if code in SIGNING_CODES:
        assert callable(getattr(chain.signer, "sign", None))
    else:
        assert chain.signer is None
    assert chain.uses_mnemonic is (code not in KEYPAIR_CODES)
    assert chain.broadcast_route == ROUTES[code]


def test_chain_codes_are_case_insensitive() -> None:
    assert get_chain("eth") is get_chain("ETH")
    assert get_chain(" Btc ") is get_chain("BTC")
    assert get_chain("xDc").code == "XDC"


def test_unknown_chain_names_every_supported_code() -> None:
    exc = safe_failure(lambda: get_chain("DOGECOIN"), error=UnknownChainError)
    for code in CHAIN_ORDER:
        assert code in str(exc)


# --- mnemonic chains: shape and self-consistency -------------------------------------------------------------------


@pytest.mark.parametrize("testnet", NETWORKS, ids=["mainnet", "testnet"])
@pytest.mark.parametrize("code", MNEMONIC_CODES)
def test_generated_mnemonic_wallet_is_self_consistent(code: str, testnet: bool) -> None:
    chain = get_chain(code)
    wallet = chain.generate_wallet(testnet)
    mnemonic = wallet["mnemonic"]
    assert len(mnemonic.split(" ")) == 24
    assert Bip39MnemonicValidator(Bip39Languages.ENGLISH).IsValid(mnemonic)
    if code == "EGLD":
        assert list(wallet) == ["mnemonic"]
    else:
        assert set(wallet) == {"mnemonic", "xpub"}
        if code == "ADA":
            assert len(wallet["xpub"]) == 128
            int(wallet["xpub"], 16)
        else:
            assert wallet["xpub"].startswith(XPUB_PREFIX.get((code, testnet), "xpub"))
    assert chain.wallet_from_mnemonic(mnemonic, testnet) == wallet
    assert list(chain.wallet_from_mnemonic(mnemonic, testnet)) == list(wallet)  # upstream's field order
    for index in (0, 1, 7, MAX_INDEX):
        key = chain.private_key_at(mnemonic, index, testnet)
        chain.validate_private_key(key, testnet)
        address = chain.address_at(wallet, index, testnet)
        chain.validate_address(address, testnet)
        assert chain.address_from_private_key(key, testnet) == address
    assert chain.address_at(wallet, 0, testnet) != chain.address_at(wallet, 1, testnet)


@pytest.mark.parametrize("code", MNEMONIC_CODES)
def test_record_field_order_is_upstreams(code: str) -> None:
    wallet = get_chain(code).wallet_from_mnemonic(MNEMONIC, False)
    evm = ("ETH", "BSC", "MATIC", "CELO", "KLAY", "XDC", "ONE", "VET", "KCS")
    expected = ["mnemonic"] if code == "EGLD" else ["xpub", "mnemonic"] if code in evm else ["mnemonic", "xpub"]
    assert list(wallet) == expected


@pytest.mark.parametrize("testnet", NETWORKS, ids=["mainnet", "testnet"])
@pytest.mark.parametrize("code", CHAIN_ORDER)
def test_generated_private_key_matches_its_address(code: str, testnet: bool) -> None:
    chain = get_chain(code)
    first = chain.generate_private_key(testnet)
    second = chain.generate_private_key(testnet)
    assert set(first) == {"privateKey", "address"}
    assert first["privateKey"] != second["privateKey"]
    assert first["address"] != second["address"]
    for record in (first, second):
        chain.validate_private_key(record["privateKey"], testnet)
        chain.validate_address(record["address"], testnet)
        assert chain.address_from_private_key(record["privateKey"], testnet) == record["address"]


@pytest.mark.parametrize("testnet", NETWORKS, ids=["mainnet", "testnet"])
@pytest.mark.parametrize(
    ("code", "key_field"),
    [("ALGO", "secret"), ("XLM", "secret"), ("XRP", "secret"), ("SOL", "privateKey"), ("BNB", "privateKey")],
)
def test_random_pair_wallet_has_upstreams_shape(code: str, key_field: str, testnet: bool) -> None:
    chain = get_chain(code)
    wallet = chain.generate_wallet(testnet)
    assert list(wallet) == ["address", key_field]
    assert chain.address_from_private_key(wallet[key_field], testnet) == wallet["address"]
    chain.validate_address(wallet["address"], testnet)
    assert chain.generate_wallet(testnet)[key_field] != wallet[key_field]


@pytest.mark.parametrize("code", KEYPAIR_CODES)
def test_random_pair_chains_have_no_mnemonic_wallets(code: str) -> None:
    chain = get_chain(code)
    for action in (
        lambda: chain.wallet_from_mnemonic(MNEMONIC, False),
        lambda: chain.private_key_at(MNEMONIC, 0, False),
        lambda: chain.address_at({"mnemonic": MNEMONIC, "xpub": "xpub"}, 0, False),
    ):
        exc = safe_failure(action, MNEMONIC, error=WalletKindError)
        assert "no mnemonic wallets" in str(exc)


# --- index bounds --------------------------------------------------------------------------------------------------

BAD_INDEXES = (-1, MAX_INDEX + 1, 2**32, True, 1.5, "3", None)


@pytest.mark.parametrize("code", MNEMONIC_CODES)
def test_index_out_of_range_is_a_usage_error(code: str) -> None:
    chain = get_chain(code)
    wallet = chain.wallet_from_mnemonic(MNEMONIC, False)
    for index in BAD_INDEXES:
        exc = safe_failure(lambda i=index: chain.private_key_at(MNEMONIC, i, False), MNEMONIC, error=UsageError)
        assert str(MAX_INDEX) in str(exc)
        safe_failure(lambda i=index: chain.address_at(wallet, i, False), error=UsageError)
    assert chain.address_at(wallet, MAX_INDEX, False)
    assert chain.private_key_at(MNEMONIC, 0, False)


# --- mnemonics and records ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["BTC", "ETH", "EGLD", "ADA", "TRON"])
def test_bad_mnemonics_are_refused_without_echo(code: str) -> None:
    chain = get_chain(code)
    bad_checksum = " ".join(["abandon"] * 12)
    for mnemonic in (bad_checksum, "abandon " * 11 + "zebraic", "abandon abandon about", "", "ABANDON " * 11 + "ABOUT"):
        safe_failure(lambda m=mnemonic: chain.wallet_from_mnemonic(m, False), mnemonic.strip() or None)
        safe_failure(lambda m=mnemonic: chain.private_key_at(m, 0, False), mnemonic.strip() or None)


@pytest.mark.parametrize("code", ["BTC", "ETH", "EGLD", "ADA"])
def test_operator_mnemonic_is_normalized_but_stored_ones_must_be_canonical(code: str) -> None:
    chain = get_chain(code)
    sloppy = "  " + MNEMONIC.replace(" ", "  \t", 3) + "\n"
    assert chain.wallet_from_mnemonic(sloppy, True) == chain.wallet_from_mnemonic(MNEMONIC, True)
    exc = safe_failure(lambda: chain.private_key_at(sloppy, 0, True), MNEMONIC)
    assert "single spaces" in str(exc)


@pytest.mark.parametrize("code", [c for c in MNEMONIC_CODES if c != "EGLD"])
def test_address_at_needs_an_xpub(code: str) -> None:
    chain = get_chain(code)
    key = chain.private_key_at(MNEMONIC, 0, False)
    safe_failure(lambda: chain.address_at({"privateKey": key}, 0, False), key, error=WalletKindError)
    safe_failure(lambda: chain.address_at({"mnemonic": MNEMONIC, "xpub": "xpub-garbage"}, 0, False), MNEMONIC)


def test_egld_address_at_derives_from_the_mnemonic() -> None:
    chain = get_chain("EGLD")
    assert chain.address_at({"mnemonic": MNEMONIC}, 3, False) == chain.address_from_private_key(
        chain.private_key_at(MNEMONIC, 3, False), False
    )
    assert chain.address_at({"mnemonic": MNEMONIC}, 0, True).startswith("erd1")
    safe_failure(lambda: chain.address_at({"privateKey": "00" * 32}, 0, False), error=WalletKindError)


@pytest.mark.parametrize("code", ["BTC", "LTC", "DOGE", "BCH"])
def test_utxo_xpub_labelled_for_the_other_network_is_refused(code: str) -> None:
    chain = get_chain(code)
    testnet_wallet = chain.wallet_from_mnemonic(MNEMONIC, True)  # tpub / ttub
    safe_failure(lambda: chain.address_at(testnet_wallet, 0, False))
    if code == "LTC":
        mainnet_wallet = chain.wallet_from_mnemonic(MNEMONIC, False)  # Ltub
        safe_failure(lambda: chain.address_at(mainnet_wallet, 0, True))


def test_plain_bip32_xpub_is_read_on_every_network() -> None:
    """Generic BIP32 tools (and some upstream stores) write every network's account key with ``xpub`` bytes."""
    from bip_utils import Bip39SeedGenerator

    chain = get_chain("LTC")
    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(MNEMONIC).Generate()).DerivePath("m/44'/1'/0'/0")
    plain = {"xpub": node.PublicKey().ToExtended()}
    assert plain["xpub"].startswith("xpub")
    proper = chain.wallet_from_mnemonic(MNEMONIC, True)
    assert chain.address_at(plain, 5, True) == chain.address_at(proper, 5, True)


def test_private_extended_key_in_the_xpub_field_is_refused() -> None:
    chain = get_chain("ETH")
    from bip_utils import Bip39SeedGenerator

    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(MNEMONIC).Generate()).DerivePath("m/44'/60'/0'/0")
    xprv = node.PrivateKey().ToExtended()
    exc = safe_failure(lambda: chain.address_at({"xpub": xprv}, 0, False), xprv)
    assert "private" in str(exc)


def test_ada_accepts_the_older_sdks_256_digit_xpub() -> None:
    chain = get_chain("ADA")
    wallet = chain.wallet_from_mnemonic(MNEMONIC, False)
    longer = {"xpub": wallet["xpub"] + "ab" * 64}
    assert chain.address_at(longer, 4, False) == chain.address_at(wallet, 4, False)
    safe_failure(lambda: chain.address_at({"xpub": wallet["xpub"][:-2]}, 0, False))


# --- private-key validation ----------------------------------------------------------------------------------------


def _mainnet_and_testnet_keys(code: str) -> tuple[str, str]:
    chain = get_chain(code)
    return chain.private_key_at(MNEMONIC, 0, False), chain.private_key_at(MNEMONIC, 0, True)


@pytest.mark.parametrize("code", ["BTC", "LTC", "DOGE", "BCH"])
def test_wif_of_the_other_network_is_refused(code: str) -> None:
    chain = get_chain(code)
    mainnet_key, testnet_key = _mainnet_and_testnet_keys(code)
    exc = safe_failure(lambda: chain.validate_private_key(mainnet_key, True), mainnet_key)
    assert "testnet" in str(exc)
    safe_failure(lambda: chain.validate_private_key(testnet_key, False), testnet_key)
    safe_failure(lambda: chain.address_from_private_key(testnet_key, False), testnet_key)
    chain.validate_private_key(mainnet_key, False)
    chain.validate_private_key(testnet_key, True)


def test_uncompressed_wif_is_refused() -> None:
    from bip_utils import WifEncoder, WifPubKeyModes

    raw = bytes.fromhex("11" * 32)
    wif = WifEncoder.Encode(raw, net_ver=b"\x80", pub_key_mode=WifPubKeyModes.UNCOMPRESSED)
    exc = safe_failure(lambda: get_chain("BTC").validate_private_key(wif, False), wif)
    assert "uncompressed" in str(exc)


def _flip_last(text: str) -> str:
    last = text[-1]
    replacement = "2" if last != "2" else "3"
    return text[:-1] + replacement


def _bad_keys(code: str, good: str) -> list[str]:
    """Malformed variants of a good key in the chain's own text format."""
    common = ["", " ", "not a key", good[:-2], good + "00", " " + good, good + "\n"]
    if code in ("BTC", "LTC", "DOGE", "BCH", "XLM", "XRP"):
        return [*common, _flip_last(good)]  # base58check / StrKey: the checksum catches it
    if code in ("ETH", "BSC", "MATIC", "CELO", "KLAY", "XDC", "ONE", "VET", "KCS"):
        return [
            *common,
            good[2:],
            "0X" + good[2:],
            "0x" + "00" * 32,
            "0x" + format(SECP256K1_ORDER, "x"),
            "0x" + "g" * 64,
        ]
    if code in ("TRON", "BNB"):
        return [*common, "0x" + good, "00" * 32, format(SECP256K1_ORDER, "x"), "g" * 64]
    if code == "FLOW":
        return [*common[:3], good + "0" * (65 - len(good)), "0x" + good, "0", "g" * 64, "1" * 65]
    if code == "EGLD":
        return [*common, "0x" + good, "g" * 64]
    if code == "ADA":
        clamp_broken = format(int(good[:2], 16) | 0x01, "02x") + good[2:]
        return [*common, "0x" + good, clamp_broken, good[:64]]
    if code == "SOL":
        from bip_utils import Base58Decoder, Base58Encoder

        raw = Base58Decoder.Decode(good)
        other_public = bytes(32 - len(raw[32:])) + bytes(b ^ 1 for b in raw[32:])
        return [*common, Base58Encoder.Encode(raw[:32] + other_public), Base58Encoder.Encode(raw[:32]), "0" * 128]
    if code == "ALGO":
        import base64

        raw = base64.b32decode(good + "=")
        mismatched = base64.b32encode(raw[:32] + bytes(b ^ 1 for b in raw[32:])).decode().rstrip("=")
        return [*common, mismatched, good[:-1] + "8"]
    raise AssertionError(code)


@pytest.mark.parametrize("testnet", NETWORKS, ids=["mainnet", "testnet"])
@pytest.mark.parametrize("code", CHAIN_ORDER)
def test_malformed_private_keys_are_refused_without_echo(code: str, testnet: bool) -> None:
    chain = get_chain(code)
    good = chain.generate_private_key(testnet)["privateKey"]
    for bad in _bad_keys(code, good):
        assert bad != good
        safe_failure(lambda k=bad: chain.validate_private_key(k, testnet), bad.strip() or None)
        safe_failure(lambda k=bad: chain.address_from_private_key(k, testnet), bad.strip() or None)
    for not_text in (None, 12345, b"\x00" * 32):
        safe_failure(lambda k=not_text: chain.validate_private_key(k, testnet))  # type: ignore[arg-type]


def test_flow_keys_without_leading_zeros_are_upstreams_format() -> None:
    chain = get_chain("FLOW")
    short = "ab" * 31  # 62 digits, as upstream prints a key whose first byte is zero
    assert chain.address_from_private_key(short, False) == chain.address_from_private_key("00" + short, False)
    assert chain.private_key_at(MNEMONIC, 0, False) == chain.private_key_at(MNEMONIC, 0, False).lstrip("0")


def test_sol_accepts_the_hex_form_of_its_secret_key() -> None:
    from bip_utils import Base58Decoder

    chain = get_chain("SOL")
    wallet = chain.generate_wallet(False)
    as_hex = Base58Decoder.Decode(wallet["privateKey"]).hex()
    assert chain.address_from_private_key(as_hex, False) == wallet["address"]


# --- address validation --------------------------------------------------------------------------------------------


def _secp_public_key() -> object:
    return Secp256k1PrivateKey.FromBytes(bytes.fromhex("0c" * 32)).PublicKey()


def test_btc_accepts_its_networks_standard_addresses_only() -> None:
    chain = get_chain("BTC")
    pub = _secp_public_key()
    mainnet = [
        P2PKHAddrEncoder.EncodeKey(pub, net_ver=b"\x00"),
        P2SHAddrEncoder.EncodeKey(pub, net_ver=b"\x05"),
        P2WPKHAddrEncoder.EncodeKey(pub, hrp="bc", wit_ver=0),
        P2TRAddrEncoder.EncodeKey(pub, hrp="bc"),
    ]
    testnet = [
        P2PKHAddrEncoder.EncodeKey(pub, net_ver=b"\x6f"),
        P2SHAddrEncoder.EncodeKey(pub, net_ver=b"\xc4"),
        P2WPKHAddrEncoder.EncodeKey(pub, hrp="tb", wit_ver=0),
    ]
    for address in mainnet:
        chain.validate_address(address, False)
        safe_failure(lambda a=address: chain.validate_address(a, True))
        safe_failure(lambda a=address: chain.validate_address(_flip_last(a), False))
    for address in testnet:
        chain.validate_address(address, True)
        safe_failure(lambda a=address: chain.validate_address(a, False))


def test_ltc_and_doge_addresses_follow_their_version_bytes() -> None:
    pub = _secp_public_key()
    ltc, doge = get_chain("LTC"), get_chain("DOGE")
    ltc.validate_address(P2SHAddrEncoder.EncodeKey(pub, net_ver=b"\x32"), False)  # M...
    ltc.validate_address(P2WPKHAddrEncoder.EncodeKey(pub, hrp="ltc", wit_ver=0), False)
    ltc.validate_address(P2WPKHAddrEncoder.EncodeKey(pub, hrp="tltc", wit_ver=0), True)
    safe_failure(lambda: ltc.validate_address(P2PKHAddrEncoder.EncodeKey(pub, net_ver=b"\x00"), False))  # a BTC 1...
    doge.validate_address(P2SHAddrEncoder.EncodeKey(pub, net_ver=b"\x16"), False)
    safe_failure(lambda: doge.validate_address(P2PKHAddrEncoder.EncodeKey(pub, net_ver=b"\x71"), False))
    doge.validate_address(P2PKHAddrEncoder.EncodeKey(pub, net_ver=b"\x71"), True)


def test_bch_cashaddr_forms() -> None:
    chain = get_chain("BCH")
    address = chain.address_at(chain.wallet_from_mnemonic(MNEMONIC, False), 0, False)
    chain.validate_address(address, False)
    chain.validate_address(address.split(":")[1], False)
    chain.validate_address(address.upper(), False)
    safe_failure(lambda: chain.validate_address(address, True))
    safe_failure(lambda: chain.validate_address(address[:-1] + ("q" if address[-1] != "q" else "p"), False))
    mixed = address[:14] + address[14:].upper()
    safe_failure(lambda: chain.validate_address(mixed, False))


def test_evm_addresses_accept_eip55_and_refuse_a_wrong_checksum() -> None:
    chain = get_chain("ETH")
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
    chain.validate_address(checksummed, False)
    chain.validate_address(checksummed.lower(), True)
    safe_failure(lambda: chain.validate_address(checksummed.replace("aA", "Aa"), False))
    safe_failure(lambda: chain.validate_address(checksummed[:-1], False))
    safe_failure(lambda: chain.validate_address("xdc" + checksummed[2:].lower(), False))
    get_chain("XDC").validate_address("xdc" + checksummed[2:].lower(), False)
    safe_failure(lambda: get_chain("XDC").validate_address(checksummed.lower(), False))


def test_one_accepts_its_bech32_form() -> None:
    chain = get_chain("ONE")
    pub = _secp_public_key()
    chain.validate_address(OneAddrEncoder.EncodeKey(pub), False)
    safe_failure(lambda: chain.validate_address(_flip_last(OneAddrEncoder.EncodeKey(pub)), False))


WRONG_NETWORK_ADDRESS_CODES = ("BTC", "LTC", "DOGE", "BCH", "BNB", "ADA")


@pytest.mark.parametrize("code", WRONG_NETWORK_ADDRESS_CODES)
def test_addresses_of_the_other_network_are_refused(code: str) -> None:
    chain = get_chain(code)
    key_record = chain.generate_private_key(False)
    mainnet_address = key_record["address"]
    testnet_address = chain.generate_private_key(True)["address"]
    safe_failure(lambda: chain.validate_address(mainnet_address, True))
    safe_failure(lambda: chain.validate_address(testnet_address, False))


@pytest.mark.parametrize("testnet", NETWORKS, ids=["mainnet", "testnet"])
@pytest.mark.parametrize("code", CHAIN_ORDER)
def test_malformed_addresses_are_refused(code: str, testnet: bool) -> None:
    chain = get_chain(code)
    good = chain.generate_private_key(testnet)["address"]
    for bad in ("", "   ", "0x", good[:-3], good + "x", " " + good, good.replace(good[5], "!", 1)):
        safe_failure(lambda a=bad: chain.validate_address(a, testnet))
    safe_failure(lambda: chain.validate_address(None, testnet))  # type: ignore[arg-type]


def test_flow_address_forms() -> None:
    chain = get_chain("FLOW")
    public_key = chain.address_at(chain.wallet_from_mnemonic(MNEMONIC, False), 0, False)
    chain.validate_address(public_key, False)
    chain.validate_address("0x1654653399040a61", False)
    chain.validate_address("1654653399040a61", True)
    safe_failure(lambda: chain.validate_address("0x" + public_key, False))
    safe_failure(lambda: chain.validate_address("ff" * 64, False))  # not a point on secp256k1


# --- upstream's own wallet store -----------------------------------------------------------------------------------


def test_records_from_an_upstream_store_agree() -> None:
    records = json.loads((FIXTURES / "upstream-wallet.expected.json").read_text())
    checked = 0
    for record in records.values():
        chain = get_chain(record["chain"])
        testnet = record["testnet"]
        if "mnemonic" in record:
            # The store's xpubs carry plain BIP32 version bytes on every network; the key material must be ours.
            ours = chain.wallet_from_mnemonic(record["mnemonic"], testnet)
            for index in (0, 9):
                address = chain.address_at(record, index, testnet)
                assert address == chain.address_at(ours, index, testnet)
                key = chain.private_key_at(record["mnemonic"], index, testnet)
                assert chain.address_from_private_key(key, testnet) == address
        elif "secret" in record:
            assert chain.address_from_private_key(record["secret"], testnet) == record["address"]
        else:
            chain.validate_private_key(record["privateKey"], testnet)
        checked += 1
    assert checked == len(records) >= 8
