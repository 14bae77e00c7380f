"""Each chain's keys and addresses checked against an independent implementation: the chain's own Python library
where one exists, otherwise a different library than the one kms uses, or a published vector."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kms.chains import get_chain
from kms.errors import InvalidKeyError

NETWORKS = (False, True)
NETWORK_IDS = ["mainnet", "testnet"]
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
ROUNDS = 5


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_algo_against_py_algorand_sdk(testnet: bool) -> None:
    from algosdk import account, encoding

    chain = get_chain("ALGO")
    for _ in range(ROUNDS):
        wallet = chain.generate_wallet(testnet)
        assert len(wallet["secret"]) == 103 and wallet["secret"] == wallet["secret"].upper()
        algosdk_key = base64.b64encode(base64.b32decode(wallet["secret"] + "=")).decode()
        assert account.address_from_private_key(algosdk_key) == wallet["address"]
        assert encoding.is_valid_address(wallet["address"])
    private_key, address = account.generate_account()
    secret = base64.b32encode(base64.b64decode(private_key)).decode().rstrip("=")
    assert chain.address_from_private_key(secret, testnet) == address
    chain.validate_address(address, testnet)


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_xlm_against_stellar_sdk_and_bip_utils(testnet: bool) -> None:
    from bip_utils import XlmAddrEncoder
    from stellar_sdk import Keypair

    chain = get_chain("XLM")
    for _ in range(ROUNDS):
        wallet = chain.generate_wallet(testnet)
        keypair = Keypair.from_secret(wallet["secret"])
        assert keypair.public_key == wallet["address"]
        assert XlmAddrEncoder.EncodeKey(keypair.raw_public_key()) == wallet["address"]
    other = Keypair.random()
    assert chain.address_from_private_key(other.secret, testnet) == other.public_key


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_xrp_against_xrpl_py(testnet: bool) -> None:
    from xrpl import CryptoAlgorithm
    from xrpl.core.addresscodec import classic_address_to_xaddress
    from xrpl.wallet import Wallet

    chain = get_chain("XRP")
    for _ in range(ROUNDS):
        wallet = chain.generate_wallet(testnet)
        assert wallet["secret"].startswith("sEd")  # ed25519, as xrpl.js Wallet.generate()
        assert Wallet.from_seed(wallet["secret"]).classic_address == wallet["address"]
    for algorithm in (CryptoAlgorithm.ED25519, CryptoAlgorithm.SECP256K1):
        other = Wallet.create(algorithm)
        assert chain.address_from_private_key(other.seed, testnet) == other.classic_address
    chain.validate_address(classic_address_to_xaddress(other.classic_address, None, testnet), testnet)
    with pytest.raises(InvalidKeyError, match="invalid XRP"):
        chain.validate_address(classic_address_to_xaddress(other.classic_address, None, not testnet), testnet)


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_sol_against_solders(testnet: bool) -> None:
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    chain = get_chain("SOL")
    for _ in range(ROUNDS):
        wallet = chain.generate_wallet(testnet)
        keypair = Keypair.from_base58_string(wallet["privateKey"])
        assert keypair.pubkey() == Pubkey.from_string(wallet["address"])
        assert str(keypair) == wallet["privateKey"]
    other = Keypair()
    assert chain.address_from_private_key(str(other), testnet) == str(other.pubkey())


def test_bnb_against_binance_chain_docs_vector() -> None:
    # The key/address pair of Binance Chain's javascript-sdk tests and docs (public key 029729a5...).
    chain = get_chain("BNB")
    key = "90335b9d2153ad1a9799a3ccc070bd64b4164e9642ee1dd48053c33f9a3a05e9"
    assert chain.address_from_private_key(key, True) == "tbnb1hgm0p7khfk85zpz5v0j8wnej3a90w709zzlffd"
    assert chain.address_from_private_key(key, False).startswith("bnb1hgm0p7khfk85zpz5v0j8wnej3a90w709")


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_bnb_against_coincurve_hashlib_and_embit(testnet: bool) -> None:
    import coincurve
    from embit import bech32

    chain = get_chain("BNB")
    for _ in range(ROUNDS):
        wallet = chain.generate_wallet(testnet)
        public_key = coincurve.PrivateKey(bytes.fromhex(wallet["privateKey"])).public_key.format(compressed=True)
        digest = hashlib.new("ripemd160", hashlib.sha256(public_key).digest()).digest()
        words = bech32.convertbits(digest, 8, 5)
        expected = bech32.bech32_encode(bech32.Encoding.BECH32, "tbnb" if testnet else "bnb", words)
        assert wallet["address"] == expected


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_ada_against_pycardano(testnet: bool) -> None:
    from pycardano import Address, HDWallet, Network, PaymentVerificationKey

    chain = get_chain("ADA")
    network = Network.TESTNET if testnet else Network.MAINNET
    for mnemonic in (MNEMONIC, chain.generate_wallet(testnet)["mnemonic"]):
        hd = HDWallet.from_mnemonic(mnemonic)
        account = hd.derive_from_path("m/1852'/1815'/0'/0")
        wallet = chain.wallet_from_mnemonic(mnemonic, testnet)
        assert wallet["xpub"] == (account.public_key + account.chain_code).hex()
        for index in (0, 1, 17):
            child = hd.derive_from_path(f"m/1852'/1815'/0'/0/{index}")
            key = chain.private_key_at(mnemonic, index, testnet)
            assert key == child.xprivate_key[:64].hex()
            enterprise = str(
                Address(payment_part=PaymentVerificationKey.from_primitive(child.public_key).hash(), network=network)
            )
            assert enterprise.startswith("addr_test1v" if testnet else "addr1v")
            assert chain.address_at(wallet, index, testnet) == enterprise
            assert chain.address_from_private_key(key, testnet) == enterprise
            chain.validate_address(enterprise, testnet)
    stake = hd.derive_from_path("m/1852'/1815'/0'/2/0")
    base = Address(
        payment_part=PaymentVerificationKey.from_primitive(account.public_key).hash(),
        staking_part=PaymentVerificationKey.from_primitive(stake.public_key).hash(),
        network=network,
    )
    chain.validate_address(str(base), testnet)  # base addresses are payment addresses too


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_tron_against_tronpy(testnet: bool) -> None:
    from tronpy.keys import PrivateKey

    chain = get_chain("TRON")
    wallet = chain.wallet_from_mnemonic(MNEMONIC, testnet)
    for index in (0, 3):
        key = chain.private_key_at(MNEMONIC, index, testnet)
        assert PrivateKey(bytes.fromhex(key)).public_key.to_base58check_address() == chain.address_at(
            wallet, index, testnet
        )
    for _ in range(ROUNDS):
        record = chain.generate_private_key(testnet)
        assert PrivateKey(bytes.fromhex(record["privateKey"])).public_key.to_base58check_address() == record["address"]


@pytest.mark.parametrize("code", ["ETH", "BSC", "MATIC", "CELO", "KLAY", "XDC", "ONE", "VET", "KCS"])
def test_evm_against_eth_account(code: str) -> None:
    from eth_account import Account

    chain = get_chain(code)
    prefix = "xdc" if code == "XDC" else "0x"
    for testnet in NETWORKS:
        record = chain.generate_private_key(testnet)
        expected = Account.from_key(record["privateKey"]).address.lower()
        assert record["address"] == prefix + expected[2:]


def test_kcs_uses_ethereums_path() -> None:
    # KCS's coin type in Tatum's SDK derivation table is 60 (as ETH), testnet 1.
    kcs, eth = get_chain("KCS"), get_chain("ETH")
    for testnet in NETWORKS:
        assert kcs.wallet_from_mnemonic(MNEMONIC, testnet) == eth.wallet_from_mnemonic(MNEMONIC, testnet)
        assert kcs.private_key_at(MNEMONIC, 4, testnet) == eth.private_key_at(MNEMONIC, 4, testnet)


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_btc_against_embit(testnet: bool) -> None:
    from embit.ec import PrivateKey
    from embit.networks import NETWORKS as EMBIT_NETWORKS
    from embit.script import p2wpkh

    chain = get_chain("BTC")
    network = EMBIT_NETWORKS["test" if testnet else "main"]
    for _ in range(ROUNDS):
        record = chain.generate_private_key(testnet)
        key = PrivateKey.from_wif(record["privateKey"])
        assert p2wpkh(key.get_public_key()).address(network) == record["address"]


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_flow_against_coincurve(testnet: bool) -> None:
    import coincurve

    chain = get_chain("FLOW")
    for _ in range(ROUNDS):
        record = chain.generate_private_key(testnet)
        raw = int(record["privateKey"], 16).to_bytes(32, "big")
        assert coincurve.PrivateKey(raw).public_key.format(compressed=False)[1:].hex() == record["address"]


@pytest.mark.parametrize("testnet", NETWORKS, ids=NETWORK_IDS)
def test_egld_against_pynacl_and_embit(testnet: bool) -> None:
    from embit import bech32
    from nacl.signing import SigningKey

    chain = get_chain("EGLD")
    for _ in range(ROUNDS):
        record = chain.generate_private_key(testnet)
        public_key = bytes(SigningKey(bytes.fromhex(record["privateKey"])).verify_key)
        expected = bech32.bech32_encode(bech32.Encoding.BECH32, "erd", bech32.convertbits(public_key, 8, 5))
        assert record["address"] == expected
