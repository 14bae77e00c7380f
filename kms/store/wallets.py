"""The wallets table: adding, importing, reading and removing sealed wallet records, and the per-chain limit."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping

from kms.errors import (
    DuplicateKeyError,
    ImportConflictError,
    InvalidWalletError,
    LimitExceededError,
    StoreError,
    TamperedRecordError,
    WalletNotFoundError,
)
from kms.hygiene import SecretBuffer
from kms.store.backend import StoreConnection
from kms.store.crypto import RecordCipher
from kms.store.database import Database, Txn
from kms.store.format import (
    MAX_WALLETS_PER_CHAIN,
    check_fields,
    check_signature_id,
    decode_fields,
    encode_fields,
    normalize_chain,
    record_aad,
    row_aad,
)
from kms.store.model import StoredWallet, WalletMeta
from kms.store.rotation import reencrypt_all

_INSERT_WALLET = "INSERT INTO wallets (signature_id, chain, testnet, kind, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?)"
_SELECT_RECORD = "SELECT chain, testnet, kind, nonce, ciphertext FROM wallets WHERE signature_id = ?"

_Row = tuple[object, object, object, object, object]
_Prepared = tuple[str, str, bool, str, SecretBuffer]  # signatureId, chain, testnet, kind, plaintext


class Wallets:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_many(self, items: Iterable[tuple[str, bool, Mapping[str, str]]]) -> list[str]:
        """Store several wallets in ONE transaction: all of them, or (limit, crash, error) none."""
        prepared: list[_Prepared] = []
        try:
            for chain, testnet, fields in items:
                code = normalize_chain(chain)
                kind = check_fields(fields)
                prepared.append((str(uuid.uuid4()), code, _check_testnet(testnet), kind, encode_fields(fields)))
            if prepared:
                with self._db.writing() as txn:
                    _check_limits(txn.conn, Counter((code, testnet) for _, code, testnet, _, _ in prepared))
                    self._insert(txn, prepared)
            return [signature_id for signature_id, *_ in prepared]
        finally:
            for *_, plaintext in prepared:
                plaintext.wipe()

    def get(self, signature_id: str) -> StoredWallet:
        """Decrypt one wallet. Raises WalletNotFoundError, or TamperedRecordError if its bytes were altered."""
        with self._db.reading(need_key=True) as conn:
            row = conn.execute(_SELECT_RECORD, (signature_id,)).fetchone()
            if row is None:
                raise WalletNotFoundError(printable(signature_id))
            meta, plaintext = _open_row(signature_id, row, self._db.cipher)
        return StoredWallet(meta, plaintext)

    def meta(self, signature_id: str) -> WalletMeta:
        """Chain, network and kind of one wallet, without decrypting it."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT chain, testnet, kind FROM wallets WHERE signature_id = ?", (signature_id,)
            ).fetchone()
        if row is None:
            raise WalletNotFoundError(printable(signature_id))
        return WalletMeta(signature_id, str(row[0]), bool(row[1]), str(row[2]))

    def remove(self, signature_id: str) -> None:
        with self._db.writing(need_key=False) as txn:
            if txn.conn.execute("DELETE FROM wallets WHERE signature_id = ?", (signature_id,)).rowcount == 0:
                raise WalletNotFoundError(printable(signature_id))

    def signature_ids(self, chain: str, testnet: bool) -> list[str]:
        """The signatureIds of one chain and network, oldest first, without decrypting anything."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT signature_id FROM wallets WHERE chain = ? AND testnet = ? ORDER BY rowid",
                (str(chain).strip().upper(), int(bool(testnet))),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def list_meta(self) -> list[WalletMeta]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT signature_id, chain, testnet, kind FROM wallets ORDER BY rowid").fetchall()
        return [WalletMeta(str(sid), str(chain), bool(testnet), str(kind)) for sid, chain, testnet, kind in rows]

    def counts(self) -> dict[tuple[str, bool], int]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT chain, testnet, wallets FROM chain_counts WHERE wallets > 0 ORDER BY chain, testnet"
            ).fetchall()
        return {(str(chain), bool(testnet)): int(n) for chain, testnet, n in rows}

    def export(self) -> dict[str, dict[str, object]]:
        """Every wallet as upstream's JSON record (fields + chain + testnet), oldest first. Fails on a tampered one."""
        result: dict[str, dict[str, object]] = {}
        with self._db.reading(need_key=True) as conn:
            rows = conn.execute(
                "SELECT signature_id, chain, testnet, kind, nonce, ciphertext FROM wallets ORDER BY rowid"
            ).fetchall()
            for signature_id, *row in rows:
                meta, plaintext = _open_row(signature_id, tuple(row), self._db.cipher)
                with StoredWallet(meta, plaintext) as wallet:
                    result[signature_id] = wallet.record()
        return result

    def import_records(self, records: Mapping[str, Mapping[str, object]]) -> int:
        """Import upstream records (signatureId -> {fields..., chain, testnet}) keeping ids and fields unchanged, in
        one transaction. An id already present with identical content is skipped; with different content the whole
        import fails with ImportConflictError. Returns how many wallets were added."""
        wanted = [_checked_record(signature_id, record) for signature_id, record in records.items()]
        prepared: list[_Prepared] = []
        try:
            with self._db.writing() as txn:
                for signature_id, code, testnet, kind, fields in wanted:
                    row = txn.conn.execute(_SELECT_RECORD, (signature_id,)).fetchone()
                    if row is not None:
                        if not _same_record(signature_id, row, txn.cipher, code, testnet, fields):
                            raise ImportConflictError(
                                f"signatureId '{signature_id}' already exists in the store with different content;"
                                " nothing was imported"
                            )
                        continue
                    prepared.append((signature_id, code, testnet, kind, encode_fields(fields)))
                _check_limits(txn.conn, Counter((code, testnet) for _, code, testnet, _, _ in prepared))
                self._insert(txn, prepared)
            return len(prepared)
        finally:
            for *_, plaintext in prepared:
                plaintext.wipe()

    def _insert(self, txn: Txn, prepared: list[_Prepared]) -> None:
        if not prepared:
            return
        if txn.encryptions + len(prepared) > self._db.rotate_after:
            reencrypt_all(self._db, txn)
        rows = []
        for signature_id, code, testnet, kind, plaintext in prepared:
            nonce, ciphertext = txn.cipher.seal(plaintext.view(), record_aad(signature_id, code, testnet, kind))
            rows.append((signature_id, code, int(testnet), kind, nonce, ciphertext))
        try:
            txn.conn.executemany(_INSERT_WALLET, rows)
        except DuplicateKeyError:
            raise StoreError("a signatureId collided with an existing one; nothing was stored, try again") from None
        txn.encryptions += len(rows)
        txn.counter_dirty = True


def _checked_record(signature_id: str, record: object) -> tuple[str, str, bool, str, Mapping[str, str]]:
    check_signature_id(signature_id)
    if not isinstance(record, Mapping):
        raise InvalidWalletError(f"wallet {signature_id!r} is not a record")
    code = normalize_chain(record.get("chain"))
    testnet = record.get("testnet")
    if not isinstance(testnet, bool):
        raise InvalidWalletError(f"wallet {signature_id!r} has no boolean testnet flag")
    fields = {name: value for name, value in record.items() if name not in ("chain", "testnet")}
    kind = check_fields(fields)
    return signature_id, code, testnet, kind, fields  # type: ignore[return-value]


def _check_limits(conn: StoreConnection, additions: Counter[tuple[str, bool]]) -> None:
    for (code, testnet), adding in sorted(additions.items()):
        row = conn.execute(
            "SELECT wallets FROM chain_counts WHERE chain = ? AND testnet = ?", (code, int(testnet))
        ).fetchone()
        have = int(row[0]) if row else 0
        if have + adding > MAX_WALLETS_PER_CHAIN:
            network = "testnet" if testnet else "mainnet"
            raise LimitExceededError(
                f"{code} {network} holds {have} wallets; adding {adding} would pass the limit of "
                f"{MAX_WALLETS_PER_CHAIN} signatureIds per chain; nothing was stored"
            )


def _open_row(signature_id: str, row: _Row, cipher: RecordCipher) -> tuple[WalletMeta, SecretBuffer]:
    chain, testnet, kind, nonce, ciphertext = row
    aad = row_aad(signature_id, chain, testnet, kind)
    if aad is None or not isinstance(nonce, bytes) or not isinstance(ciphertext, bytes):
        raise TamperedRecordError(printable(signature_id))
    plaintext = cipher.open(nonce, ciphertext, aad)
    if plaintext is None:
        raise TamperedRecordError(printable(signature_id))
    return WalletMeta(signature_id, str(chain), bool(testnet), str(kind)), plaintext


def _same_record(
    signature_id: str, row: _Row, cipher: RecordCipher, code: str, testnet: bool, fields: Mapping[str, str]
) -> bool:
    meta, plaintext = _open_row(signature_id, row, cipher)
    try:
        return meta.chain == code and meta.testnet == testnet and decode_fields(plaintext) == dict(fields)
    finally:
        plaintext.wipe()


def _check_testnet(testnet: object) -> bool:
    if not isinstance(testnet, bool):
        raise InvalidWalletError("testnet must be True or False")
    return testnet


def printable(signature_id: object) -> str:
    """The id as given, unless it holds control characters (an error message stays on one line)."""
    text = str(signature_id)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
