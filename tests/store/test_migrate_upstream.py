"""Reading upstream tatum-kms's wallet.dat and importing it into the kms store, field for field."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kms.errors import NotAStoreError, WrongPasswordError
from kms.hygiene import SecretBuffer
from kms.store import ImportConflictError, KdfParams, WalletStore, is_upstream_file, read_upstream
from tests.conftest import FIXTURES

WEAK = KdfParams.insecure_for_tests()


def fixture_password() -> SecretBuffer:
    return SecretBuffer((FIXTURES / "upstream-wallet.password").read_bytes())


def expected() -> dict[str, dict[str, Any]]:
    return json.loads((FIXTURES / "upstream-wallet.expected.json").read_text())


def write_upstream(path: Path, wallets: dict[str, Any], password: bytes) -> None:
    """What CryptoJS.AES.encrypt(JSON.stringify(wallets), password).toString() writes (independent re-derivation)."""
    salt = os.urandom(8)
    material, block = b"", b""
    while len(material) < 48:
        block = hashlib.md5(block + password + salt).digest()  # noqa: S324 - reproducing upstream's format
        material += block
    padder = padding.PKCS7(128).padder()
    plaintext = padder.update(json.dumps(wallets, separators=(",", ":")).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(material[:32]), modes.CBC(material[32:48])).encryptor()
    blob = b"Salted__" + salt + encryptor.update(plaintext) + encryptor.finalize()
    path.write_text(base64.b64encode(blob).decode())


def test_fixture_is_recognised() -> None:
    assert is_upstream_file(FIXTURES / "upstream-wallet.dat")
    assert WalletStore.probe(FIXTURES / "upstream-wallet.dat") == "upstream"
    assert not is_upstream_file(FIXTURES / "upstream-wallet.expected.json")
    assert not is_upstream_file(FIXTURES / "no-such-file.dat")


def test_fixture_decrypts_to_the_expected_wallets_in_order() -> None:
    wallets = read_upstream(FIXTURES / "upstream-wallet.dat", fixture_password())
    assert wallets == expected()
    assert list(wallets) == list(expected())


def test_wrong_passwords_never_yield_garbage() -> None:
    # About 1 wrong password in 256 passes the PKCS#7 check; the plaintext then fails to decode. "guess 189", "guess
    # 315", "guess 385" and "guess 760" are such passwords for the fixture, so that path is always exercised.
    for attempt in range(800):
        with pytest.raises(WrongPasswordError) as caught:
            read_upstream(FIXTURES / "upstream-wallet.dat", SecretBuffer(f"guess {attempt}".encode()))
        assert str(caught.value) == "wrong password or damaged store"
        if attempt in (189, 315, 385, 760):
            assert "padding" not in str(caught.value.__context__)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world", base64.b64encode(b"NotSalted" + os.urandom(40)), base64.b64encode(b"Salted__" + bytes(13))],
    ids=["empty", "text", "unsalted", "truncated"],
)
def test_non_upstream_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "wallet.dat"
    path.write_bytes(content)
    with pytest.raises(NotAStoreError):
        read_upstream(path, fixture_password())


def test_import_then_export_gives_exactly_the_expected_json(tmp_path: Path) -> None:
    wallets = read_upstream(FIXTURES / "upstream-wallet.dat", fixture_password())
    path = tmp_path / "wallet.dat"
    with WalletStore.open(path, SecretBuffer(b"new"), create=True, kdf=WEAK, allow_weak_kdf=True) as store:
        assert store.import_records(wallets) == len(expected())
    with WalletStore.open(path, SecretBuffer(b"new"), allow_weak_kdf=True) as store:
        exported = store.export()
        assert json.dumps(exported, indent=2) == json.dumps(expected(), indent=2)  # values, key order and all
        assert store.import_records(wallets) == 0  # identical re-import: a no-op
        assert store.export() == exported


def test_every_upstream_record_shape_round_trips(tmp_path: Path) -> None:
    wallets = {
        "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d": {"mnemonic": "m " * 11 + "m", "chain": "EGLD", "testnet": False},
        "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed": {
            "privateKey": "p" * 88,
            "address": "a" * 44,
            "chain": "SOL",
            "testnet": True,
        },
        "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b": {
            "secret": "s" * 56,
            "address": "G" * 56,
            "chain": "XLM",
            "testnet": False,
        },
        "0f8fad5b-d9cb-469f-a165-70867728950e": {"mnemonic": "w", "xpub": "x", "chain": "ADA", "testnet": True},
        "7c9e6679-7425-40de-944b-e07fc1f90ae7": {"privateKey": "0x" + "1" * 64, "chain": "BSC", "testnet": False},
    }
    source = tmp_path / "old.dat"
    write_upstream(source, wallets, "pässwörd".encode())  # CryptoJS takes the password as UTF-8
    assert read_upstream(source, SecretBuffer("pässwörd".encode())) == wallets
    with WalletStore.open(
        tmp_path / "new.dat", SecretBuffer(b"x"), create=True, kdf=WEAK, allow_weak_kdf=True
    ) as store:
        store.import_records(read_upstream(source, SecretBuffer("pässwörd".encode())))
        exported = store.export()
        assert json.dumps(exported) == json.dumps(wallets)
        assert {m.signature_id: m.kind for m in store.list_meta()} == {
            "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d": "mnemonic",
            "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed": "privateKey",
            "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b": "secret",
            "0f8fad5b-d9cb-469f-a165-70867728950e": "mnemonic",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7": "privateKey",
        }


def test_conflicting_reimport_fails_and_imports_nothing(tmp_path: Path) -> None:
    wallets = expected()
    path = tmp_path / "wallet.dat"
    with WalletStore.open(path, SecretBuffer(b"new"), create=True, kdf=WEAK, allow_weak_kdf=True) as store:
        first = dict(list(wallets.items())[:3])
        store.import_records(first)
        changed = {sid: dict(record) for sid, record in wallets.items()}
        victim = next(iter(first))
        changed[victim]["xpub"] = "xpub-something-else"
        with pytest.raises(ImportConflictError) as caught:
            store.import_records(changed)
        assert victim in str(caught.value)
        assert "xpub-something-else" not in str(caught.value)
        assert len(store.list_meta()) == 3  # the six new ones were not imported either
        assert store.export() == first


def test_upstream_file_is_only_read(tmp_path: Path) -> None:
    copy = tmp_path / "wallet.dat"
    copy.write_bytes((FIXTURES / "upstream-wallet.dat").read_bytes())
    before = copy.read_bytes()
    read_upstream(copy, fixture_password())
    with pytest.raises(WrongPasswordError):
        read_upstream(copy, SecretBuffer(b"wrong"))
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wallet.dat"]
