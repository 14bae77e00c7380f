"""The narrow interface every store backend implements, and the registry that picks one from a store location.

A backend knows where a store lives and how to talk to it: recognising it, creating its tables and header in one
step, opening connections and running transactions. Everything above it (Database, Wallets, Rotation, the signing
journal) is written once, in portable SQL with ``?`` placeholders, and never asks which backend it runs on. The
cryptography is never the backend's business: records arrive sealed and leave sealed.

Locations: a plain path or ``sqlite:///abs/path`` is the embedded file (kms.store.sqlite); ``postgresql://...`` is
a shared PostgreSQL database (kms.store.postgres, the optional ``kms[postgres]`` extra). Backend modules are imported
only when chosen, so psycopg stays optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from kms.errors import UsageError
from kms.hygiene import SecretBuffer

CredentialSource = Callable[[], SecretBuffer | None]
"""Fetches the database password (from the provider layer) each time a connection is made; None: no password."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


@runtime_checkable
class StoreConnection(Protocol):
    """One connection. SQL is portable (``?`` placeholders, ON CONFLICT upserts, a ``rowid`` column for order);
    driver errors come out as kms.errors.StoreError (kms.errors.DuplicateKeyError for a unique-key clash,
    StoreUnavailableError when the server cannot be reached)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...
    def begin_read(self) -> None:
        """A read transaction: one consistent snapshot."""

    def begin_write(self, *, durable: bool = True) -> None:
        """A write transaction holding the store's writer lock, so checks and the writes they guard are atomic
        across every process (and every replica) using the store. ``durable=False``: its commit need not be flushed
        to disk before it returns."""

    def begin_rows(self) -> None:
        """A write transaction for single atomic statements (claims, heartbeats) that need not queue behind the
        writer lock where the backend can avoid it."""

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    @property
    def in_transaction(self) -> bool: ...
    def schema_version(self) -> int: ...
    def json_text(self, column: str, key: str) -> str:
        """An SQL expression for the text at ``key`` of the JSON object in ``column`` (NULL when absent)."""
        ...

    def json_int(self, column: str, key: str) -> str:
        """An SQL expression for the integer at ``key`` of the JSON object in ``column`` (NULL when absent)."""
        ...

    def set_schema_version(self, version: int) -> None: ...
    def checkpoint(self) -> None:
        """Push replaced pages (an old wrapped key) out of any write-ahead log the backend keeps."""

    def close(self) -> None: ...


@runtime_checkable
class StoreBackend(Protocol):
    location: str
    """Where the store is, printable: never holds a password."""
    path: Path | None
    """The store file, for a file backend (daemon lock, placement checks); None for a database server."""
    replicated: bool
    """Several daemons may use this store at once (claims and work sharing, kms.store.claims / replicas)."""
    replica_id: str
    """This process's name among the replicas of a replicated store ("" otherwise)."""
    clock: str
    """An SQL expression for the database's clock in unix seconds: leases are measured on one clock."""

    def probe(self) -> str:
        """ "missing" | "kms" | "upstream" | "other", without changing anything."""

    def create(self, initialise: Callable[[StoreConnection], None], schema_version: int) -> bool:
        """Create the schema, run `initialise` (it writes the header), all or nothing; False when a store was
        already there (another process made it first)."""

    def connect(self) -> StoreConnection: ...
    def check_placement(self) -> None:
        """Refuse a store that others could read or replace."""

    def upgrade(self, conn: StoreConnection, from_version: int) -> None:
        """Bring an older schema up to date inside the caller's write transaction."""

    def as_replica(self) -> StoreBackend:
        """This backend as a daemon uses it: for a replicated one, connections then name replica_id to the
        database (which checks the claim behind every signed journal entry); a file backend is unchanged."""


BackendFactory = Callable[[str, CredentialSource | None], StoreBackend]

# URL scheme -> "module:factory"; a module is imported only when its scheme is used.
_BUILTINS: dict[str, str] = {
    "sqlite": "kms.store.sqlite:from_location",
    "file": "kms.store.sqlite:from_location",
    "postgresql": "kms.store.postgres:from_location",
    "postgres": "kms.store.postgres:from_location",
}


def scheme_of(location: str) -> str:
    """The URL scheme of a store location; "" for a plain path."""
    text = location.strip()
    if "://" not in text:
        return ""
    return urlsplit(text).scheme.lower()


def open_backend(location: str | Path, credentials: CredentialSource | None = None) -> StoreBackend:
    """The backend for `location`: a plain path or sqlite:/// URL is a store file; postgresql://... a database."""
    if isinstance(location, Path):
        from kms.store.sqlite import SqliteBackend

        return SqliteBackend(location.expanduser())
    scheme = scheme_of(location)
    key = scheme or "sqlite"
    if key not in _BUILTINS:
        raise UsageError(
            f"unknown store location scheme '{scheme}'; use a file path, sqlite:///PATH or postgresql://HOST/DB"
        )
    module_name, attr = _BUILTINS[key].split(":")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory(location, credentials)


def is_database_url(location: str) -> bool:
    return scheme_of(location) not in ("", "sqlite", "file")
