"""Keys as handles: the stored secret reaches the chain as bytes, each chain decodes it once into raw key bytes, and
the daemon wipes every handle when signing ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator

from kms.api import PendingTransaction
from kms.chains import get_chain
from kms.daemon.keys import resolve_keys
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.store import KdfParams, WalletStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with WalletStore.open(
        tmp_path / "w.db", SecretBuffer(b"pw"), create=True, kdf=KdfParams.insecure_for_tests(), allow_weak_kdf=True
    ) as s:
        yield s


def test_secret_field_reads_one_field_as_bytes(store: WalletStore) -> None:
    wallet = get_chain("ETH").generate_wallet(True)
    sid = store.add("ETH", True, wallet)
    quoted = store.add("XRP", True, {"secret": 'a"b\\c', "address": "rX"})
    with store.get(sid) as stored:
        assert stored.secret_field("mnemonic").bytes() == wallet["mnemonic"].encode()
        assert stored.secret_field("xpub").bytes() == wallet["xpub"].encode()
        assert not stored.secret_field("privateKey")
    with store.get(quoted) as stored:
        assert stored.secret_field("secret").bytes() == b'a"b\\c'  # JSON escapes decoded
        assert stored.secret_field("address").bytes() == b"rX"


@pytest.mark.parametrize("testnet", [False, True])
def test_evm_raw_key_is_the_bip44_scalar(testnet: bool) -> None:
    eth = get_chain("ETH")
    mnemonic = eth.generate_wallet(testnet)["mnemonic"]
    seed = Bip39SeedGenerator(mnemonic).Generate()
    path = f"m/44'/{1 if testnet else 60}'/0'/0/5"
    expected = Bip32Slip10Secp256k1.FromSeed(seed).DerivePath(path).PrivateKey().Raw().ToBytes()
    with SecretBuffer(mnemonic) as secret, eth.raw_signing_key(secret, "mnemonic", 5, testnet) as raw:
        assert raw.bytes() == expected
    with SecretBuffer("0x" + expected.hex()) as text, eth.raw_signing_key(text, "privateKey", None, testnet) as raw:
        assert raw.bytes() == expected
    with SecretBuffer(mnemonic) as secret, pytest.raises(SigningError, match="derivation index"):
        eth.raw_signing_key(secret, "mnemonic", None, testnet)


def test_utxo_raw_key_carries_the_compressed_flag() -> None:
    btc = get_chain("BTC")
    wallet = btc.generate_private_key(True)
    with SecretBuffer(wallet["privateKey"]) as text, btc.raw_signing_key(text, "privateKey", None, True) as raw:
        assert len(raw) == 33 and raw.raw()[32] == 1
        scalar = raw.bytes()[:32]
    assert btc.encode_private_key(scalar, True) == wallet["privateKey"]
    with SecretBuffer(wallet["privateKey"]) as text, pytest.raises(SigningError, match="Bitcoin mainnet"):
        btc.raw_signing_key(text, "privateKey", None, False)


def test_chains_without_a_signer_decode_no_keys() -> None:
    with SecretBuffer("11" * 32) as secret, pytest.raises(SigningError, match="cannot decode BNB keys"):
        get_chain("BNB").raw_signing_key(secret, "privateKey", None, True)


def test_resolved_keys_are_handles_and_the_same_key_signs_once(store: WalletStore) -> None:
    eth = get_chain("ETH")
    key_text = eth.generate_private_key(True)["privateKey"]
    first = store.add("ETH", True, {"privateKey": key_text})
    second = store.add("ETH", True, {"privateKey": key_text})
    pending = PendingTransaction(id="p", chain="ETH", serialized_transaction="{}", hashes=(first, second))
    keys = resolve_keys(pending, eth, store, True)
    assert [type(k) for k in keys] == [KeyHandle] and keys[0].signature_id == first
    assert key_text[2:] not in repr(keys)
    with keys[0].raw() as raw:
        assert bytes(raw).hex() == key_text[2:]
    keys[0].wipe()
    with pytest.raises(ValueError, match="wiped"), keys[0].raw():
        pass


class CapturingSigner:
    def __init__(self) -> None:
        self.keys: list[KeyHandle] = []

    def sign(self, pending: Any, keys: Any, testnet: bool, gateway: Any) -> Any:
        self.keys.extend(keys)
        raise SigningError("refused after looking at the key")


def test_the_daemon_wipes_the_handles_after_signing(store: WalletStore, tmp_path: Path) -> None:
    from kms.daemon.loop import Daemon, DaemonConfig
    from kms.daemon.model import CycleReport
    from tests.daemon.test_daemon_loop import ChainView

    eth = get_chain("ETH")
    sid = store.add("ETH", True, {"privateKey": eth.generate_private_key(True)["privateKey"]})
    signer = CapturingSigner()
    daemon = Daemon(
        DaemonConfig(chains=("ETH",), testnet=True), store, client=None, registry=lambda _: ChainView(eth, signer)
    )  # type: ignore[arg-type]
    try:
        pending = PendingTransaction(id="p", chain="ETH", serialized_transaction="{}", hashes=(sid,))
        daemon.process(pending, CycleReport())
    finally:
        daemon.close()
    assert len(signer.keys) == 1
    with pytest.raises(ValueError, match="wiped"), signer.keys[0].raw():
        pass
