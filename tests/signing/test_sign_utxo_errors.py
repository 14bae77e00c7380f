"""Bad input to the UTXO signers: a SigningError with a one-line message that names no secret, and nothing signed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kms.api import PendingTransaction
from kms.chains.utxo import BITCOIN, DOGECOIN, LITECOIN
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.bch import BchSigner
from kms.signing.utxo import UtxoSigner
from tests.conftest import load_vectors
from tests.signing.test_sign_utxo import keys_of, wif_handle

BTC = load_vectors("signing-btc.json")[1]  # testnet, two P2WPKH inputs, two keys
LTC = load_vectors("signing-ltc.json")[0]  # mainnet, one P2PKH input
BCH = load_vectors("signing-bch.json")[1]  # testnet, two inputs, two keys
ALL_WIFS = [k["wif"] for v in (BTC, LTC, BCH) for k in v["input"]["keys"]]


def btc_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BTC["input"]["pending"]["serializedTransaction"])
    return data


def sign_btc(data: dict[str, Any] | str, keys: list[KeyHandle] | None = None, chain: str = "BTC") -> object:
    text = data if isinstance(data, str) else json.dumps(data)
    pending = PendingTransaction(id="p", chain=chain, serialized_transaction=text)
    return UtxoSigner(BITCOIN).sign(pending, keys if keys is not None else keys_of(BTC), testnet=True)


def sign_bch(serialized: str, keys: list[KeyHandle] | None = None, testnet: bool = True) -> object:
    pending = PendingTransaction(id="p", chain="BCH", serialized_transaction=serialized)
    if keys is None:  # the vector's testnet keys, read as keys of the network asked for
        keys = [wif_handle("BCH", k["wif"], testnet, k.get("index")) for k in BCH["input"]["keys"]]
    return BchSigner().sign(pending, keys, testnet=testnet)


def expect_refusal(action: Callable[[], object], match: str) -> None:
    with pytest.raises(SigningError, match=match) as caught:
        action()
    message = str(caught.value)
    assert "\n" not in message
    assert not any(wif in message for wif in ALL_WIFS)


def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = btc_json()
    del data["hash"]  # the hash would (rightly) catch every edit first
    change(data)
    return data


def test_input_owned_by_no_key() -> None:
    expect_refusal(lambda: sign_btc(btc_json(), keys_of(BTC)[:1]), "input 1 is not owned by any of the given keys")


def test_missing_spent_output_amount() -> None:
    expect_refusal(lambda: sign_btc(mutated(lambda d: d["inputs"][0]["output"].pop("satoshis"))), "amount or script")


def test_missing_spent_output_script() -> None:
    expect_refusal(lambda: sign_btc(mutated(lambda d: d["inputs"][1]["output"].pop("script"))), "amount or script")


def test_missing_spent_output() -> None:
    expect_refusal(lambda: sign_btc(mutated(lambda d: d["inputs"][0].pop("output"))), "input 0 lacks")


@pytest.mark.parametrize(
    "script",
    [
        "5120" + "11" * 32,  # P2TR
        "0020" + "11" * 32,  # P2WSH
        "21" + "02" + "11" * 32 + "ac",  # P2PK
        "6a0401020304",  # OP_RETURN
    ],
)
def test_unknown_spent_script_type(script: str) -> None:
    expect_refusal(
        lambda: sign_btc(mutated(lambda d: d["inputs"][0]["output"].update(script=script))),
        "unsupported script type",
    )


def test_doge_refuses_segwit_spent_scripts() -> None:
    data = btc_json()
    del data["hash"]
    pending = PendingTransaction(id="p", chain="DOGE", serialized_transaction=json.dumps(data))
    expect_refusal(lambda: UtxoSigner(DOGECOIN).sign(pending, [], testnet=True), "unsupported script type")


def test_outputs_exceeding_inputs() -> None:
    expect_refusal(lambda: sign_btc(mutated(lambda d: d["outputs"][0].update(satoshis=150_000))), "exceed inputs")


def test_wif_of_the_wrong_network() -> None:
    ltc_mainnet = LTC["input"]["keys"][0]["wif"]  # a Litecoin mainnet WIF
    expect_refusal(
        lambda: sign_btc(btc_json(), [wif_handle("BTC", ltc_mainnet, True)]), "not a WIF for Bitcoin testnet"
    )
    pending = PendingTransaction(
        id="p", chain="LTC", serialized_transaction=LTC["input"]["pending"]["serializedTransaction"]
    )
    expect_refusal(
        lambda: UtxoSigner(LITECOIN).sign(pending, [wif_handle("LTC", ltc_mainnet, True)], testnet=True),
        "Litecoin testnet",
    )
    btc_mainnet = load_vectors("signing-btc.json")[0]["input"]["keys"][0]["wif"]
    expect_refusal(
        lambda: UtxoSigner(LITECOIN).sign(pending, [wif_handle("LTC", btc_mainnet, False)], testnet=False),
        "Litecoin mainnet",
    )


def test_not_a_wif() -> None:
    good = BTC["input"]["keys"][0]["wif"]
    broken = good[:-1] + ("a" if good[-1] != "a" else "b")
    expect_refusal(lambda: sign_btc(btc_json(), [wif_handle("BTC", broken, True)]), "bad checksum")
    expect_refusal(lambda: sign_btc(btc_json(), [wif_handle("BTC", "0x" + "11" * 32, True)]), "not a WIF")
    expect_refusal(lambda: sign_btc(btc_json(), []), "no signing keys")


@pytest.mark.parametrize("text", ["{", "[]", "null", '{"inputs": NaN}', "x" * 10, "", "{" * 100_000])
def test_malformed_json(text: str) -> None:
    expect_refusal(lambda: sign_btc(text), "serializedTransaction|transaction")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(inputs=[]), "no inputs"),
        (lambda d: d.update(outputs=[]), "no outputs"),
        (lambda d: d["inputs"][0].update(prevTxId="00" * 31), "prevTxId"),
        (lambda d: d["inputs"][0].update(outputIndex=-1), "outputIndex is out of range"),
        (lambda d: d["inputs"][0].update(outputIndex="0"), "outputIndex must be an integer"),
        (lambda d: d["inputs"][0].update(sequenceNumber=2**32), "sequenceNumber"),
        (lambda d: d["inputs"][0].update(script="483045"), "empty script"),
        (lambda d: d["inputs"][0].pop("script"), "empty script"),
        (lambda d: d["inputs"][0]["output"].update(satoshis=1.5), "spent amount must be an integer"),
        (lambda d: d["inputs"][0]["output"].update(satoshis=True), "spent amount must be an integer"),
        (lambda d: d["outputs"][0].update(satoshis=-1), "satoshis is out of range"),
        (lambda d: d["outputs"][0].update(script="4c05aa"), "does not parse"),
        (lambda d: d["outputs"][0].update(script="zz"), "not valid hex"),
        (lambda d: d.update(version="2"), "version"),
        (lambda d: d.update(nLockTime=2**31), "nLockTime"),
        (lambda d: d.update(changeIndex=7), "changeIndex"),
        (lambda d: d.update(changeScript="OP_DUP"), "unexpected script"),
        (lambda d: d.pop("changeScript"), "changeScript is missing"),
    ],
)
def test_malformed_transaction_fields(change: Callable[[dict[str, Any]], None], match: str) -> None:
    expect_refusal(lambda: sign_btc(mutated(change)), match)


def test_hash_that_does_not_match() -> None:
    data = btc_json()
    data["outputs"][0]["satoshis"] -= 1
    expect_refusal(lambda: sign_btc(data), "hash does not match")


def test_wrong_chain() -> None:
    expect_refusal(lambda: sign_btc(btc_json(), chain="LTC"), "not BTC")


def test_offchain_without_responses_or_with_wrong_key_count() -> None:
    text = BTC["input"]["pending"]["serializedTransaction"]
    pending = PendingTransaction(id="p", chain="BTC", serialized_transaction=text, withdrawal_id="w")
    expect_refusal(lambda: UtxoSigner(BITCOIN).sign(pending, keys_of(BTC), True), "no withdrawalResponses")
    responses = [{"vIn": "ab" * 32, "address": {"derivationKey": 1}}, {"vIn": "-1"}]
    pending = PendingTransaction(
        id="p", chain="BTC", serialized_transaction=text, withdrawal_id="w", raw={"withdrawalResponses": responses}
    )
    expect_refusal(lambda: UtxoSigner(BITCOIN).sign(pending, keys_of(BTC), True), "needs 1 keys")


# --- BCH -----------------------------------------------------------------------------------------------------------

BCH_TX, BCH_AMOUNTS = BCH["input"]["pending"]["serializedTransaction"].split(":")


def test_bch_amount_count_mismatch() -> None:
    expect_refusal(lambda: sign_bch(f"{BCH_TX}:[120000]"), "2 inputs but 1 spent amounts")
    expect_refusal(lambda: sign_bch(f"{BCH_TX}:[120000,80000,1]"), "2 inputs but 3 spent amounts")


def test_bch_key_count_mismatch() -> None:
    expect_refusal(lambda: sign_bch(f"{BCH_TX}:{BCH_AMOUNTS}", keys_of(BCH)[:1]), "key i")
    expect_refusal(lambda: sign_bch(f"{BCH_TX}:{BCH_AMOUNTS}", keys_of(BCH) * 2), "key i")


@pytest.mark.parametrize(
    ("serialized", "match"),
    [
        (BCH_TX, "must be '<transaction hex>:<amounts JSON>'"),
        (f"{BCH_TX}:[1]:[2]", "must be"),
        (f"{BCH_TX}:{{", "not valid JSON"),
        (f"{BCH_TX}:{{}}", "must be a JSON list"),
        (f'{BCH_TX}:[120000,"80000"]', "must be an integer"),
        (f"{BCH_TX}:[120000,-5]", "out of range"),
        (f"{BCH_TX[:-2]}:{BCH_AMOUNTS}", "does not parse|not valid hex"),
        (f"{BCH_TX}00:{BCH_AMOUNTS}", "does not parse|plain legacy"),
        (f"{BCH_TX}:[1000,1000]", "exceed inputs"),
        (f"{BCH_TX}:[120000000,80000]", "absurd"),
        (f"{BCH_TX[:82]}0151{BCH_TX[84:]}:{BCH_AMOUNTS}", "empty script"),
    ],
)
def test_bch_malformed(serialized: str, match: str) -> None:
    expect_refusal(lambda: sign_bch(serialized), match)


def test_bch_wif_of_the_wrong_network() -> None:
    expect_refusal(lambda: sign_bch(f"{BCH_TX}:{BCH_AMOUNTS}", testnet=False), "Bitcoin Cash mainnet")


def test_bch_lock_time_beyond_2038_is_refused() -> None:
    late = BCH_TX[:-8] + (2**31).to_bytes(4, "little").hex()
    expect_refusal(lambda: sign_bch(f"{late}:{BCH_AMOUNTS}"), "nLockTime")


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return node


ODD_VALUES = [None, "", "zz", "00", -1, 2**64, 1.5, True, [], {}, "OP_DUP", 0, 1, "-1", [1], {"a": 1}, "0" * 64]


def test_random_field_damage_only_ever_raises_signing_error() -> None:
    """Seeded damage to every part of a pending transaction: the signers answer or raise SigningError, nothing else."""
    rng = random.Random(20240601)
    keys = keys_of(BTC)
    for _ in range(400):
        data = btc_json()
        if rng.random() < 0.5:
            del data["hash"]
        for _ in range(rng.randrange(1, 3)):
            data = _replace(data, rng.choice(list(_paths(data))), json.loads(json.dumps(rng.choice(ODD_VALUES))))
        for network in (BITCOIN, DOGECOIN):
            pending = PendingTransaction(id="p", chain=network.code, serialized_transaction=json.dumps(data))
            try:
                UtxoSigner(network).sign(pending, keys, testnet=True)
            except SigningError:
                pass
    for _ in range(400):
        damaged = list(BCH_TX)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.choice("0123456789abcdefx")
        text = "".join(damaged)[: rng.randrange(40, len(BCH_TX) + 1)]
        amounts = rng.choice([BCH_AMOUNTS, "[1]", "[1e3,2]", "[]", '["1",2]', "{}", "[null,1]"])
        try:
            sign_bch(f"{text}:{amounts}")
        except SigningError:
            pass
