"""EVM signing: upstream's captured transactions byte for byte, and every chain checked by decoding and recovering the
signed transaction independently (eth-account / rlp / eth-keys), never by comparing with our own encoder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import rlp
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_keys import keys as eth_keys
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.chains.evm import EVM_FACTS, EvmFacts, EvmQuirks, evm_signer
from kms.errors import SigningError, TatumApiError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.evm import CeloSigner, EvmSigner
from tests.conftest import load_vectors

EVM_CODES = ("ETH", "BSC", "MATIC", "KLAY", "XDC", "ONE", "KCS", "CELO")
COIN_TYPES = {"ETH": 60, "BSC": 60, "MATIC": 966, "CELO": 52752, "KLAY": 8217, "XDC": 550, "ONE": 1023, "KCS": 60}
RECIPIENT = "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
TOKEN = "0x1111111111111111111111111111111111111111"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# -- helpers shared with test_anvil.py ------------------------------------------------------------------------------


def derive_key(mnemonic: str, index: int, coin: int) -> str:
    """BIP44 m/44'/coin'/0'/0/index with bip-utils: an implementation independent of kms."""
    seed = Bip39SeedGenerator(mnemonic).Generate()
    node = Bip32Slip10Secp256k1.FromSeed(seed).DerivePath(f"m/44'/{coin}'/0'/0/{index}")
    return "0x" + node.PrivateKey().Raw().ToHex()


def pending_for(chain: str, tx: Mapping[str, Any] | str, **extra: Any) -> PendingTransaction:
    serialized = tx if isinstance(tx, str) else json.dumps(tx)
    return PendingTransaction(
        id="8d3f6c1e-5b7a-4c2e-9f10-123456789abc",
        chain=chain,
        serialized_transaction=serialized,
        hashes=("sig-1",),
        **extra,
    )


def handle(signature_id: str, private_key: str, index: int | None = None, chain: str = "ETH") -> KeyHandle:
    """A key handle as the daemon makes it: the chain decodes the stored key text into raw bytes."""
    with SecretBuffer(private_key) as secret:
        return KeyHandle(signature_id, get_chain(chain).raw_signing_key(secret, "privateKey", None, False), index)


def key(private_key: str, index: int | None = None) -> list[KeyHandle]:
    return [handle("sig-1", private_key, index)]


def signed_hex(signed: SignedTransaction) -> str:
    assert isinstance(signed, SignedTransaction)
    return signed.payload


def _int(item: bytes) -> int:
    return int.from_bytes(item, "big")


def decode_legacy(raw_hex: str | SignedTransaction) -> dict[str, Any]:
    """Decode a signed legacy EIP-155 transaction with rlp and recover its sender with eth-account."""
    raw_hex = raw_hex.payload if isinstance(raw_hex, SignedTransaction) else raw_hex
    raw = bytes.fromhex(raw_hex.removeprefix("0x"))
    items = rlp.decode(raw)
    assert isinstance(items, list) and len(items) == 9, "not a 9-field legacy transaction"
    nonce, gas_price, gas, to, value, data, v, r, s = items
    v_int = _int(v)
    assert v_int >= 37, "not EIP-155 protected"
    return {
        "nonce": _int(nonce),
        "gasPrice": _int(gas_price),
        "gas": _int(gas),
        "to": "0x" + to.hex() if to else None,
        "value": _int(value),
        "data": bytes(data),
        "chainId": (v_int - 35) // 2,
        "from": Account.recover_transaction(raw),
        "low_s": _int(s) <= SECP256K1_N // 2,
        "r": _int(r),
    }


def decode_typed(raw_hex: str | SignedTransaction) -> dict[str, Any]:
    raw_hex = raw_hex.payload if isinstance(raw_hex, SignedTransaction) else raw_hex
    raw = bytes.fromhex(raw_hex.removeprefix("0x"))
    typed = TypedTransaction.from_bytes(HexBytes(raw))
    as_dict = typed.as_dict()
    as_dict["from"] = Account.recover_transaction(raw)
    as_dict["type_byte"] = raw[0]
    return as_dict


def decode_celo(raw_hex: str | SignedTransaction) -> dict[str, Any]:
    """Celo's 12-field layout, with the sender recovered by eth-keys from the EIP-155 signing hash."""
    raw_hex = raw_hex.payload if isinstance(raw_hex, SignedTransaction) else raw_hex
    items = rlp.decode(bytes.fromhex(raw_hex.removeprefix("0x")))
    assert isinstance(items, list) and len(items) == 12, "not a 12-field Celo transaction"
    body, (v, r, s) = items[:9], items[9:]
    chain_id = (_int(v) - 35) // 2
    digest = keccak(rlp.encode([*body, chain_id, 0, 0]))
    signature = eth_keys.Signature(vrs=(_int(v) - 35 - 2 * chain_id, _int(r), _int(s)))
    sender = signature.recover_public_key_from_msg_hash(digest).to_checksum_address()
    return {
        "nonce": _int(body[0]),
        "gasPrice": _int(body[1]),
        "gas": _int(body[2]),
        "feeCurrency": "0x" + body[3].hex() if body[3] else None,
        "gatewayFeeRecipient": "0x" + body[4].hex() if body[4] else None,
        "gatewayFee": _int(body[5]),
        "to": "0x" + body[6].hex() if body[6] else None,
        "value": _int(body[7]),
        "data": bytes(body[8]),
        "chainId": chain_id,
        "from": sender,
    }


_BY_RPC = {facts.route.rpc: code for code, facts in EVM_FACTS.items() if facts.route is not None}
_BY_REST = {facts.route.rest: code for code, facts in EVM_FACTS.items() if facts.route is not None}


@dataclass
class FakeLookups:
    """A NodeGateway that answers like the Tatum API would and records what was asked, as (kind, chain, ...)."""

    nonce: int = 5
    price: int = 7 * 10**9
    gas: int = 50_000
    chain: int | None = None
    fee_currency_price: int | None = None
    testnet: bool = True
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def transaction_count(self, chain: str, address: str, testnet: bool) -> int:
        self.calls.append(("nonce", chain, address, testnet))
        return self.nonce

    def gas_price(self, chain: str, testnet: bool) -> int:
        self.calls.append(("gas_price", chain, testnet))
        return self.price

    def estimate_gas(self, chain: str, tx: Mapping[str, Any], testnet: bool) -> int:
        self.calls.append(("estimate", chain, dict(tx), testnet))
        return self.gas

    def chain_id(self, chain: str, testnet: bool) -> int:
        self.calls.append(("chain_id", chain, testnet))
        assert self.chain is not None
        return self.chain

    def fee_currency_gas_price(self, chain: str, fee_currency: str, testnet: bool) -> int:
        self.calls.append(("fee_currency_price", chain, fee_currency, testnet))
        assert self.fee_currency_price is not None
        return self.fee_currency_price

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]

    # -- the NodeGateway protocol, routed to the look-ups above ----------------------------------------------------

    def tatum_get(self, path: str, *, what: str) -> Any:
        parts = path.split("/")
        if parts[2:4] == ["blockchain", "fee"]:
            return {"medium": str(self.gas_price(parts[4], self.testnet))}
        assert parts[3:5] == ["transaction", "count"], path
        return self.transaction_count(_BY_REST[parts[2]], parts[5], self.testnet)

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        raise AssertionError(f"unexpected POST {path}")

    def node_rpc(self, path: str, method: str, params: Any, *, what: str) -> Any:
        chain, name = _BY_RPC[path], method.split("_", 1)[1]
        if name == "getTransactionCount":
            return self.transaction_count(chain, params[0], self.testnet)
        if name == "gasPrice":
            if params:
                return self.fee_currency_gas_price(chain, params[0], self.testnet)
            return self.gas_price(chain, self.testnet)
        if name == "estimateGas":
            return self.estimate_gas(chain, params[0], self.testnet)
        assert name.lower() == "chainid", method
        return self.chain_id(chain, self.testnet)

    def external_get(self, url: str, *, what: str) -> Any:
        return {"fast": {"maxFee": self.gas_price("MATIC", self.testnet) / 10**9}}

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        raise AssertionError(f"unexpected POST {url}")


def decode_any(chain: str, raw_hex: str) -> dict[str, Any]:
    return decode_celo(raw_hex) if chain == "CELO" else decode_legacy(raw_hex)


def derivation_keys(chain: str, testnet: bool) -> tuple[str, dict[str, str], dict[str, str]]:
    vector = next(v for v in load_vectors("derivation.json") if v["chain"] == chain and v["testnet"] == testnet)
    return vector["input"]["mnemonic"], vector["expected"]["privateKeys"], vector["expected"]["addresses"]


def as_hex_address(address: str) -> str:
    return "0x" + address[3:] if address.startswith("xdc") else address


# -- upstream's captured transactions ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", load_vectors("daemon-eth.json"), ids=lambda v: v["description"][:50])
def test_daemon_eth_vectors_are_byte_identical(vector: dict[str, Any]) -> None:
    pending_raw = vector["input"]["pending"]
    wallet = vector["input"]["wallet"]
    index = pending_raw.get("index")
    if "mnemonic" in wallet:
        private_key = derive_key(wallet["mnemonic"], index, 1 if vector["testnet"] else 60)
    else:
        private_key = wallet["privateKey"]
    pending = PendingTransaction(
        id=pending_raw["id"],
        chain=pending_raw["chain"],
        serialized_transaction=pending_raw["serializedTransaction"],
        hashes=("sig-1",),
        index=index,
        withdrawal_id=pending_raw.get("withdrawalId"),
    )
    lookups = FakeLookups(nonce=0, testnet=vector["testnet"])
    tx_data = evm_signer(vector["chain"]).sign(pending, key(private_key, index), vector["testnet"], lookups)
    assert tx_data.payload == vector["expected"]["txData"]
    assert vector["expected"]["broadcastPath"] == "/v3/ethereum/broadcast"


def test_nonce_zero_is_a_nonce_not_a_gap() -> None:
    vector = load_vectors("daemon-eth.json")[1]
    assert json.loads(vector["input"]["pending"]["serializedTransaction"])["nonce"] == 0
    lookups = FakeLookups(nonce=9)
    pending = pending_for("ETH", vector["input"]["pending"]["serializedTransaction"])
    tx_data = evm_signer("ETH").sign(pending, key(vector["input"]["wallet"]["privateKey"]), True, lookups)
    assert lookups.calls == []
    assert decode_legacy(tx_data)["nonce"] == 0


def test_bip_utils_derivation_matches_upstream_keys() -> None:
    for chain in ("ETH", "MATIC", "CELO", "KLAY", "XDC", "ONE"):
        for testnet in (False, True):
            mnemonic, private_keys, _ = derivation_keys(chain, testnet)
            coin = 1 if testnet else COIN_TYPES[chain]
            for index, expected in private_keys.items():
                assert derive_key(mnemonic, int(index), coin) == expected, (chain, testnet, index)


# -- every chain, checked independently ---------------------------------------------------------------------------


def erc20_transfer(to: str, amount: int) -> str:
    return (
        "0x" + (keccak(text="transfer(address,uint256)")[:4] + abi_encode(["address", "uint256"], [to, amount])).hex()
    )


def erc721_safe_transfer(sender: str, to: str, token_id: int) -> str:
    selector = keccak(text="safeTransferFrom(address,address,uint256)")[:4]
    return "0x" + (selector + abi_encode(["address", "address", "uint256"], [sender, to, token_id])).hex()


def erc1155_safe_transfer(sender: str, to: str, token_id: int, amount: int) -> str:
    selector = keccak(text="safeTransferFrom(address,address,uint256,uint256,bytes)")[:4]
    args = abi_encode(["address", "address", "uint256", "uint256", "bytes"], [sender, to, token_id, amount, b"\x01"])
    return "0x" + (selector + args).hex()


CASES = ("native", "erc20", "erc721", "erc1155", "deploy")


def build_case(case: str, sender: str, chain_id: int, nonce: int) -> dict[str, Any]:
    base: dict[str, Any] = {"nonce": nonce, "chainId": chain_id, "gasPrice": "20000000000", "from": 0}
    if case == "native":
        return {**base, "to": RECIPIENT, "value": "1000000000000000000", "gas": "21000"}
    if case == "erc20":
        return {**base, "to": TOKEN, "data": erc20_transfer(RECIPIENT, 10**18), "gas": 60000}
    if case == "erc721":
        return {**base, "to": TOKEN, "data": erc721_safe_transfer(sender, RECIPIENT, 42), "gas": 90000}
    if case == "erc1155":
        return {**base, "to": TOKEN, "data": erc1155_safe_transfer(sender, RECIPIENT, 7, 3), "gas": "0x186a0"}
    return {**base, "data": "0x6007600c60003960076000f360043560005500", "gas": 100000, "value": "0x0"}


@pytest.mark.parametrize("testnet", [False, True], ids=["mainnet", "testnet"])
@pytest.mark.parametrize("chain", EVM_CODES)
def test_each_chain_signs_what_it_was_given(chain: str, testnet: bool) -> None:
    derivation_chain = "ETH" if chain == "KCS" else chain
    _, private_keys, addresses = derivation_keys(derivation_chain, testnet)
    signer = evm_signer(chain)
    chain_id = signer.chain_ids[testnet][0]
    for nonce, (case, index) in enumerate(zip(CASES, ("0", "1", "2", "7", "2147483647"), strict=True)):
        sender = to_checksum_address(as_hex_address(addresses[index]))
        tx = build_case(case, sender, chain_id, nonce)
        pending = pending_for(chain, tx, index=int(index))
        tx_data = signer.sign(pending, key(private_keys[index], int(index)), testnet)
        decoded = decode_any(chain, tx_data)
        assert decoded["from"] == sender, (chain, case)
        assert decoded["chainId"] == chain_id
        assert decoded["nonce"] == nonce
        assert decoded["gasPrice"] == 20_000_000_000
        assert decoded["data"] == bytes.fromhex(tx.get("data", "0x")[2:])
        assert decoded["value"] == int(str(tx.get("value", "0")), 0)
        expected_to = tx.get("to")
        assert decoded["to"] == (expected_to.lower() if expected_to else None)
        if chain != "CELO":
            assert decoded["low_s"]


def test_mnemonic_wallet_key_from_top_level_index() -> None:
    mnemonic, _, addresses = derivation_keys("ETH", True)
    private_key = derive_key(mnemonic, 7, 1)
    pending = pending_for("ETH", {**build_case("native", "", 11155111, 3)}, index=7)
    decoded = decode_legacy(evm_signer("ETH").sign(pending, key(private_key, 7), True))
    assert decoded["from"].lower() == addresses["7"]


def test_xdc_accepts_xdc_prefixed_addresses_and_signs_the_0x_form() -> None:
    _, private_keys, addresses = derivation_keys("XDC", False)
    assert addresses["0"].startswith("xdc")
    tx = {"to": "xdc" + RECIPIENT[2:], "from": addresses["0"], "value": "5", "gas": 21000, "gasPrice": 1, "nonce": 1}
    tx_data = evm_signer("XDC").sign(pending_for("XDC", {**tx, "chainId": 50}), key(private_keys["0"]), False)
    decoded = decode_legacy(tx_data)
    assert decoded["to"] == RECIPIENT
    assert decoded["from"].lower() == as_hex_address(addresses["0"])


def test_xdc_can_sign_eip1559_like_upstream_web3() -> None:
    _, private_keys, addresses = derivation_keys("XDC", True)
    tx = {"to": RECIPIENT, "value": "9", "gas": 21000, "nonce": 4, "chainId": 51}
    tx |= {"maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "1000000000"}
    decoded = decode_typed(evm_signer("XDC").sign(pending_for("XDC", tx), key(private_keys["0"]), True))
    assert decoded["type_byte"] == 2
    assert decoded["maxFeePerGas"] == 2_000_000_000
    assert decoded["maxPriorityFeePerGas"] == 1_000_000_000
    assert decoded["chainId"] == 51
    assert decoded["from"].lower() == as_hex_address(addresses["0"])


def test_klay_accepts_caver_legacy_type_name() -> None:
    _, private_keys, addresses = derivation_keys("KLAY", False)
    tx = {"type": "LEGACY", "to": RECIPIENT, "value": "1", "gas": 21000, "gasPrice": "25000000000", "nonce": 0}
    decoded = decode_legacy(
        evm_signer("KLAY").sign(pending_for("KLAY", {**tx, "chainId": 8217}), key(private_keys["0"]), False)
    )
    assert decoded["from"].lower() == addresses["0"]
    assert decoded["chainId"] == 8217


def test_celo_fee_currency_fields_are_signed() -> None:
    _, private_keys, addresses = derivation_keys("CELO", True)
    cusd = "0x874069fa1eb16d44d622f2e0ca25eea172369bc1"
    tx = {
        "chainId": 44787,
        "feeCurrency": cusd,
        "gatewayFeeRecipient": TOKEN,
        "gatewayFee": "0x10",
        "to": RECIPIENT,
        "gasLimit": "0x5208",
        "gasPrice": "0x3b9aca00",
        "value": "0xde0b6b3a7640000",
        "nonce": 2,
    }
    decoded = decode_celo(evm_signer("CELO").sign(pending_for("CELO", tx), key(private_keys["0"]), True))
    assert decoded["from"].lower() == addresses["0"]
    assert decoded["feeCurrency"] == cusd
    assert decoded["gatewayFeeRecipient"] == TOKEN
    assert decoded["gatewayFee"] == 16
    assert decoded["gas"] == 21000
    assert decoded["value"] == 10**18
    assert decoded["chainId"] == 44787


# -- what upstream fills in, through the look-ups -----------------------------------------------------------------

PK = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"
PK_ADDRESS = Account.from_key(PK).address


def test_eth_fills_nonce_gas_price_gas_and_chain_id_from_lookups() -> None:
    lookups = FakeLookups(nonce=12, price=3 * 10**9, gas=23_456, chain=11155111)
    tx = {"from": 0, "to": RECIPIENT, "value": "10", "data": "0xabcd"}
    decoded = decode_legacy(evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), True, lookups))
    assert (decoded["nonce"], decoded["gasPrice"], decoded["gas"], decoded["chainId"]) == (
        12,
        3 * 10**9,
        23_456,
        11155111,
    )
    assert ("nonce", "ETH", PK_ADDRESS, True) in lookups.calls
    estimate = next(call for call in lookups.calls if call[0] == "estimate")
    assert estimate[2] == {
        "from": PK_ADDRESS,
        "to": to_checksum_address(RECIPIENT),
        "value": "0xa",
        "data": "0xabcd",
        "gasPrice": hex(3 * 10**9),
    }


def test_zero_gas_price_is_fetched_like_upstream() -> None:
    for zero in ("0", 0, "0x0"):
        lookups = FakeLookups(price=4 * 10**9, testnet=False)
        tx = {"to": RECIPIENT, "value": "1", "gas": 21000, "gasPrice": zero, "nonce": 1, "chainId": 1666600000}
        decoded = decode_legacy(evm_signer("ONE").sign(pending_for("ONE", tx), key(PK), False, lookups))
        assert decoded["gasPrice"] == 4 * 10**9
        assert lookups.kinds() == ["gas_price"]
    # BSC's price is the one upstream's SDK hard-codes (10 gwei): filled in without asking anyone.
    lookups = FakeLookups(price=4 * 10**9, testnet=False)
    tx = {"to": RECIPIENT, "value": "1", "gas": 21000, "gasPrice": "0", "nonce": 1, "chainId": 56}
    decoded = decode_legacy(evm_signer("BSC").sign(pending_for("BSC", tx), key(PK), False, lookups))
    assert decoded["gasPrice"] == 10 * 10**9
    assert lookups.calls == []


@pytest.mark.parametrize("chain", ["MATIC", "KLAY", "ONE", "KCS"])
def test_call_style_estimate_sends_from_to_and_data_only(chain: str) -> None:
    lookups = FakeLookups(gas=30_000, testnet=False)
    chain_id = EVM_FACTS[chain].ids(False)[0]
    tx = {"to": TOKEN, "value": "1", "data": "0x01", "gasPrice": 1, "nonce": 1, "chainId": chain_id}
    decode_legacy(evm_signer(chain).sign(pending_for(chain, tx), key(PK), False, lookups))
    assert lookups.calls == [
        ("estimate", chain, {"from": PK_ADDRESS, "to": to_checksum_address(TOKEN), "data": "0x01"}, False)
    ]


def test_xdc_reestimates_gas_even_when_given() -> None:
    lookups = FakeLookups(gas=31_000, testnet=False)
    tx = {"to": RECIPIENT, "value": "1", "gas": 99_000, "gasPrice": 1, "nonce": 1, "chainId": 50}
    assert decode_legacy(evm_signer("XDC").sign(pending_for("XDC", tx), key(PK), False, lookups))["gas"] == 31_000
    assert decode_legacy(evm_signer("XDC").sign(pending_for("XDC", tx), key(PK), False))["gas"] == 99_000


def test_eth_offchain_withdrawal_reestimates_gas() -> None:
    lookups = FakeLookups(gas=25_000, testnet=False)
    tx = {"to": RECIPIENT, "value": "1", "gas": 99_000, "gasPrice": 1, "nonce": 1, "chainId": 1}
    plain = evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), False, lookups)
    assert decode_legacy(plain)["gas"] == 99_000 and lookups.calls == []
    withdrawal = evm_signer("ETH").sign(pending_for("ETH", tx, withdrawal_id="w-1"), key(PK), False, lookups)
    assert decode_legacy(withdrawal)["gas"] == 25_000


def test_celo_adds_margin_to_estimate_and_floors_cusd_price() -> None:
    cusd = "0x765de816845861e75a25fca122bb6898b8b1282a"
    lookups = FakeLookups(gas=40_000, fee_currency_price=0x1DCD6500, nonce=3, testnet=False)
    tx = {"chainId": 42220, "feeCurrency": cusd, "to": RECIPIENT, "value": "0x1"}
    decoded = decode_celo(evm_signer("CELO").sign(pending_for("CELO", tx), key(PK), False, lookups))
    assert decoded["gas"] == 140_000
    assert decoded["gasPrice"] == 0x3B9ACA00
    assert decoded["nonce"] == 3
    assert ("fee_currency_price", "CELO", to_checksum_address(cusd), False) in lookups.calls


def test_celo_plain_gas_price_is_not_floored() -> None:
    lookups = FakeLookups(price=100, gas=21_000, testnet=False)
    tx = {"chainId": 42220, "to": RECIPIENT, "value": "0x1", "nonce": 0}
    decoded = decode_celo(evm_signer("CELO").sign(pending_for("CELO", tx), key(PK), False, lookups))
    assert decoded["gasPrice"] == 100
    assert decoded["gas"] == 121_000


def test_missing_chain_id_is_asked_and_checked() -> None:
    tx = {"to": RECIPIENT, "value": "1", "gas": 21000, "gasPrice": 1, "nonce": 1}
    decoded = decode_legacy(evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), True, FakeLookups(chain=17000)))
    assert decoded["chainId"] == 17000
    with pytest.raises(SigningError, match="node reports chainId 1,"):
        evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), True, FakeLookups(chain=1))
    offline = decode_legacy(evm_signer("ONE").sign(pending_for("ONE", tx), key(PK), True))
    assert offline["chainId"] == 1666700000


def test_lookup_failures_do_not_sign() -> None:
    class Broken(FakeLookups):
        def transaction_count(self, chain: str, address: str, testnet: bool) -> int:
            raise ConnectionError("http://secret-url/with-key")

    class ApiDown(FakeLookups):
        def gas_price(self, chain: str, testnet: bool) -> int:
            raise TatumApiError("fee estimate: HTTP 503 (gave up after 4 attempts)")

    class Nonsense(FakeLookups):
        def estimate_gas(self, chain: str, tx: Mapping[str, Any], testnet: bool) -> int:
            return -5

    tx = {"to": RECIPIENT, "value": "1", "chainId": 1}
    with pytest.raises(SigningError, match=r"could not look up the ETH nonce \(ConnectionError\)") as info:
        evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), False, Broken(testnet=False))
    assert "secret-url" not in str(info.value)
    with pytest.raises(TatumApiError):
        evm_signer("ETH").sign(pending_for("ETH", {**tx, "nonce": 1}), key(PK), False, ApiDown(testnet=False))
    with pytest.raises(SigningError, match="unusable ETH gas limit"):
        evm_signer("ETH").sign(
            pending_for("ETH", {**tx, "nonce": 1, "gasPrice": 1}), key(PK), False, Nonsense(testnet=False)
        )


def test_missing_fields_without_lookups_fail() -> None:
    with pytest.raises(SigningError, match="nonce is missing"):
        evm_signer("ETH").sign(pending_for("ETH", {"to": RECIPIENT, "gas": 21000, "gasPrice": 1}), key(PK), False)


def test_custom_signer_from_data() -> None:
    signer = EvmSigner(EvmFacts("ETH", "ethereum", 60, chain_ids={False: 1, True: [11155111]}, quirks=EvmQuirks()))
    assert signer.chain_ids[True] == (11155111,)
    assert "private" not in repr(signer)
    assert isinstance(evm_signer("celo"), CeloSigner)
    with pytest.raises(ValueError):
        EvmSigner(EvmFacts("ETH", "ethereum", 60, chain_ids={False: 1}))


def test_gateway_of_the_other_network_is_refused() -> None:
    tx = {"to": RECIPIENT, "value": "1", "gas": 21000, "gasPrice": 1, "nonce": 1, "chainId": 1}
    with pytest.raises(SigningError, match="another network"):
        evm_signer("ETH").sign(pending_for("ETH", tx), key(PK), False, FakeLookups(testnet=True))
