"""The encrypted wallet store: records, authentication, passwords, KDF policy, rotation, limits, journal."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.errors import (
    LimitExceededError,
    NotAStoreError,
    StoreError,
    TamperedRecordError,
    UpstreamStoreError,
    UsageError,
    WalletNotFoundError,
    WrongPasswordError,
)
from kms.hygiene import SecretBuffer
from kms.store import (
    DEFAULT_STORE_PATH,
    MAX_WALLETS_PER_CHAIN,
    InvalidWalletError,
    JournalConflictError,
    KdfParams,
    StoreMissingError,
    WalletStore,
    WeakKdfError,
    close_shared,
    open_shared,
)
from kms.store import crypto as store_crypto
from kms.store import database as store_database
from kms.store import format as store_format

PASSWORD = b"correct horse battery staple"
WEAK = KdfParams.insecure_for_tests()

MNEMONIC = "hand mystery number marble silver nephew planet shock pole amazing clerk feed"
SHAPES: list[tuple[str, bool, dict[str, str]]] = [
    ("BTC", False, {"mnemonic": MNEMONIC, "xpub": "xpub6E69aETfUiLN4iukqmNnjcitJUSWw2fqU1Gj2Sh48AN9Je4Pa"}),
    ("EGLD", True, {"mnemonic": MNEMONIC}),  # EGLD mnemonic wallets have no xpub
    ("ETH", True, {"privateKey": "0x" + "ab" * 32}),
    ("XLM", False, {"secret": "SB" + "A" * 54, "address": "GB" + "B" * 54}),
    ("XRP", True, {"address": "rA" + "c" * 30, "secret": "sn" + "d" * 27}),
    ("SOL", False, {"privateKey": "5" * 88, "address": "So1" + "e" * 40}),
]


def password() -> SecretBuffer:
    return SecretBuffer(PASSWORD)


def open_weak(path: Path, secret: bytes = PASSWORD, **kwargs: object) -> WalletStore:
    return WalletStore.open(path, SecretBuffer(secret), kdf=WEAK, allow_weak_kdf=True, **kwargs)  # type: ignore[arg-type]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file in the directory with its content hash: the test that nothing was written or created."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def rows(path: Path) -> dict[str, tuple[bytes, bytes]]:
    with sqlite3.connect(path) as conn:
        return {
            sid: (nonce, ct) for sid, nonce, ct in conn.execute("SELECT signature_id, nonce, ciphertext FROM wallets")
        }


def header(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM header").fetchone())
    finally:
        conn.close()


def execute(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tatumrc" / "wallet.dat"


@pytest.fixture
def filled(store_path: Path) -> Iterator[tuple[Path, list[str]]]:
    with open_weak(store_path, create=True) as store:
        ids = [store.add(chain, testnet, fields) for chain, testnet, fields in SHAPES]
    yield store_path, ids


# ------------------------------------------------------------------------------------------------- round trip


def test_every_record_shape_round_trips_field_for_field(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    with open_weak(path) as store:
        for sid, (chain, testnet, fields) in zip(ids, SHAPES, strict=True):
            with store.get(sid) as wallet:
                assert wallet.meta.signature_id == sid
                assert (wallet.meta.chain, wallet.meta.testnet) == (chain, testnet)
                assert wallet.fields() == fields
                assert list(wallet.fields()) == list(fields)  # upstream's field order is kept
                assert wallet.record() == {**fields, "chain": chain, "testnet": testnet}
                assert list(wallet.record())[-2:] == ["chain", "testnet"]
        kinds = {m.signature_id: m.kind for m in store.list_meta()}
        assert [kinds[sid] for sid in ids] == ["mnemonic", "mnemonic", "privateKey", "secret", "secret", "privateKey"]
        exported = store.export()
    assert list(exported) == ids
    assert exported[ids[3]] == {**SHAPES[3][2], "chain": "XLM", "testnet": False}


def test_signature_ids_are_uuid4_and_chain_codes_upper_case(store_path: Path) -> None:
    import uuid

    with open_weak(store_path, create=True) as store:
        sid = store.add(" eth ", True, {"privateKey": "0x01"})
        assert uuid.UUID(sid).version == 4
        assert store.meta(sid).chain == "ETH"
        assert store.signature_ids("eth", True) == [sid]
        assert store.signature_ids("ETH", False) == []
        assert store.counts() == {("ETH", True): 1}


def test_listing_and_meta_decrypt_nothing(filled: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = filled
    with open_weak(path) as store:

        def refuse(*_args: object) -> None:
            raise AssertionError("decryption during a metadata read")

        monkeypatch.setattr(store_crypto.RecordCipher, "open", refuse)
        assert store.signature_ids("BTC", False) == [ids[0]]
        assert [m.signature_id for m in store.list_meta()] == ids
        assert store.meta(ids[2]).kind == "privateKey"
        assert store.counts()[("XRP", True)] == 1


def test_remove_then_get_fails_and_counts_follow(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    with open_weak(path) as store:
        store.remove(ids[0])
        with pytest.raises(WalletNotFoundError):
            store.get(ids[0])
        assert ("BTC", False) not in store.counts()
        assert len(store.list_meta()) == len(ids) - 1


@pytest.mark.parametrize("operation", ["get", "meta", "remove"])
def test_unknown_signature_id_message(filled: tuple[Path, list[str]], operation: str) -> None:
    path, _ = filled
    with open_weak(path) as store, pytest.raises(WalletNotFoundError) as caught:
        getattr(store, operation)("nope-1234")
    assert str(caught.value) == "No such wallet for signatureId 'nope-1234'."


def test_bad_records_are_refused_without_echoing_secrets(store_path: Path) -> None:
    with open_weak(store_path, create=True) as store:
        for chain, fields in [
            ("BTC", {"xpub": "only-public"}),  # no mnemonic / secret / privateKey
            ("BTC", {"mnemonic": ""}),
            ("BTC", {"chain": "ETH", "privateKey": "k"}),
            ("B TC", {"privateKey": "k"}),
            ("BTC", {"privateKey": 12345}),
        ]:
            with pytest.raises(InvalidWalletError) as caught:
                store.add(chain, False, fields)  # type: ignore[arg-type]
            assert "12345" not in str(caught.value)
        with pytest.raises(InvalidWalletError):
            store.add("BTC", "yes", {"privateKey": "k"})  # type: ignore[arg-type]
        assert store.list_meta() == []


# ---------------------------------------------------------------------------------------- authentication


def test_swapped_ciphertexts_fail_for_those_records_only(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    before = rows(path)
    a, b = ids[2], ids[5]  # both privateKey records, so only the AAD tells them apart
    execute(path, "UPDATE wallets SET nonce = ?, ciphertext = ? WHERE signature_id = ?", (*before[b], a))
    execute(path, "UPDATE wallets SET nonce = ?, ciphertext = ? WHERE signature_id = ?", (*before[a], b))
    with open_weak(path) as store:
        for sid in (a, b):
            with pytest.raises(TamperedRecordError) as caught:
                store.get(sid)
            assert caught.value.signature_id == sid
        for sid in set(ids) - {a, b}:
            store.get(sid).wipe()
        with pytest.raises(TamperedRecordError):
            store.export()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("chain", "BSC"),
        ("testnet", 0),
        ("kind", "privateKey"),
        ("signature_id", "70c2bd47-650b-4e62-b476-776d6fc2309c"),
    ],
)
def test_relabelled_record_fails_authentication(filled: tuple[Path, list[str]], column: str, value: object) -> None:
    path, ids = filled
    target = ids[1]  # EGLD testnet mnemonic
    execute(path, f"UPDATE wallets SET {column} = ? WHERE signature_id = ?", (value, target))  # noqa: S608
    relabelled = value if column == "signature_id" else target
    with open_weak(path) as store:
        with pytest.raises(TamperedRecordError):
            store.get(str(relabelled))
        for sid in set(ids) - {target}:
            store.get(sid).wipe()


@pytest.mark.parametrize("column", ["nonce", "ciphertext"])
def test_flipped_byte_is_tampered_and_others_stay_usable(filled: tuple[Path, list[str]], column: str) -> None:
    path, ids = filled
    nonce, ciphertext = rows(path)[ids[3]]
    blob = bytearray(nonce if column == "nonce" else ciphertext)
    blob[len(blob) // 2] ^= 0x01
    execute(path, f"UPDATE wallets SET {column} = ? WHERE signature_id = ?", (bytes(blob), ids[3]))  # noqa: S608
    with open_weak(path) as store:
        with pytest.raises(TamperedRecordError) as caught:
            store.get(ids[3])
        assert str(caught.value).count("\n") == 0
        assert ids[3] in str(caught.value)
        for sid in set(ids) - {ids[3]}:
            with store.get(sid) as wallet:
                assert wallet.fields()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("kdf", '{"memory_kib":8,"name":"argon2id","parallelism":1,"salt_len":16,"time_cost":2,"version":19}'),
        ("salt", b"\x00" * 16),
    ],
)
def test_altered_header_reads_as_wrong_password(store_path: Path, column: str, value: object) -> None:
    with open_weak(store_path, create=True) as store:
        store.add("BTC", False, {"privateKey": "k"})
    execute(store_path, f"UPDATE header SET {column} = ?", (value,))  # noqa: S608
    before = snapshot(store_path.parent)
    with pytest.raises(WrongPasswordError):
        open_weak(store_path)
    assert snapshot(store_path.parent) == before


# ----------------------------------------------------------------------------------- opening: bad input


def test_wrong_password_leaves_the_file_byte_identical(filled: tuple[Path, list[str]]) -> None:
    path, _ = filled
    before = snapshot(path.parent)
    with pytest.raises(WrongPasswordError) as caught:
        open_weak(path, b"not the password")
    assert str(caught.value) == "wrong password or damaged store"
    assert snapshot(path.parent) == before  # main file identical, no -wal / -shm left behind


def test_reads_leave_the_file_byte_identical(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    before = snapshot(path.parent)
    with open_weak(path) as store:
        store.get(ids[0]).wipe()
        store.export()
        store.list_meta()
        store.signature_ids("BTC", False)
        store.counts()
        store.journal_get("nothing")
    assert snapshot(path.parent) == before


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"just some notes\nnot a wallet\n", b"", b"SQLite format 3\x00" + bytes(200)],
    ids=["random", "text", "empty", "sqlite-header-only"],
)
def test_not_a_store_is_never_touched_even_with_create(store_path: Path, content: bytes) -> None:
    store_path.parent.mkdir()
    store_path.write_bytes(content)
    before = snapshot(store_path.parent)
    assert WalletStore.probe(store_path) == "other"
    for create in (False, True):
        with pytest.raises(NotAStoreError):
            open_weak(store_path, create=create)
    assert snapshot(store_path.parent) == before


def test_foreign_sqlite_database_is_not_a_store(store_path: Path) -> None:
    store_path.parent.mkdir()
    conn = sqlite3.connect(store_path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = snapshot(store_path.parent)
    assert WalletStore.probe(store_path) == "other"
    with pytest.raises(NotAStoreError):
        open_weak(store_path, create=True)
    assert snapshot(store_path.parent) == before


def test_directory_is_not_a_store(store_path: Path) -> None:
    store_path.mkdir(parents=True)
    assert WalletStore.probe(store_path) == "other"
    with pytest.raises(NotAStoreError):
        open_weak(store_path, create=True)


def test_upstream_file_is_detected_and_untouched(store_path: Path) -> None:
    from tests.conftest import FIXTURES

    store_path.parent.mkdir()
    store_path.write_bytes((FIXTURES / "upstream-wallet.dat").read_bytes())
    before = snapshot(store_path.parent)
    assert WalletStore.probe(store_path) == "upstream"
    for create in (False, True):
        with pytest.raises(UpstreamStoreError) as caught:
            open_weak(store_path, create=create)
        assert f"kms migrate --from {store_path}" in str(caught.value)
    assert snapshot(store_path.parent) == before


def test_missing_store_without_create_creates_nothing(store_path: Path) -> None:
    assert WalletStore.probe(store_path) == "missing"
    with pytest.raises(StoreMissingError):
        open_weak(store_path)
    assert not store_path.parent.exists()


def test_new_store_file_and_directory_are_private(store_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        open_weak(store_path, create=True).close()
    finally:
        os.umask(old_umask)
    assert store_path.stat().st_mode & 0o777 == 0o600
    assert store_path.parent.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in store_path.parent.iterdir()) == ["wallet.dat"]
    assert WalletStore.probe(store_path) == "kms"
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == store_format.APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_database.SCHEMA_VERSION
    assert store_path.read_bytes()[68:72] == b"kms1"


def test_empty_password_cannot_create(store_path: Path) -> None:
    with pytest.raises(UsageError):
        WalletStore.open(store_path, SecretBuffer(b""), create=True, kdf=WEAK, allow_weak_kdf=True)
    assert not store_path.exists()


def test_default_path() -> None:
    assert DEFAULT_STORE_PATH == Path.home() / ".tatumrc" / "wallet.dat"


# ------------------------------------------------------------------------------------------------- KDF policy


def test_real_default_kdf_is_recorded_in_the_header(store_path: Path) -> None:
    """The one test with the production KDF (Argon2id, 64 MiB, 3 passes, 4 lanes)."""
    with WalletStore.open(store_path, password(), create=True) as store:
        assert store.kdf == KdfParams.argon2id_default()
        sid = store.add("BTC", False, {"privateKey": "k"})
    stored = header(store_path)
    assert json.loads(str(stored["kdf"])) == {
        "name": "argon2id",
        "version": 19,
        "memory_kib": 65536,
        "time_cost": 3,
        "parallelism": 4,
        "salt_len": 16,
    }
    assert len(stored["salt"]) == 16  # type: ignore[arg-type]
    assert len(stored["key_nonce"]) == 12  # type: ignore[arg-type]
    assert len(stored["wrapped_key"]) == 48  # type: ignore[arg-type]
    with WalletStore.open(store_path, password()) as store:
        assert store.get(sid).fields() == {"privateKey": "k"}


def test_weak_kdf_is_refused_by_default(store_path: Path) -> None:
    with pytest.raises(WeakKdfError):
        WalletStore.open(store_path, password(), create=True, kdf=WEAK)
    assert not store_path.exists()
    open_weak(store_path, create=True).close()
    before = snapshot(store_path.parent)
    with pytest.raises(WeakKdfError):
        WalletStore.open(store_path, password())
    assert snapshot(store_path.parent) == before


def test_absurd_kdf_parameters_are_refused_before_deriving(store_path: Path) -> None:
    open_weak(store_path, create=True).close()
    huge = '{"memory_kib":1073741824,"name":"argon2id","parallelism":1,"salt_len":16,"time_cost":1,"version":19}'
    execute(store_path, "UPDATE header SET kdf = ?", (huge,))
    with pytest.raises(StoreError, match="memory cost"):
        open_weak(store_path)


def test_kdf_minimums() -> None:
    assert not KdfParams.argon2id_default().is_weak()
    assert not KdfParams.scrypt_default().is_weak()
    assert KdfParams.insecure_for_tests().is_weak()
    assert KdfParams(name="argon2id", memory_kib=32 * 1024, time_cost=3, parallelism=4).is_weak()
    assert KdfParams(name="argon2id", memory_kib=64 * 1024, time_cost=2, parallelism=4).is_weak()
    assert KdfParams(name="scrypt", n=2**16, r=8, parallelism=1).is_weak()
    for params in (KdfParams.argon2id_default(), KdfParams.scrypt_default()):
        assert KdfParams.from_json(params.to_json()) == params


def test_argon2id_matches_argon2_cffi_hash_secret_raw() -> None:
    from argon2.low_level import Type, hash_secret_raw

    params = KdfParams(name="argon2id", memory_kib=1024, time_cost=2, parallelism=2)
    salt = bytes(range(16))
    kek = store_crypto.derive_kek(password(), salt, params)
    expected = hash_secret_raw(PASSWORD, salt, time_cost=2, memory_cost=1024, parallelism=2, hash_len=32, type=Type.ID)
    assert kek.bytes() == expected


def test_scrypt_store_works(store_path: Path) -> None:
    cheap_scrypt = KdfParams(name="scrypt", n=2**4, r=8, parallelism=1)
    with WalletStore.open(store_path, password(), create=True, kdf=cheap_scrypt, allow_weak_kdf=True) as store:
        sid = store.add("ETH", False, {"privateKey": "k"})
    assert json.loads(str(header(store_path)["kdf"]))["name"] == "scrypt"
    with WalletStore.open(store_path, password(), allow_weak_kdf=True) as store:
        assert store.get(sid).fields() == {"privateKey": "k"}
        assert store.kdf == cheap_scrypt


# --------------------------------------------------------------------------------------- password change


def test_change_password_rewraps_and_old_password_fails(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    records_before = rows(path)
    stronger = KdfParams(name="argon2id", memory_kib=16, time_cost=2, parallelism=1)
    with open_weak(path) as store:
        store.change_password(SecretBuffer(b"new password"), stronger)
        assert store.kdf == stronger
        store.get(ids[0]).wipe()  # still usable in this process
        store.add("BTC", False, {"privateKey": "after"})
    assert rows(path).items() >= records_before.items()  # records untouched: only the key was re-wrapped
    assert json.loads(str(header(path)["kdf"]))["time_cost"] == 2
    with pytest.raises(WrongPasswordError):
        open_weak(path)
    with open_weak(path, b"new password") as store:
        assert store.export()[ids[3]]["secret"] == SHAPES[3][2]["secret"]


def test_change_password_with_rotation_re_encrypts(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    before = rows(path)
    with open_weak(path) as store:
        old_key = store._db.cipher.key.bytes()
        store.change_password(SecretBuffer(b"other"), rotate_data_key=True)
        assert store._db.cipher.key.bytes() != old_key
    after = rows(path)
    assert all(after[sid] != before[sid] for sid in ids)
    with open_weak(path, b"other") as store:
        assert len(store.export()) == len(ids)


def test_password_changed_by_another_opener_is_noticed(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    with open_weak(path) as first, open_weak(path) as second:
        second.change_password(SecretBuffer(b"changed elsewhere"))
        with pytest.raises(WrongPasswordError, match="changed by another process"):
            first.get(ids[0])
        assert first.signature_ids("BTC", False) == [ids[0]]  # metadata needs no key


# --------------------------------------------------------------------------------------------- rotation


def test_rotation_at_threshold_re_encrypts_everything(store_path: Path) -> None:
    with open_weak(store_path, create=True, rotate_after=5) as store:
        ids = [store.add("ETH", False, {"privateKey": f"0x{i:02x}"}) for i in range(3)]
        store.remove(ids.pop(0))
        store.remove(ids.pop(0))
        ids += [store.add("ETH", False, {"privateKey": f"0x1{i}"}) for i in range(2)]
        assert header(store_path)["encryptions"] == 5
        assert header(store_path)["key_generation"] == 1
        before = rows(store_path)
        old_key_buffer = store._db.cipher.key
        old_key = old_key_buffer.bytes()

        ids.append(store.add("ETH", False, {"privateKey": "0x99"}))  # 5 + 1 > 5: rotate first

        stored = header(store_path)
        assert stored["key_generation"] == 2
        assert stored["encryptions"] == 4  # 3 records re-encrypted under the new key, then 1 new one
        assert store._db.cipher.key.bytes() != old_key
        assert old_key_buffer.wiped
        after = rows(store_path)
        assert all(after[sid] != before[sid] for sid in before)
        assert [store.get(sid).fields()["privateKey"] for sid in ids] == ["0x02", "0x10", "0x11", "0x99"]
    with open_weak(store_path) as reopened:
        assert len(reopened.export()) == 4


def test_rotation_by_another_opener_is_followed(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    with open_weak(path) as first, open_weak(path) as second:
        second.rotate_data_key()
        assert header(path)["key_generation"] == 2
        with first.get(ids[0]) as wallet:
            assert wallet.fields() == SHAPES[0][2]
        first.add("BTC", True, {"privateKey": "k"})
        assert len(second.export()) == len(ids) + 1


def test_rotation_refuses_while_a_record_is_tampered(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    _, ciphertext = rows(path)[ids[0]]
    execute(path, "UPDATE wallets SET ciphertext = ? WHERE signature_id = ?", (ciphertext[::-1], ids[0]))
    before = header(path)
    with open_weak(path) as store:
        with pytest.raises(TamperedRecordError, match=ids[0]):
            store.rotate_data_key()
        with pytest.raises(TamperedRecordError):
            store.change_password(SecretBuffer(b"other"), rotate_data_key=True)
        with pytest.raises(TamperedRecordError):
            store.get(ids[0])
        for sid in ids[1:]:
            store.get(sid).wipe()
        store.remove(ids[0])  # the operator's way out: remove (or restore) the damaged record, then rotate
        store.rotate_data_key()
    assert header(path)["key_generation"] == int(str(before["key_generation"])) + 1


# ------------------------------------------------------------------------------------------------- limits


def test_limit_of_25000_per_chain_and_network(store_path: Path) -> None:
    record = {"privateKey": "0x" + "11" * 32}
    with open_weak(store_path, create=True) as store:
        store.add_many([("TRON", False, record)] * (MAX_WALLETS_PER_CHAIN - 1))
        with pytest.raises(LimitExceededError, match="25000"):
            store.add_many([("TRON", False, record)] * 2)  # all or nothing
        assert store.counts()[("TRON", False)] == MAX_WALLETS_PER_CHAIN - 1
        last = store.add("TRON", False, record)
        with pytest.raises(LimitExceededError) as caught:
            store.add("tron", False, record)
        assert "\n" not in str(caught.value)
        with pytest.raises(LimitExceededError):
            store.import_records(
                {"00000000-0000-4000-8000-000000000000": {**record, "chain": "TRON", "testnet": False}}
            )
        store.add("TRON", True, record)  # testnet is counted apart
        store.add("ETH", False, record)
        store.remove(last)
        store.add("TRON", False, record)
        assert len(store.signature_ids("TRON", False)) == MAX_WALLETS_PER_CHAIN


# --------------------------------------------------------------------------------------------- hygiene


def test_close_wipes_the_data_key_and_password_key(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    store = open_weak(path)
    data_key, kek = store._db.cipher.key, store._db._kek
    assert not data_key.wiped and not kek.wiped and len(data_key) == 32
    wallet = store.get(ids[0])
    store.close()
    assert data_key.wiped and kek.wiped
    assert store.closed
    with pytest.raises(StoreError):
        store.get(ids[0])
    assert wallet.fields()  # a wallet already handed out stays readable until wiped
    with wallet:
        pass
    with pytest.raises(StoreError):
        wallet.fields()


def test_reprs_and_messages_hold_no_secrets(filled: tuple[Path, list[str]]) -> None:
    path, ids = filled
    with open_weak(path) as store, store.get(ids[0]) as wallet:
        for text in (repr(wallet), str(wallet), repr(store), repr(store._db.cipher.key), repr(wallet.meta)):
            assert MNEMONIC.split()[0] not in text and "xpub6E" not in text


def test_open_shared_derives_once_per_process(filled: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = filled
    calls: list[int] = []
    real = store_database.derive_kek

    def counting(*args: object) -> SecretBuffer:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_database, "derive_kek", counting)
    try:
        first = open_shared(path, password(), kdf=WEAK, allow_weak_kdf=True)
        again = open_shared(path, password(), allow_weak_kdf=True)
        assert again is first and len(calls) == 1
        with pytest.raises(WrongPasswordError):
            open_shared(path, SecretBuffer(b"guess"), allow_weak_kdf=True)
        assert len(calls) == 1
        assert first.get(ids[0]).fields() == SHAPES[0][2]
    finally:
        close_shared()
    assert first.closed


# ------------------------------------------------------------------------------------------------- journal


def test_journal_put_get_mark_and_persist(store_path: Path) -> None:
    with open_weak(store_path, create=True) as store:
        assert store.journal_get("p-1") is None
        store.journal_put("p-1", "eth", "0xf86b")
        store.journal_put("p-1", "ETH", "0xf86b")  # same data: no-op
        with pytest.raises(JournalConflictError):
            store.journal_put("p-1", "ETH", "0xdifferent")
        store.journal_put("p-2", "BTC", "0200")
        store.journal_mark("p-1", "broadcast")
        with pytest.raises(StoreError, match="no journal entry"):
            store.journal_mark("p-404", "broadcast")
        with pytest.raises(StoreError):
            store.journal_mark("p-1", "Bad Status!")
    with open_weak(store_path) as store:
        assert store.journal_get("p-1") == "0xf86b"
        entries = store.journal_entries()
        assert [(e.pending_id, e.chain, e.status) for e in entries] == [
            ("p-1", "ETH", "broadcast"),
            ("p-2", "BTC", "signed"),
        ]
        assert [e.pending_id for e in store.journal_entries("signed")] == ["p-2"]


def test_one_instance_is_safe_across_threads(store_path: Path) -> None:
    import threading

    errors: list[BaseException] = []
    with open_weak(store_path, create=True, rotate_after=60) as store:

        def work(n: int) -> None:
            try:
                for i in range(40):
                    sid = store.add("ETH", bool(n % 2), {"privateKey": f"0x{n:02x}{i:04x}"})
                    assert store.get(sid).fields()["privateKey"] == f"0x{n:02x}{i:04x}"
            except BaseException as exc:  # reported below; a thread's exception is otherwise lost
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.counts() == {("ETH", False): 80, ("ETH", True): 80}
        assert len(store.export()) == 160  # rotations happened along the way (rotate_after=60)
    assert header(store_path)["key_generation"] > 1


SCHEMA_1_JOURNAL = (
    "CREATE TABLE journal (pending_id TEXT PRIMARY KEY NOT NULL, chain TEXT NOT NULL, tx_data TEXT NOT NULL,"
    " status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)"
)


def make_schema_1_journal(path: Path, rows: list[tuple[str, str, str, str]], request_column: bool = False) -> None:
    """Turn a fresh store's journal into the journal as the first stores had it (schema 1)."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript("DROP TABLE journal; DROP TABLE journal_releases; PRAGMA user_version = 1;")
        conn.execute(SCHEMA_1_JOURNAL)
        if request_column:
            conn.execute("ALTER TABLE journal ADD COLUMN request_sha256 TEXT NOT NULL DEFAULT ''")
        conn.executemany(
            "INSERT INTO journal (pending_id, chain, tx_data, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 1700000000, 1700000001)",
            rows,
        )
        conn.commit()
    finally:
        conn.close()


def test_journal_of_a_store_made_before_request_hashes(store_path: Path) -> None:
    open_weak(store_path, create=True).close()
    make_schema_1_journal(store_path, [("old-1", "ETH", "0xaa", "signed")])
    with open_weak(store_path) as store:
        entry = store.journal_lookup("old-1")
        assert entry is not None and entry.tx_data == "0xaa" and entry.request_sha256 == ""
        store.journal_put("new-1", "ETH", "0xbb", "ab" * 32)
        new = store.journal_lookup("new-1")
        assert new is not None and new.request_sha256 == "ab" * 32
        assert [e.pending_id for e in store.journal_entries()] == ["old-1", "new-1"]


# ------------------------------------------------------------------------------------------------- placement


@pytest.mark.parametrize(
    ("mode", "problem"),
    [(0o604, "readable by others"), (0o620, "writable by group or others"), (0o602, "writable by group or others")],
)
def test_a_store_others_could_read_or_write_is_refused(store_path: Path, mode: int, problem: str) -> None:
    open_weak(store_path, create=True).close()
    os.chmod(store_path, mode)
    before = snapshot(store_path.parent)
    with pytest.raises(StoreError, match=f"{problem}.*refusing to use it"):
        open_weak(store_path)
    assert snapshot(store_path.parent) == before
    os.chmod(store_path, 0o600)
    open_weak(store_path).close()


def test_a_store_in_a_world_writable_directory_is_refused_unless_sticky(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "wallet.dat"
    open_weak(path, create=True).close()
    os.chmod(shared, 0o777)  # noqa: S103 - the case under test
    with pytest.raises(StoreError, match=r"directory anyone may write to .*no sticky bit"):
        open_weak(path)
    os.chmod(shared, 0o1777)  # noqa: S103 - like /tmp: others cannot replace a file they do not own
    open_weak(path).close()
