"""Changing the store password and rotating the data key: every record re-encrypted in one transaction."""

from __future__ import annotations

from kms.errors import TamperedRecordError, UsageError, WeakKdfError
from kms.hygiene import SecretBuffer
from kms.store.crypto import KdfParams, RecordCipher, derive_kek, new_data_key, random_bytes, wrap_key
from kms.store.database import Database, PasswordChange, Txn
from kms.store.format import FORMAT_VERSION, header_aad, row_aad

_ROTATION_BATCH = 1000


class Rotation:
    def __init__(self, db: Database) -> None:
        self._db = db

    def change_password(
        self, new_password: SecretBuffer, kdf: KdfParams | None = None, *, rotate_data_key: bool = False
    ) -> None:
        """Re-wrap the data key under `new_password` (and, optionally, stronger KDF parameters) in one transaction;
        the old password stops opening the store. With rotate_data_key, every record is also re-encrypted under a
        fresh data key in the same transaction, so a copy of the file taken earlier no longer shares a key with it."""
        db = self._db
        params = kdf or db.kdf
        params.check_range()
        if params.is_weak() and not db.allow_weak_kdf:
            raise WeakKdfError(f"KDF parameters {params.describe()} are below the minimum")
        if not new_password:
            raise UsageError("the store password must not be empty")
        db.check_open()
        salt = random_bytes(params.salt_len)
        kdf_json = params.to_json()
        new_kek = derive_kek(new_password, salt, params)  # before taking the write lock: it is slow on purpose
        try:
            with db.writing() as txn:
                if rotate_data_key:
                    reencrypt_all(db, txn)
                key_nonce, wrapped = wrap_key(new_kek, txn.cipher.key, header_aad(FORMAT_VERSION, kdf_json, salt))
                txn.conn.execute(
                    "UPDATE header SET kdf = ?, salt = ?, key_nonce = ?, wrapped_key = ? WHERE id = 1",
                    (kdf_json, salt, key_nonce, wrapped),
                )
                txn.new_key_nonce = key_nonce
                txn.new_password = PasswordChange(new_kek, params, kdf_json, salt)  # installed after COMMIT
        except BaseException:
            new_kek.wipe()
            raise
        db.checkpoint()  # push the old wrapped key out of the WAL (secure_delete zeroes freed pages)

    def rotate_data_key(self) -> None:
        """Re-encrypt every record under a fresh data key now, in one transaction."""
        with self._db.writing() as txn:
            reencrypt_all(self._db, txn)


def reencrypt_all(db: Database, txn: Txn) -> None:
    """Rotate the data key inside the caller's transaction: a fresh key, every record re-encrypted under it, the new
    key wrapped. A record that fails authentication stops the rotation (the transaction rolls back): once the old key
    is gone, a record whose only damage was an edited label could never be recovered."""
    old, new = txn.cipher, RecordCipher(new_data_key())
    txn.cipher = new  # from here on, the rollback path wipes `new`
    reencrypted = 0
    last_rowid = 0
    while True:
        rows = txn.conn.execute(
            "SELECT rowid, signature_id, chain, testnet, kind, nonce, ciphertext FROM wallets"
            " WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (last_rowid, _ROTATION_BATCH),
        ).fetchall()
        if not rows:
            break
        updates = []
        for rowid, signature_id, chain, testnet, kind, nonce, ciphertext in rows:
            last_rowid = rowid
            aad = row_aad(signature_id, chain, testnet, kind)
            plaintext = old.open(nonce, ciphertext, aad) if aad is not None else None
            if plaintext is None:
                raise TamperedRecordError(signature_id)
            try:
                updates.append((*new.seal(plaintext.view(), aad), rowid))  # type: ignore[arg-type]
            finally:
                plaintext.wipe()
        txn.conn.executemany("UPDATE wallets SET nonce = ?, ciphertext = ? WHERE rowid = ?", updates)
        reencrypted += len(updates)
    key_nonce, wrapped = db.wrap_under_password(new)
    txn.conn.execute(
        "UPDATE header SET key_nonce = ?, wrapped_key = ?, key_generation = key_generation + 1 WHERE id = 1",
        (key_nonce, wrapped),
    )
    txn.new_key_nonce = key_nonce
    txn.encryptions = reencrypted
    txn.counter_dirty = True
