"""Reading upstream tatum-kms's wallet.dat, for migration only (kms never writes this format).

Upstream writes `CryptoJS.AES.encrypt(JSON.stringify(wallets), password).toString()`: base64 of
"Salted__" + 8-byte salt + AES-256-CBC ciphertext (PKCS#7 padding), with key and IV from OpenSSL's EVP_BytesToKey
(MD5, one iteration) over the UTF-8 password and the salt. That KDF is weak (one MD5 per guess); migrating moves the
wallets under Argon2id, and the old file should then be destroyed by the operator.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kms.errors import NotAStoreError, StoreError, WrongPasswordError
from kms.hygiene import SecretBuffer, zero_bytearray

_SALTED = b"Salted__"
_BASE64_RE = re.compile(rb"[A-Za-z0-9+/=\s]*")
_MAX_UPSTREAM_BYTES = 1024**3


def looks_like_upstream(head: bytes) -> bool:
    """True when these leading bytes of a file are base64 text of an OpenSSL "Salted__" blob."""
    text = head.strip()
    if len(text) < 44 or not _BASE64_RE.fullmatch(text):  # 44 chars: the 16-byte prefix plus one cipher block
        return False
    try:
        prefix = base64.b64decode(text[:24], validate=True)
    except (binascii.Error, ValueError):
        return False
    return prefix.startswith(_SALTED)


def is_upstream_file(path: Path | str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not hang us
    except (FileNotFoundError, IsADirectoryError):
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and looks_like_upstream(os.read(fd, 4096))
    finally:
        os.close(fd)


def read_upstream(path: Path | str, password: SecretBuffer) -> dict[str, dict[str, Any]]:
    """Decrypt an upstream wallet.dat: signatureId -> record ({mnemonic, xpub} | {privateKey} | {secret, address}
    | {privateKey, address}, each with chain and testnet), in the file's order."""
    blob = _decode(Path(path))
    salt, ciphertext = blob[8:16], blob[16:]
    key_iv = _evp_bytes_to_key(password, salt)
    plaintext = bytearray()
    try:
        decryptor = Cipher(algorithms.AES(bytes(key_iv[:32])), modes.CBC(bytes(key_iv[32:48]))).decryptor()
        padded = bytearray(decryptor.update(ciphertext) + decryptor.finalize())
        unpadder = padding.PKCS7(128).unpadder()
        try:
            plaintext = bytearray(unpadder.update(bytes(padded)) + unpadder.finalize())
        except ValueError:
            raise WrongPasswordError() from None
        finally:
            zero_bytearray(padded)
        try:
            wallets = json.loads(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            # A wrong password survives the padding check about once in 256 tries; the JSON never parses.
            raise WrongPasswordError() from None
    finally:
        zero_bytearray(key_iv)
        zero_bytearray(plaintext)
    return _check_records(wallets)


def _decode(path: Path) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > _MAX_UPSTREAM_BYTES:
            raise NotAStoreError(f"{path} is too large to be an upstream wallet file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"no upstream wallet file at {path}") from None
    except IsADirectoryError:
        raise NotAStoreError(f"{path} is a directory, not an upstream wallet file") from None
    try:
        blob = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise NotAStoreError(f"{path} is not an upstream wallet file (not base64)") from None
    if not blob.startswith(_SALTED) or len(blob) < 32 or (len(blob) - 16) % 16:
        raise NotAStoreError(f"{path} is not an upstream wallet file (no OpenSSL salted AES blob)")
    return blob


def _evp_bytes_to_key(password: SecretBuffer, salt: bytes) -> bytearray:
    """OpenSSL EVP_BytesToKey(MD5, count=1): D_i = MD5(D_{i-1} || password || salt), concatenated to 48 bytes."""
    out = bytearray()
    previous = b""
    while len(out) < 48:
        digest = hashes.Hash(hashes.MD5())  # noqa: S303 - upstream's format, read-only
        digest.update(previous)
        digest.update(password.view())
        digest.update(salt)
        previous = digest.finalize()
        out += previous
    return out


def _check_records(wallets: object) -> dict[str, dict[str, Any]]:
    if not isinstance(wallets, dict):
        raise StoreError("the upstream wallet file does not hold a signatureId -> wallet map")
    for signature_id, record in wallets.items():
        if not isinstance(record, dict) or not isinstance(record.get("chain"), str):
            raise StoreError(f"upstream wallet {str(signature_id)[:140]!r} has no chain")
        if not isinstance(record.get("testnet"), bool):
            raise StoreError(f"upstream wallet {str(signature_id)[:140]!r} has a non-boolean testnet flag")
    return wallets
