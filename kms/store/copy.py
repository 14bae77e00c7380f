"""Copying a whole store to another backend (file <-> PostgreSQL), byte for byte, verified record by record.

The rows travel sealed: the header (KDF, salt, wrapped data key), every wallet's nonce and ciphertext, and the signing
journal are written as they are, so the same password opens the copy and the destination never sees a plaintext key.
Everything is written inside the destination's creation step (one transaction on PostgreSQL, a temporary file linked
into place for SQLite), and before that step commits every row is read back, compared with the source and each
wallet record is authenticated under the data key. Any difference, and nothing is left at the destination. Claims
and replica heartbeats are not copied: they describe running daemons, not the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from kms.errors import StoreError, TamperedRecordError
from kms.store.backend import StoreBackend, StoreConnection
from kms.store.crypto import RecordCipher
from kms.store.database import SCHEMA_VERSION
from kms.store.format import row_aad
from kms.store.wallet_store import WalletStore

_HEADER = "id, magic, format_version, kdf, salt, key_nonce, wrapped_key, key_generation, encryptions"
_WALLET = "signature_id, chain, testnet, kind, nonce, ciphertext"
_JOURNAL = (
    "pending_id, chain, state, payload, payload_sha256, request_sha256, meta, reason, reported, reconciled_at,"
    " created_at, updated_at"
)
_RELEASES = "pending_id, payload_sha256, state, released_at"
_VELOCITY = "pending_id, wallet, chain, asset, amount, at"
_TABLES = (("header", _HEADER, "id"), ("wallets", _WALLET, "rowid"), ("journal", _JOURNAL, "rowid"),
           ("journal_releases", _RELEASES, "pending_id, payload_sha256"),
           ("policy_velocity", _VELOCITY, "at"))  # fmt: skip
_UNORDERED = frozenset({"policy_velocity"})  # compared sorted here: text collation differs between the databases

Rows = dict[str, list[tuple[object, ...]]]


@dataclass(frozen=True)
class CopyReport:
    wallets: int
    journal: int
    source: str
    target: str


def _read(conn: StoreConnection) -> Rows:
    rows: Rows = {
        table: [_plain(row) for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()]  # noqa: S608
        for table, columns, order in _TABLES
    }
    for table in _UNORDERED:
        rows[table].sort(key=repr)
    return rows


def _plain(row: tuple[object, ...]) -> tuple[object, ...]:
    """Values as both drivers agree on them (bytes for blobs, int for flags)."""
    return tuple(bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else v for v in row)


def copy_store(source: WalletStore, target: StoreBackend) -> CopyReport:
    """Copy `source` (open) to `target`, which must hold no store yet. StoreError, and nothing at `target`, on any
    failure."""
    if target.probe() != "missing":
        raise StoreError(f"{target.location} is not empty (a store or other data); copy only to an empty place")
    db = source.database
    with db.reading(need_key=True) as conn:
        rows = _read(conn)
        cipher = db.cipher
        for row in rows["wallets"]:
            _authenticate(cipher, row)  # a tampered source record is not copied on

        def initialise(dest: StoreConnection) -> None:
            for table, columns, _ in _TABLES:
                marks = ", ".join("?" for _ in columns.split(","))
                dest.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows[table])  # noqa: S608
            _verify(dest, rows, cipher)

        if not target.create(initialise, SCHEMA_VERSION):
            raise StoreError(f"another process created a store at {target.location} meanwhile; nothing was copied")
    return CopyReport(len(rows["wallets"]), len(rows["journal"]), source.location, target.location)


def _verify(dest: StoreConnection, expected: Rows, cipher: RecordCipher) -> None:
    copied = _read(dest)
    for table, _, _ in _TABLES:
        if len(copied[table]) != len(expected[table]):
            raise StoreError(f"copy check failed: {table} has {len(copied[table])} rows, not {len(expected[table])}")
        for got, want in zip(copied[table], expected[table], strict=True):
            if got != want:
                raise StoreError(f"copy check failed: a {table} row differs from the source ({str(want[0])[:80]})")
    for row in copied["wallets"]:
        _authenticate(cipher, row)


def _authenticate(cipher: RecordCipher, row: tuple[object, ...]) -> None:
    signature_id, chain, testnet, kind, nonce, ciphertext = row
    aad = row_aad(signature_id, chain, testnet, kind)
    plaintext = cipher.open(nonce, ciphertext, aad) if aad is not None else None  # type: ignore[arg-type]
    if plaintext is None:
        raise TamperedRecordError(str(signature_id))
    plaintext.wipe()
