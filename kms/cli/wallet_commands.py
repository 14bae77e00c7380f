"""CLI mode: upstream's wallet commands, each a small function of the parsed arguments."""

from __future__ import annotations

import os
import platform
import sys
from argparse import Namespace
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from kms import __version__
from kms.api import MAX_INDEX
from kms.chains import get_chain, retired_wallet_warnings
from kms.chains.base import Chain
from kms.cli import output
from kms.cli.checkconfig import STORE_TYPE
from kms.cli.new_store import REPEAT_PASSWORD_PROMPT
from kms.cli.progress import Progress
from kms.cli.session import backend_name, load_settings, open_store, store_path
from kms.errors import KmsError, UsageError, WalletKindError, WalletNotFoundError
from kms.hygiene import hardening_status
from kms.masking import mask_api_key
from kms.passwords import PASSWORD_RULE, check_new_password
from kms.store import MAX_WALLETS_PER_CHAIN, StoredWallet
from kms.terminal import read_secret


def parse_index(text: str) -> int:
    try:
        value = int(text, 10)
    except (TypeError, ValueError):
        raise UsageError(f"index must be a whole number from 0 to {MAX_INDEX}, got '{text}'") from None
    if not 0 <= value <= MAX_INDEX:
        raise UsageError(f"index must be from 0 to {MAX_INDEX}, got {value}")
    return value


def _testnet(args: Namespace) -> bool:
    return bool(getattr(args, "testnet", False))


def generatewallet(args: Namespace) -> int:
    chain = get_chain(args.chain)
    wallet = chain.generate_wallet(_testnet(args))
    output.warn_if_secret_to_terminal()
    output.emit(wallet)
    return 0


def _store_summary(signature_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    summary = {"signatureId": signature_id}
    for name in ("address", "xpub"):
        if fields.get(name):
            summary[name] = fields[name]
    return summary


def generatemanagedwallet(args: Namespace) -> int:
    chain = get_chain(args.chain)
    testnet = _testnet(args)
    with open_store(args, create=True) as store:
        wallet = chain.generate_wallet(testnet)
        signature_id = store.add(chain.code, testnet, wallet)
    output.emit(_store_summary(signature_id, wallet))
    return 0


def storemanagedwallet(args: Namespace) -> int:
    chain = get_chain(args.chain)
    testnet = _testnet(args)
    if not chain.uses_mnemonic:
        raise WalletKindError(f"{chain.code} has no mnemonic wallets; use storemanagedprivatekey")
    # Checked before the store is opened: a bad mnemonic must not leave a new, empty store behind.
    with read_secret("Enter mnemonic to store: ") as mnemonic:
        words = " ".join(mnemonic.text().split())
        if not words:
            raise UsageError("no mnemonic given; nothing was stored")
        wallet = chain.wallet_from_mnemonic(words, testnet)
    with open_store(args, create=True) as store:
        signature_id = store.add(chain.code, testnet, wallet)
    output.emit(_store_summary(signature_id, wallet))
    return 0


def storemanagedprivatekey(args: Namespace) -> int:
    chain = get_chain(args.chain)
    testnet = _testnet(args)
    with read_secret("Enter private key to store: ") as key:
        text = key.text().strip()
    if not text:
        raise UsageError("no key given; nothing was stored")
    chain.validate_private_key(text, testnet)
    with open_store(args, create=True) as store:
        signature_id = store.add(chain.code, testnet, {"privateKey": text})
    output.emit({"signatureId": signature_id})
    return 0


def generatemanagedprivatekeybatch(args: Namespace) -> int:
    chain = get_chain(args.chain)
    testnet = _testnet(args)
    try:
        count = int(args.count, 10)
    except (TypeError, ValueError):
        raise UsageError(f"count must be a whole number, got '{args.count}'") from None
    if not 1 <= count <= MAX_WALLETS_PER_CHAIN:
        raise UsageError(f"count must be from 1 to {MAX_WALLETS_PER_CHAIN}, got {count}")
    with open_store(args, create=True) as store, Progress(f"generating {count} {chain.code} keys", count) as progress:
        # Most of each key's cost is a BIP39 seed (PBKDF2 in OpenSSL, which releases the GIL): threads use every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            wallets = list(progress.wrap(pool.map(lambda _: chain.generate_private_key(testnet), range(count))))
        records = [{k: v for k, v in w.items() if k != "address"} for w in wallets]
        # One transaction: all keys are stored, or none (a full chain, a crash).
        with progress.step("storing"):
            ids = store.add_many((chain.code, testnet, record) for record in records)
    for signature_id, wallet in zip(ids, wallets, strict=True):
        output.emit_line({"signatureId": signature_id, "address": wallet["address"]})
    return 0


def getmanagedwallet(args: Namespace) -> int:
    with open_store(args) as store, store.get(args.signatureId) as wallet:
        record = wallet.record()
    output.warn_if_secret_to_terminal()
    output.emit(record)
    return 0


def removewallet(args: Namespace) -> int:
    with open_store(args) as store:
        store.remove(args.signatureId)
    return 0


def getprivatekey(args: Namespace) -> int:
    index = parse_index(args.index)
    with open_store(args) as store, store.get(args.signatureId) as wallet:
        key = _private_key(get_chain(wallet.meta.chain), wallet, index)
    output.warn_if_secret_to_terminal()
    output.emit({"privateKey": key})
    return 0


def _private_key(chain: Chain, wallet: StoredWallet, index: int) -> str:
    fields = wallet.fields()
    if fields.get("mnemonic") and chain.uses_mnemonic:
        return chain.private_key_at(fields["mnemonic"], index, wallet.meta.testnet)
    # A key wallet holds exactly one key; the index does not apply (upstream derives from an empty mnemonic here).
    key = fields.get("privateKey") or fields.get("secret")
    if not key:
        raise WalletKindError(f"wallet '{wallet.meta.signature_id}' holds neither a mnemonic nor a private key")
    return key


def getaddress(args: Namespace) -> int:
    index = parse_index(args.index)
    with open_store(args) as store, store.get(args.signatureId) as wallet:
        address = address_of(get_chain(wallet.meta.chain), wallet, index)
    output.emit({"address": address})
    return 0


def address_of(chain: Chain, wallet: StoredWallet, index: int) -> str:
    fields = wallet.fields()
    testnet = wallet.meta.testnet
    if fields.get("address"):
        return fields["address"]
    if fields.get("mnemonic") and chain.uses_mnemonic:
        return chain.address_at(fields, index, testnet)
    key = fields.get("privateKey") or fields.get("secret")
    if not key:
        raise WalletKindError(f"wallet '{wallet.meta.signature_id}' holds neither a mnemonic nor a private key")
    return chain.address_from_private_key(key, testnet)


def export(args: Namespace) -> int:
    with open_store(args) as store:
        total = sum(store.counts().values())
        with Progress("export", total) as progress, progress.step(f"decrypting {total} wallets"):
            wallets = store.export()
    output.warn_if_secret_to_terminal()
    output.emit(wallets)
    return 0


def report(args: Namespace) -> int:
    ids = [part.strip() for part in (args.signatureIds or "").split(",") if part.strip()]
    settings = load_settings(args)
    path = store_path(args)
    system_warnings: list[str] = []
    wallets: dict[str, dict[str, object]] = {}
    with open_store(args) as store:
        for signature_id in ids:
            try:
                with store.get(signature_id) as wallet:
                    wallets[signature_id] = _report_wallet(wallet)
            except WalletNotFoundError:
                system_warnings.append(f"No wallet found for signatureId: {signature_id}")
            except KmsError as exc:
                system_warnings.append(str(exc))
        system_warnings += retired_wallet_warnings(store.counts())
    hardening = hardening_status()
    if not hardening.core_dumps_disabled:
        system_warnings.append("core dumps could not be disabled")
    if not hardening.not_dumpable:
        system_warnings.append("the process could not be made non-dumpable")
    result: dict[str, object] = {
        "system": {
            "kmsVersion": __version__,
            "pythonVersion": platform.python_version(),
            "platform": platform.platform(terse=True),
            # The store is a local file whatever holds its password (upstream named the password source here).
            "store": {"type": STORE_TYPE, "exists": path.exists(), "path": str(path)},
            "passwordBackend": backend_name(args, settings),
            "hardening": hardening.as_dict(),
        },
        "wallets": wallets,
        "apiKey": mask_api_key(getattr(args, "apiKey", None) or settings.get("TATUM_API_KEY")),
    }
    if system_warnings:
        result["warnings"] = system_warnings
    output.emit(result)
    return 0


_REPORT_TYPE = {"mnemonic": "MNEMONIC", "privateKey": "PRIVATE_KEY", "secret": "SECRET"}


def _report_wallet(wallet: StoredWallet) -> dict[str, object]:
    fields = wallet.fields()
    warnings: list[str] = []
    kind = wallet.meta.kind
    chain = get_chain(wallet.meta.chain)
    try:
        if kind == "mnemonic":
            if (
                chain.uses_mnemonic
                and "xpub" not in fields
                and chain.wallet_from_mnemonic(fields["mnemonic"], wallet.meta.testnet).get("xpub")
            ):
                warnings.append("Field 'xpub' is missing")
        else:
            chain.validate_private_key(fields.get("privateKey") or fields.get("secret") or "", wallet.meta.testnet)
    except KmsError as exc:
        warnings.append(str(exc))
    if chain.retired:
        warnings.append(f"{chain.retired}: this wallet's pending transactions are not signed")
    entry: dict[str, object] = {
        "type": _REPORT_TYPE.get(kind, "OTHER"),
        "chain": wallet.meta.chain,
        "testnet": wallet.meta.testnet,
    }
    if warnings:
        entry["warnings"] = warnings
    return entry


def passwd(args: Namespace) -> int:
    with open_store(args) as store:
        at_terminal = os.isatty(0)
        if at_terminal:
            sys.stderr.write(f"kms: the new password needs {PASSWORD_RULE}\n")
            sys.stderr.flush()
        # Without a terminal the new password is the first line of standard input (documented in --help).
        new = read_secret("New password: ")
        with new:
            check_new_password(new, "nothing was changed")
            if at_terminal:
                with read_secret(REPEAT_PASSWORD_PROMPT) as again:
                    if again != new:
                        raise UsageError("the two new passwords differ; nothing was changed")
            # A fresh data key too: a copy of the file taken earlier, opened with the old password, must not decrypt
            # wallets added from now on.
            total = sum(store.counts().values())
            with Progress("passwd", total) as progress, progress.step(f"re-encrypting {total} wallets"):
                store.change_password(new, rotate_data_key=True)
    output.emit({"passwordChanged": True, "dataKeyRotated": True})
    return 0
