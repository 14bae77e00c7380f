"""The on-disk format: SQL schema, associated-data layouts, record plaintext encoding and record validation.

No cryptography here; see kms.store.crypto. SECURITY.md describes this format byte by byte.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping

from kms.errors import InvalidWalletError
from kms.hygiene import SecretBuffer

MAGIC = "kms-wallet-store"
FORMAT_VERSION = 1
# PRAGMA application_id, bytes 68..71 of the SQLite file header: "kms1". Lets probe() recognise a store from its
# first 100 bytes without opening it with SQLite.
APPLICATION_ID = 0x6B6D7331
SQLITE_HEADER = b"SQLite format 3\x00"

MAX_WALLETS_PER_CHAIN = 25_000

KIND_MNEMONIC = "mnemonic"
KIND_PRIVATE_KEY = "privateKey"
KIND_SECRET = "secret"  # noqa: S105 - a record kind, not a credential
KINDS = (KIND_MNEMONIC, KIND_PRIVATE_KEY, KIND_SECRET)

SCHEMA = """
CREATE TABLE header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    magic TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    kdf TEXT NOT NULL,
    salt BLOB NOT NULL,
    key_nonce BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    key_generation INTEGER NOT NULL,
    encryptions INTEGER NOT NULL
);
CREATE TABLE wallets (
    signature_id TEXT PRIMARY KEY NOT NULL,
    chain TEXT NOT NULL,
    testnet INTEGER NOT NULL CHECK (testnet IN (0, 1)),
    kind TEXT NOT NULL CHECK (kind IN ('mnemonic', 'privateKey', 'secret')),
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL
);
CREATE INDEX wallets_by_chain ON wallets (chain, testnet);
CREATE TABLE chain_counts (
    chain TEXT NOT NULL,
    testnet INTEGER NOT NULL,
    wallets INTEGER NOT NULL,
    PRIMARY KEY (chain, testnet)
) WITHOUT ROWID;
CREATE TRIGGER wallets_counted_in AFTER INSERT ON wallets BEGIN
    INSERT INTO chain_counts (chain, testnet, wallets) VALUES (NEW.chain, NEW.testnet, 1)
        ON CONFLICT (chain, testnet) DO UPDATE SET wallets = wallets + 1;
END;
CREATE TRIGGER wallets_counted_out AFTER DELETE ON wallets BEGIN
    UPDATE chain_counts SET wallets = wallets - 1 WHERE chain = OLD.chain AND testnet = OLD.testnet;
END;
CREATE TRIGGER wallets_recounted AFTER UPDATE OF chain, testnet ON wallets BEGIN
    UPDATE chain_counts SET wallets = wallets - 1 WHERE chain = OLD.chain AND testnet = OLD.testnet;
    INSERT INTO chain_counts (chain, testnet, wallets) VALUES (NEW.chain, NEW.testnet, 1)
        ON CONFLICT (chain, testnet) DO UPDATE SET wallets = wallets + 1;
END;
PRAGMA application_id = 1802335025;
"""

_HEADER_AAD_PREFIX = b"kms-wallet-store/key\x00"
_RECORD_AAD_PREFIX = b"kms-wallet-store/record\x00"
_RECORD_PAD = 128  # plaintexts are padded to a multiple of this, so lengths do not hint at the secret's length

_CHAIN_RE = re.compile(r"[A-Z0-9_]{1,32}")
_FIELD_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SIGNATURE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_RESERVED_FIELDS = frozenset({"chain", "testnet", "signatureId"})
_MAX_FIELD_LEN = 16 * 1024


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def header_aad(format_version: int, kdf_json: str, salt: bytes) -> bytes:
    """Associated data of the wrapped data key: binds format version, KDF name and parameters, and salt."""
    return _HEADER_AAD_PREFIX + struct.pack(">H", format_version) + _lp(kdf_json.encode("ascii")) + _lp(salt)


def record_aad(signature_id: str, chain: str, testnet: bool, kind: str) -> bytes:
    """Associated data of one record: a ciphertext moved to another row or relabelled fails authentication."""
    return (
        _RECORD_AAD_PREFIX
        + struct.pack(">H", FORMAT_VERSION)
        + _lp(signature_id.encode("utf-8"))
        + _lp(chain.encode("ascii"))
        + (b"\x01" if testnet else b"\x00")
        + _lp(kind.encode("ascii"))
    )


def normalize_chain(chain: object) -> str:
    if not isinstance(chain, str) or not _CHAIN_RE.fullmatch(chain.strip().upper()):
        raise InvalidWalletError(f"invalid chain code {str(chain)[:40]!r}")
    return chain.strip().upper()


def check_signature_id(signature_id: object) -> str:
    if not isinstance(signature_id, str) or not _SIGNATURE_ID_RE.fullmatch(signature_id):
        raise InvalidWalletError(f"invalid signatureId {str(signature_id)[:140]!r}")
    return signature_id


def check_fields(fields: Mapping[str, object]) -> str:
    """Validate a record's secret fields; returns its kind. Never echoes a field value."""
    if not isinstance(fields, Mapping) or not fields:
        raise InvalidWalletError("a wallet record needs at least one field")
    for name, value in fields.items():
        if not isinstance(name, str) or not _FIELD_NAME_RE.fullmatch(name) or name in _RESERVED_FIELDS:
            raise InvalidWalletError(f"invalid wallet field name {str(name)[:64]!r}")
        if not isinstance(value, str) or len(value) > _MAX_FIELD_LEN:
            raise InvalidWalletError(f"wallet field {name!r} must be text of at most {_MAX_FIELD_LEN} characters")
    kind = kind_of(fields)
    if not fields[kind]:
        raise InvalidWalletError(f"wallet field {kind!r} is empty")
    return kind


def kind_of(fields: Mapping[str, object]) -> str:
    if KIND_MNEMONIC in fields:
        return KIND_MNEMONIC
    if KIND_SECRET in fields:
        return KIND_SECRET
    if KIND_PRIVATE_KEY in fields:
        return KIND_PRIVATE_KEY
    raise InvalidWalletError("a wallet record needs a mnemonic, secret or privateKey field")


def encode_fields(fields: Mapping[str, str]) -> SecretBuffer:
    """Record plaintext: the fields as compact UTF-8 JSON in their given order, space-padded to a multiple of 128."""
    text = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    padded = bytearray(-(-len(text) // _RECORD_PAD) * _RECORD_PAD)
    padded[: len(text)] = text
    padded[len(text) :] = b" " * (len(padded) - len(text))
    return SecretBuffer(padded)  # takes the bytearray over and zeroes it


def decode_fields(plaintext: SecretBuffer) -> dict[str, str]:
    fields = json.loads(plaintext.raw().decode("utf-8"))
    if not isinstance(fields, dict):
        raise ValueError("record plaintext is not an object")
    return fields


def row_aad(signature_id: object, chain: object, testnet: object, kind: object) -> bytes | None:
    """The associated data of a row as read back from the file, or None when its labels are not well-formed."""
    if not (isinstance(signature_id, str) and isinstance(chain, str) and isinstance(kind, str)):
        return None
    if testnet not in (0, 1) or kind not in KINDS or not chain.isascii():
        return None
    return record_aad(signature_id, chain, bool(testnet), kind)
