"""Store-specific refinements of kms.errors.StoreError (each message is one line and carries no secret)."""

from __future__ import annotations

from kms.errors import StoreError


class StoreMissingError(StoreError):
    """There is no store at the path and the caller did not ask to create one."""


class WeakKdfError(StoreError):
    """The store's KDF parameters are below the minimum kms accepts (only tests may pass allow_weak_kdf=True)."""


class ImportConflictError(StoreError):
    """An imported signatureId already exists in the store with different content; nothing was imported."""


class JournalConflictError(StoreError):
    """A pending transaction already has a different signed txData in the journal; it is never overwritten."""


class JournalStateError(StoreError):
    """The journal's state for a pending id does not allow this change (say, signing an id that is refused or held)."""


class DaemonLockedError(StoreError):
    """Another daemon holds the store's daemon lock; the message says who (pid, host, since when)."""


class InvalidWalletError(StoreError):
    """A wallet record handed to the store is malformed (bad chain code, field name or value type)."""


class DuplicateKeyError(StoreError):
    """A write clashed with a row already stored under the same key (a unique constraint)."""


class StoreUnavailableError(StoreError):
    """The store's database server could not be reached; nothing was written. Retried at the next use."""


class ClaimLostError(StoreError):
    """This replica no longer holds the claim on a pending transaction; it must neither journal nor broadcast it."""
