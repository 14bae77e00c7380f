"""CLI mode end to end: the real `kms` command in subprocesses, against a real store file."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from eth_account import Account

from tests.cli_helpers import PASSWORD, kms_env, run_kms, snapshot
from tests.conftest import FIXTURES, load_vectors

ETH_VECTOR = next(v for v in load_vectors("derivation.json") if v["chain"] == "ETH" and not v["testnet"])
BTC_TEST_VECTOR = next(v for v in load_vectors("derivation.json") if v["chain"] == "BTC" and v["testnet"])
ETH_KEY = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def store_dir(home: Path) -> Path:
    return home / ".tatumrc"


def _store_mnemonic(home: Path, vector: dict, *extra: str) -> str:
    chain = vector["chain"]
    args = ["storemanagedwallet", chain, *(["--testnet"] if vector["testnet"] else []), *extra]
    result = run_kms(args, home, stdin=vector["input"]["mnemonic"] + "\n")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["xpub"] == vector["expected"]["xpub"]
    return str(out["signatureId"])


def test_no_command_prints_help(home: Path) -> None:
    result = run_kms([], home)
    assert result.code == 0
    assert "generatemanagedwallet" in result.stdout and "--backend" in result.stdout


def test_every_command_has_help(home: Path) -> None:
    for command in ("generatewallet", "storemanagedwallet", "getaddress", "migrate", "passwd", "report"):
        result = run_kms([command, "--help"], home)
        assert result.code == 0 and "usage: kms " + command in result.stdout


def test_generatewallet_prints_mnemonic_and_xpub_and_stores_nothing(home: Path, store_dir: Path) -> None:
    result = run_kms(["generatewallet", "eth"], home)
    assert result.code == 0, result.stderr
    wallet = result.json()
    assert len(wallet["mnemonic"].split()) == 24
    assert wallet["xpub"].startswith("xpub")
    assert not store_dir.exists()


def test_storemanagedwallet_then_keys_and_addresses_match_upstream(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    assert uuid.UUID(sid).version == 4
    for index, address in ETH_VECTOR["expected"]["addresses"].items():
        got = run_kms(["getaddress", sid, index], home)
        assert got.code == 0 and got.json() == {"address": address}
    for index, key in ETH_VECTOR["expected"]["privateKeys"].items():
        got = run_kms(["getprivatekey", sid, index], home)
        assert got.code == 0 and got.json() == {"privateKey": key}
    record = run_kms(["getmanagedwallet", sid], home).json()
    assert record == {
        "mnemonic": ETH_VECTOR["input"]["mnemonic"],
        "xpub": ETH_VECTOR["expected"]["xpub"],
        "chain": "ETH",
        "testnet": False,
    }


def test_testnet_flag_and_kebab_case_env_file(home: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "kms.env"
    env_file.write_text(f"TATUM_KMS_PASSWORD={PASSWORD}\n")
    env_file.chmod(0o600)
    result = run_kms(
        ["storemanagedwallet", "BTC", "--testnet", "--env-file", str(env_file)],
        home,
        stdin=BTC_TEST_VECTOR["input"]["mnemonic"] + "\n",
        env=kms_env(home, password=None),
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["xpub"] == BTC_TEST_VECTOR["expected"]["xpub"]
    got = run_kms(["getaddress", out["signatureId"], "0"], home)
    assert got.json()["address"] == BTC_TEST_VECTOR["expected"]["addresses"]["0"]


def test_bad_input_does_not_create_a_store(home: Path, store_dir: Path) -> None:
    assert run_kms(["storemanagedwallet", "ETH"], home, stdin="abandon abandon\n").code != 0
    assert run_kms(["storemanagedprivatekey", "ETH"], home, stdin="zz\n").code != 0
    assert not (store_dir / "wallet.dat").exists()


def test_storemanagedwallet_rejects_bad_checksum_and_leaves_store_untouched(home: Path, store_dir: Path) -> None:
    _store_mnemonic(home, ETH_VECTOR)
    before = snapshot(store_dir)
    words = ETH_VECTOR["input"]["mnemonic"].split()
    words[-1] = "abandon" if words[-1] != "abandon" else "zoo"
    result = run_kms(["storemanagedwallet", "ETH"], home, stdin=" ".join(words) + "\n")
    assert result.code != 0
    assert "mnemonic" in result.error().lower()
    assert " ".join(words) not in result.stderr
    assert snapshot(store_dir) == before


def test_generatemanagedwallet_and_export(home: Path) -> None:
    first = run_kms(["generatemanagedwallet", "BTC"], home).json()
    second = run_kms(["generatemanagedwallet", "ETH", "--testnet"], home).json()
    assert set(first) == {"signatureId", "xpub"}
    exported = run_kms(["export"], home).json()
    assert set(exported) == {first["signatureId"], second["signatureId"]}
    assert exported[first["signatureId"]]["chain"] == "BTC"
    assert exported[second["signatureId"]]["testnet"] is True
    assert exported[first["signatureId"]]["xpub"] == first["xpub"]


def test_storemanagedprivatekey_validates_and_round_trips(home: Path, store_dir: Path) -> None:
    result = run_kms(["storemanagedprivatekey", "ETH"], home, stdin=ETH_KEY + "\n")
    assert result.code == 0, result.stderr
    sid = result.json()["signatureId"]
    assert run_kms(["getprivatekey", sid, "0"], home).json() == {"privateKey": ETH_KEY}
    address = Account.from_key(ETH_KEY).address.lower()
    assert run_kms(["getaddress", sid, "5"], home).json() == {"address": address}
    before = snapshot(store_dir)
    bad = run_kms(["storemanagedprivatekey", "ETH"], home, stdin="0x1234\n")
    assert bad.code != 0 and "0x1234" not in bad.stderr
    assert snapshot(store_dir) == before


def test_batch_writes_every_key_and_addresses_match(home: Path) -> None:
    result = run_kms(["generatemanagedprivatekeybatch", "ETH", "5"], home)
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5 and len({line["signatureId"] for line in lines}) == 5
    for line in lines:
        key = run_kms(["getprivatekey", line["signatureId"], "0"], home).json()["privateKey"]
        assert Account.from_key(key).address.lower() == line["address"].lower()


@pytest.mark.parametrize("count", ["0", "-1", "abc", "25001"])
def test_batch_rejects_bad_counts(home: Path, count: str) -> None:
    result = run_kms(["generatemanagedprivatekeybatch", "ETH", count], home)
    assert result.code != 0 and "count" in result.error()


def test_unknown_signature_id_everywhere(home: Path, store_dir: Path) -> None:
    _store_mnemonic(home, ETH_VECTOR)
    before = snapshot(store_dir)
    missing = str(uuid.uuid4())
    for args in (["getmanagedwallet", missing], ["removewallet", missing], ["getaddress", missing, "0"],
                 ["getprivatekey", missing, "0"]):  # fmt: skip
        result = run_kms(args, home)
        assert result.code == 1
        assert result.stderr.strip() == json.dumps({"error": f"No such wallet for signatureId '{missing}'."})
    assert snapshot(store_dir) == before


def test_removewallet_removes(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    assert run_kms(["removewallet", sid], home).code == 0
    assert run_kms(["getmanagedwallet", sid], home).code == 1


@pytest.mark.parametrize("index", ["-1", "2147483648", "abc", "1.5"])
def test_index_out_of_range(home: Path, index: str) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    result = run_kms(["getaddress", sid, index], home)
    assert result.code != 0 and "index" in result.error()


def test_largest_index_is_accepted(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    got = run_kms(["getaddress", sid, "2147483647"], home)
    assert got.json()["address"] == ETH_VECTOR["expected"]["addresses"]["2147483647"]


def test_unknown_chain_lists_supported(home: Path) -> None:
    result = run_kms(["generatewallet", "NOPE"], home)
    assert result.code != 0
    message = result.error()
    assert "NOPE" in message and "ETH" in message and "BTC" in message


def test_wrong_password_is_one_line_and_leaves_store_untouched(home: Path, store_dir: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    before = snapshot(store_dir)
    result = run_kms(["getmanagedwallet", sid], home, password="not-the-password")
    assert result.code != 0
    assert result.error() == "wrong password or damaged store"
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(store_dir) == before


def test_not_a_store_is_never_overwritten(home: Path, store_dir: Path) -> None:
    store_dir.mkdir()
    target = store_dir / "wallet.dat"
    target.write_bytes(b"my precious notes\n")
    result = run_kms(["generatemanagedwallet", "ETH"], home)
    assert result.code != 0
    assert target.read_bytes() == b"my precious notes\n"


def test_bad_flag_is_a_one_line_json_error(home: Path) -> None:
    result = run_kms(["export", "--no-such-flag"], home)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--no-such-flag" in result.error()


def test_checkconfig_masks_secrets(home: Path) -> None:
    api_key = "abcdef1234567890ghijklmnop"
    result = run_kms(["checkconfig"], home, env=kms_env(home, TATUM_API_KEY=api_key))
    assert result.code == 0, result.stderr
    assert PASSWORD not in result.stdout and PASSWORD[:6] not in result.stdout
    assert api_key not in result.stdout
    assert "abcdef" + "*" * (len(api_key) - 12) + "klmnop" in result.stdout
    assert result.json()["hardening"]["coreDumpsDisabled"] is True


def test_report(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    key_sid = run_kms(["storemanagedprivatekey", "ETH"], home, stdin=ETH_KEY + "\n").json()["signatureId"]
    missing = str(uuid.uuid4())
    report = run_kms(["report", f"{sid},{key_sid},{missing}"], home).json()
    assert report["wallets"][sid] == {"type": "MNEMONIC", "chain": "ETH", "testnet": False}
    assert report["wallets"][key_sid]["type"] == "PRIVATE_KEY"
    assert f"No wallet found for signatureId: {missing}" in report["warnings"]
    assert report["system"]["store"]["exists"] is True
    assert report["system"]["hardening"]["coreDumpsDisabled"] is True


def test_passwd_changes_password(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    new_password = "a-much-better-password"
    result = run_kms(["passwd"], home, stdin=new_password + "\n")
    assert result.code == 0, result.stderr
    assert run_kms(["getmanagedwallet", sid], home).error() == "wrong password or damaged store"
    assert run_kms(["getmanagedwallet", sid], home, password=new_password).code == 0
    assert result.json() == {"passwordChanged": True, "dataKeyRotated": True}


def test_passwd_rotates_the_data_key(home: Path, store_dir: Path) -> None:
    import sqlite3

    _store_mnemonic(home, ETH_VECTOR)

    def generation() -> int:
        conn = sqlite3.connect(store_dir / "wallet.dat")
        try:
            return int(conn.execute("SELECT key_generation FROM header").fetchone()[0])
        finally:
            conn.close()

    before = generation()
    assert run_kms(["passwd"], home, stdin="another-long-password\n").code == 0
    # An earlier copy of the file opened with the old password must not unlock wallets added from now on.
    assert generation() == before + 1


def test_upstream_file_at_store_path_names_migrate(home: Path, store_dir: Path) -> None:
    store_dir.mkdir()
    shutil.copy(FIXTURES / "upstream-wallet.dat", store_dir / "wallet.dat")
    before = snapshot(store_dir)
    for args in (["export"], ["generatemanagedwallet", "ETH"]):
        result = run_kms(args, home)
        assert result.code != 0
        assert "kms migrate --from" in result.error()
    assert snapshot(store_dir) == before


def test_migrate_from_upstream_gives_back_the_same_json(home: Path, tmp_path: Path) -> None:
    password = (FIXTURES / "upstream-wallet.password").read_text()
    expected = json.loads((FIXTURES / "upstream-wallet.expected.json").read_text())
    old = tmp_path / "old.dat"
    shutil.copy(FIXTURES / "upstream-wallet.dat", old)
    old_bytes = old.read_bytes()
    result = run_kms(["migrate", "--from", str(old)], home, password=password)
    assert result.code == 0, result.stderr
    assert result.json()["migrated"] == len(expected)
    assert old.read_bytes() == old_bytes
    assert run_kms(["export"], home, password=password).json() == expected


def test_migrate_in_place_keeps_upstream_backup(home: Path, store_dir: Path) -> None:
    password = (FIXTURES / "upstream-wallet.password").read_text()
    expected = json.loads((FIXTURES / "upstream-wallet.expected.json").read_text())
    store_dir.mkdir()
    target = store_dir / "wallet.dat"
    shutil.copy(FIXTURES / "upstream-wallet.dat", target)
    result = run_kms(["migrate", "--from", str(target)], home, password=password)
    assert result.code == 0, result.stderr
    backup = store_dir / "wallet.dat.upstream-backup"
    assert backup.read_bytes() == (FIXTURES / "upstream-wallet.dat").read_bytes()
    assert backup.stat().st_mode & 0o077 == 0  # upstream wrote it 0644; its weak encryption stays private
    assert "shred it" in result.json()["warning"]
    assert run_kms(["export"], home, password=password).json() == expected


def test_failed_migrate_leaves_nothing_behind(home: Path, store_dir: Path) -> None:
    from tests.store.test_migrate_upstream import write_upstream

    store_dir.mkdir()
    target = store_dir / "wallet.dat"
    good = {"privateKey": ETH_KEY, "chain": "eth", "testnet": False}  # upstream keeps chain codes as typed
    broken = {"privateKey": ETH_KEY, "chain": "ETH"}  # no testnet flag: cannot be imported faithfully
    write_upstream(target, {str(uuid.uuid4()): good, str(uuid.uuid4()): broken}, PASSWORD.encode())
    before = snapshot(store_dir)
    result = run_kms(["migrate", "--from", str(target)], home)
    assert result.code != 0 and "testnet" in result.error()
    assert snapshot(store_dir) == before  # no half-built store, no leftover blocking the next attempt
    # Once fixed, the lower-case chain code migrates (stored upper case, as kms keeps every chain code).
    good_id = str(uuid.uuid4())
    write_upstream(target, {good_id: good}, PASSWORD.encode())
    result = run_kms(["migrate", "--from", str(target)], home)
    assert result.code == 0, result.stderr
    assert run_kms(["getmanagedwallet", good_id], home).json() == {**good, "chain": "ETH"}


def test_migrate_wrong_password(home: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.dat"
    shutil.copy(FIXTURES / "upstream-wallet.dat", old)
    result = run_kms(["migrate", "--from", str(old)], home, password="wrong")
    assert result.code != 0
    assert "password" in result.error()
    assert not (home / ".tatumrc" / "wallet.dat").exists()


def test_getprivatekey_rejects_bad_index(home: Path) -> None:
    sid = _store_mnemonic(home, ETH_VECTOR)
    result = run_kms(["getprivatekey", sid, "-5"], home)
    assert result.code != 0 and "index" in result.error()


def test_mnemonic_operation_on_a_key_pair_chain_says_which_kind(home: Path, store_dir: Path) -> None:
    result = run_kms(["storemanagedwallet", "XLM"], home, stdin=ETH_VECTOR["input"]["mnemonic"] + "\n")
    assert result.code != 0
    assert "no mnemonic wallets" in result.error()
    assert ETH_VECTOR["input"]["mnemonic"] not in result.stderr
    assert not store_dir.exists()


def test_generatemanagedwallet_on_a_key_pair_chain_keeps_address_and_secret(home: Path) -> None:
    out = run_kms(["generatemanagedwallet", "SOL"], home).json()
    assert set(out) == {"signatureId", "address"}
    record = run_kms(["getmanagedwallet", out["signatureId"]], home).json()
    assert record["address"] == out["address"] and record["chain"] == "SOL" and record["privateKey"]
    assert run_kms(["getaddress", out["signatureId"], "0"], home).json() == {"address": out["address"]}
    assert run_kms(["getprivatekey", out["signatureId"], "0"], home).json() == {"privateKey": record["privateKey"]}


def test_secret_output_to_a_terminal_warns_on_stderr(home: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    sid = _store_mnemonic(home, ETH_VECTOR)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kms", "getprivatekey", sid, "0"],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=kms_env(home),
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode == 0
    assert ETH_VECTOR["expected"]["privateKeys"]["0"].encode() in shown
    assert b"secret key material" in proc.stderr
    # and with stdout redirected (not a terminal), no warning
    plain = run_kms(["getprivatekey", sid, "0"], home)
    assert "secret key material" not in plain.stderr


def test_daemon_refuses_an_approval_url_with_a_query(home: Path) -> None:
    result = run_kms(
        ["daemon", "--testnet", "--runOnce", "--apiKey", "k" * 20, "--externalUrl", "https://127.0.0.1:9/ok?token=x"],
        home,
    )
    assert result.code == 2
    assert "--externalUrl must not have a query or fragment" in result.error()


def test_a_fifo_at_the_store_path_is_refused_without_hanging(home: Path, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "wallet.fifo"
    os.mkfifo(fifo)
    for args in (["getmanagedwallet", str(uuid.uuid4()), "--path", str(fifo)], ["migrate", "--from", str(fifo)]):
        result = run_kms(args, home, timeout=30)
        assert result.code != 0
        assert str(fifo) in result.error()


def test_journal_list_and_release(home: Path, store_dir: Path) -> None:
    from kms.hygiene import SecretBuffer
    from kms.store import WalletStore

    _store_mnemonic(home, ETH_VECTOR)
    with WalletStore.open(store_dir / "wallet.dat", SecretBuffer(PASSWORD), allow_weak_kdf=True) as store:
        store.journal_put("stuck-1", "ETH", "0xf86b01")
        store.journal_put("done-1", "ETH", "0xf86b02")
        store.journal_mark("done-1", "broadcast")
    listed = run_kms(["journal", "list"], home).json()
    assert [(e["pendingId"], e["status"]) for e in listed] == [("stuck-1", "signed"), ("done-1", "broadcast")]
    assert all(len(e["txDataSha256"]) == 64 and "txData" not in e for e in listed)
    assert [e["pendingId"] for e in run_kms(["journal", "list", "--status", "signed"], home).json()] == ["stuck-1"]
    before = snapshot(store_dir)
    missing = run_kms(["journal", "release", "nope-1"], home)
    assert missing.code != 0 and "nope-1" in missing.error()
    assert snapshot(store_dir) == before
    released = run_kms(["journal", "release", "stuck-1"], home).json()
    assert released["released"] == "stuck-1" and released["status"] == "signed"
    assert [e["pendingId"] for e in run_kms(["journal", "list"], home).json()] == ["done-1"]
    assert run_kms(["journal", "release", "done-1"], home, password="wrong-password").code != 0
