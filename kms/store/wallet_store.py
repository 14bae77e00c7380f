"""WalletStore: every managed wallet in one store (a SQLite file, or a shared PostgreSQL database), each record
sealed with AES-256-GCM under a data key that is itself wrapped under a key derived from the password (see
kms.store.crypto for the cryptography, kms.store.format for the layout).

A thin facade over one Database (kms.store.database) and the small classes that work on it: ``wallets``
(kms.store.wallets), ``rotation`` (kms.store.rotation) and ``journal`` (kms.store.journal, the signing journal's whole
state machine). The wallet and journal shorthands below are what the CLI and the daemon call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from kms.hygiene import SecretBuffer
from kms.store import sqlite
from kms.store.backend import StoreBackend, open_backend
from kms.store.crypto import KdfParams
from kms.store.database import Database
from kms.store.journal import JournalEntry, SigningJournal, parse_state
from kms.store.model import StoredWallet, WalletMeta
from kms.store.rotation import Rotation
from kms.store.wallets import Wallets

DEFAULT_STORE_PATH = Path.home() / ".tatumrc" / "wallet.dat"
DEFAULT_ROTATE_AFTER = 2**24


class WalletStore:
    """Open with WalletStore.open(); use as a context manager or call close(), which wipes the keys.

    One instance is safe to share between threads. Any number of processes may open the same file at once.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.wallets = Wallets(db)
        self.rotation = Rotation(db)
        self.journal = SigningJournal(db)

    @classmethod
    def open(
        cls,
        location: Path | str | StoreBackend,
        password: SecretBuffer,
        *,
        create: bool = False,
        kdf: KdfParams | None = None,
        allow_weak_kdf: bool = False,
        rotate_after: int = DEFAULT_ROTATE_AFTER,
    ) -> WalletStore:
        """Unlock the store at `location` (a path, a store URL or a backend; deriving the password key exactly
        once), or create it when `create` is set and nothing is there. `kdf` only applies to a new store; an
        existing store keeps the parameters in its header.
        An existing store that others could read or replace is refused; an older schema is upgraded."""
        db = Database.open(
            as_backend(location),
            password,
            create=create,
            kdf=kdf,
            allow_weak_kdf=allow_weak_kdf,
            rotate_after=rotate_after,
        )
        return cls(db)

    @staticmethod
    def probe(location: Path | str | StoreBackend) -> str:
        """ "missing" | "kms" | "upstream" | "other". Reads the first bytes of a file only; changes nothing."""
        return as_backend(location).probe()

    @staticmethod
    def peek_counts(path: Path | str) -> dict[tuple[str, bool], int]:
        """Wallets per (chain, testnet) without the password (a hint: the counting table is not authenticated)."""
        return sqlite.peek_counts(Path(path).expanduser())

    # -- life cycle -------------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The store file (None for a database server)."""
        return self._db.path

    @property
    def database(self) -> Database:
        """The open database (claims and replica heartbeats, kms.store.claims / replicas, work on it)."""
        return self._db

    @property
    def backend(self) -> StoreBackend:
        return self._db.backend

    @property
    def location(self) -> str:
        """Where the store is, printable (a database URL without its password)."""
        return self._db.backend.location

    @property
    def kdf(self) -> KdfParams:
        return self._db.kdf

    @property
    def closed(self) -> bool:
        return self._db.closed

    def close(self) -> None:
        """Wipe the data key and the password key, and close the file. Idempotent."""
        self._db.close()

    def __enter__(self) -> WalletStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WalletStore {self.location} {'closed' if self.closed else 'open'}>"

    # -- wallets ----------------------------------------------------------------------------------------------------

    def add(self, chain: str, testnet: bool, fields: Mapping[str, str]) -> str:
        """Store one wallet; returns its new signatureId (UUID4). Durable once this returns."""
        return self.wallets.add_many([(chain, testnet, fields)])[0]

    def add_many(self, items: Iterable[tuple[str, bool, Mapping[str, str]]]) -> list[str]:
        return self.wallets.add_many(items)

    def get(self, signature_id: str) -> StoredWallet:
        return self.wallets.get(signature_id)

    def meta(self, signature_id: str) -> WalletMeta:
        return self.wallets.meta(signature_id)

    def remove(self, signature_id: str) -> None:
        self.wallets.remove(signature_id)

    def signature_ids(self, chain: str, testnet: bool) -> list[str]:
        return self.wallets.signature_ids(chain, testnet)

    def list_meta(self) -> list[WalletMeta]:
        return self.wallets.list_meta()

    def counts(self) -> dict[tuple[str, bool], int]:
        return self.wallets.counts()

    def export(self) -> dict[str, dict[str, object]]:
        return self.wallets.export()

    def import_records(self, records: Mapping[str, Mapping[str, object]]) -> int:
        return self.wallets.import_records(records)

    # -- keys -------------------------------------------------------------------------------------------------------

    def change_password(
        self, new_password: SecretBuffer, kdf: KdfParams | None = None, *, rotate_data_key: bool = False
    ) -> None:
        self.rotation.change_password(new_password, kdf, rotate_data_key=rotate_data_key)

    def rotate_data_key(self) -> None:
        self.rotation.rotate_data_key()

    # -- journal ----------------------------------------------------------------------------------------------------

    def journal_put(self, pending_id: str, chain: str, tx_data: str, request_sha256: str = "") -> None:
        self.journal.put(pending_id, chain, tx_data, request_sha256)

    def journal_lookup(self, pending_id: str) -> JournalEntry | None:
        return self.journal.lookup(pending_id)

    def journal_get(self, pending_id: str) -> str | None:
        return self.journal.payload(pending_id)

    def journal_mark(self, pending_id: str, status: str) -> None:
        self.journal.transition(pending_id, parse_state(status))

    def journal_entries(self, status: str | None = None) -> list[JournalEntry]:
        return self.journal.entries(status)

    def journal_release(self, pending_id: str) -> JournalEntry:
        return self.journal.release(pending_id)


def as_backend(location: Path | str | StoreBackend) -> StoreBackend:
    """A path is a store file; a plain string is a path or a store URL (a database URL needs its credentials, so
    pass a backend built by kms.store_location for one)."""
    if isinstance(location, str) and "://" not in location:
        location = Path(location)
    if isinstance(location, (Path, str)):
        return open_backend(location)
    return location
