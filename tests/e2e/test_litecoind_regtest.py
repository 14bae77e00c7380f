"""End to end on a real Litecoin Core node (Debian's litecoind, -regtest, RPC on 127.0.0.1 only): coins mined to
KMS-derived keys are spent by transactions in upstream's pending shape (bitcore JSON), signed by UtxoSigner; the node
accepts them into its mempool and mines them.

Regtest facts used: addresses and WIFs take the testnet versions (P2PKH 0x6f, WIF 0xef; bech32 hrp ``rltc``, not
needed here as scripts are built directly), the block reward is 50 LTC, and a coinbase output can be spent once it has
100 confirmations, so 101+ blocks are mined on top of the funding blocks.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from bitcointx.base58 import encode as base58_encode
from bitcointx.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, Hash, Hash160, b2lx, lx
from bitcointx.core.script import OP_0, OP_CHECKSIG, OP_DUP, OP_EQUALVERIFY, OP_HASH160, CScript

from kms.api import PendingTransaction
from kms.chains.utxo import LITECOIN
from kms.keys import KeyHandle
from kms.signing.utxo import UtxoSigner, bitcore_script_string
from tests.signing.test_sign_utxo import wif_handle

LITECOIND = shutil.which("litecoind")
pytestmark = pytest.mark.skipif(
    LITECOIND is None, reason="litecoind not installed (apt-get install litecoind); the end-to-end node test needs it"
)

MNEMONIC = "abandon " * 11 + "about"  # the BIP39 test mnemonic: these keys guard nothing
FEE = 100_000  # 0.001 LTC: far above the relay minimum, far below the node's max fee rate


class Rpc:
    def __init__(self, port: int, cookie: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.cookie = cookie
        self.client = httpx.Client(timeout=30)

    def __call__(self, method: str, *params: Any) -> Any:
        user, password = self.cookie.read_text().strip().split(":", 1)
        body = {"jsonrpc": "1.0", "id": method, "method": method, "params": list(params)}
        answer = self.client.post(self.url, json=body, auth=(user, password)).json()
        if answer.get("error"):
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rpc]:
    datadir = tmp_path_factory.mktemp("litecoind")
    port = _free_port()
    args = [
        str(LITECOIND),
        "-regtest",
        f"-datadir={datadir}",
        f"-rpcport={port}",
        "-rpcbind=127.0.0.1",
        "-rpcallowip=127.0.0.1",
        "-listen=0",
        "-disablewallet",
        "-printtoconsole=0",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rpc = Rpc(port, datadir / "regtest" / ".cookie")
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"litecoind exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                rpc("getblockchaininfo")
                break
            except (httpx.TransportError, FileNotFoundError, RuntimeError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield rpc
    finally:
        try:
            rpc("stop")
            process.wait(timeout=30)
        except Exception:
            process.kill()
            process.wait(timeout=10)


def derived_wif(index: int) -> tuple[str, bytes]:
    """A KMS mnemonic wallet's key at ``index`` on LTC testnet's path m/44'/1'/0'/0/index, as WIF + public key."""
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    node = Bip44.FromSeed(seed, Bip44Coins.LITECOIN_TESTNET).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)
    key = node.AddressIndex(index)
    payload = b"\xef" + key.PrivateKey().Raw().ToBytes() + b"\x01"
    return base58_encode(payload + Hash(payload)[:4]), key.PublicKey().RawCompressed().ToBytes()


def p2pkh(pubkey: bytes) -> CScript:
    return CScript([OP_DUP, OP_HASH160, Hash160(pubkey), OP_EQUALVERIFY, OP_CHECKSIG])


def regtest_address(pubkey: bytes) -> str:
    payload = b"\x6f" + Hash160(pubkey)
    return base58_encode(payload + Hash(payload)[:4])


def bitcore_json(spends: list[tuple[str, int, int, CScript]], outputs: list[tuple[int, CScript]]) -> str:
    """The pending transaction as upstream's SDK stores it: ``JSON.stringify(bitcore Transaction)``, the change
    (last output) recorded the way ``tx.change()`` + ``tx.fee()`` record it."""
    tx = CMutableTransaction(
        vin=[CMutableTxIn(COutPoint(lx(txid), vout)) for txid, vout, _, _ in spends],
        vout=[CMutableTxOut(amount, script) for amount, script in outputs],
        nVersion=2,
    )
    inputs = [
        {
            "prevTxId": txid,
            "outputIndex": vout,
            "sequenceNumber": 0xFFFFFFFF,
            "script": "",
            "scriptString": "",
            "output": {"satoshis": amount, "script": bytes(script).hex()},
        }
        for txid, vout, amount, script in spends
    ]
    body = {
        "hash": b2lx(tx.GetTxid()),
        "version": 2,
        "inputs": inputs,
        "outputs": [{"satoshis": amount, "script": bytes(script).hex()} for amount, script in outputs],
        "nLockTime": 0,
        "changeScript": bitcore_script_string(outputs[-1][1]),
        "changeIndex": len(outputs) - 1,
        "fee": sum(s[2] for s in spends) - sum(o[0] for o in outputs),
    }
    return json.dumps(body)


def coinbase_of(rpc: Rpc, height: int) -> tuple[str, int]:
    block = rpc("getblock", rpc("getblockhash", height), 2)
    coinbase = block["tx"][0]
    return coinbase["txid"], round(coinbase["vout"][0]["value"] * 100_000_000)


def sign_accept_mine(rpc: Rpc, serialized: str, keys: list[KeyHandle]) -> str:
    pending = PendingTransaction(id="regtest", chain="LTC", serialized_transaction=serialized)
    tx_data = UtxoSigner(LITECOIN).sign(pending, keys, testnet=True).payload
    verdict = rpc("testmempoolaccept", [tx_data])[0]
    assert verdict["allowed"], verdict
    txid = rpc("sendrawtransaction", tx_data)
    assert txid == verdict["txid"]
    block_hash = rpc("generatetoaddress", 1, regtest_address(derived_wif(99)[1]))[0]
    assert txid in rpc("getblock", block_hash, 1)["tx"]
    return str(txid)


def test_signed_transactions_are_accepted_and_mined(node: Rpc) -> None:
    keys = [derived_wif(i) for i in range(5)]
    for _, pubkey in keys[:3]:
        node("generatetoaddress", 1, regtest_address(pubkey))
    node("generatetoaddress", 101, regtest_address(derived_wif(99)[1]))

    # One P2PKH input (key 0's coinbase): pay key 3 as P2WPKH and key 4 as P2SH-P2WPKH, change back to key 0.
    txid0, reward = coinbase_of(node, 1)
    witness_3 = CScript([OP_0, Hash160(keys[3][1])])
    nested_4 = CScript([OP_0, Hash160(keys[4][1])]).to_p2sh_scriptPubKey()
    outputs = [(1_000_000_000, witness_3), (500_000_000, nested_4), (reward - 1_500_000_000 - FEE, p2pkh(keys[0][1]))]
    first = bitcore_json([(txid0, 0, reward, p2pkh(keys[0][1]))], outputs)
    first_txid = sign_accept_mine(node, first, [wif_handle("LTC", keys[0][0], True, 0)])

    # Five inputs owned by five different derived keys, three script types, one pending transaction.
    txid1, reward1 = coinbase_of(node, 2)
    txid2, reward2 = coinbase_of(node, 3)
    spends = [
        (txid1, 0, reward1, p2pkh(keys[1][1])),
        (first_txid, 0, outputs[0][0], witness_3),
        (txid2, 0, reward2, p2pkh(keys[2][1])),
        (first_txid, 1, outputs[1][0], nested_4),
        (first_txid, 2, outputs[2][0], p2pkh(keys[0][1])),
    ]
    total = sum(s[2] for s in spends)
    second = bitcore_json(spends, [(total // 2, p2pkh(keys[2][1])), (total - total // 2 - FEE, witness_3)])
    signing_keys = [wif_handle("LTC", wif, True, index) for index, (wif, _) in enumerate(keys)]
    second_txid = sign_accept_mine(node, second, list(reversed(signing_keys)))
    assert node("gettxout", second_txid, 1)["confirmations"] == 1
