"""The error hierarchy, in one module. Every message is one line and never carries secret material.

    KmsError                       (exit code 1; its message is safe to print)
    ├── UsageError                 a bad flag, argument or value (exit code 2)
    ├── StoreError
    │   ├── WrongPasswordError, NotAStoreError, UpstreamStoreError, TamperedRecordError, WalletNotFoundError,
    │   │   LimitExceededError
    │   ├── StoreMissingError, WeakKdfError, ImportConflictError, InvalidWalletError, DuplicateKeyError,
    │   │   StoreUnavailableError, DaemonLockedError
    │   └── JournalConflictError, JournalStateError, ClaimLostError   (the signing journal and its claims)
    ├── ChainError
    │   ├── UnknownChainError, InvalidKeyError, WalletKindError
    ├── SigningError               nothing was signed
    │   └── KeyResolutionError     the pending transaction's wallets cannot give the keys it asks for
    ├── UntrustedJsonError         JSON from outside refused (not JSON, too large, nested too deep)
    ├── ProviderError              a password provider could not produce the password
    │   └── TransientProviderError
    ├── TatumApiError              the Tatum API, a node gateway or the approval server answered badly or not at all
    │   ├── TatumHttpError, TatumUnavailableError, MalformedResponseError
    ├── SealError                  the unseal socket could not be used
    └── AuditLogError              the audit log cannot be opened or appended to

Module-private exceptions that steer control flow inside one module (retry markers, parse failures turned into one
of the above before they leave it) are not part of the hierarchy.
"""

from __future__ import annotations


class KmsError(Exception):
    """Base of every error kms raises on purpose; its message is safe to print."""

    exit_code: int = 1


class UsageError(KmsError):
    """A bad flag, argument or value supplied by the operator."""

    exit_code = 2


class StoreError(KmsError):
    """The wallet store cannot be opened or written."""


class WrongPasswordError(StoreError):
    def __init__(self, message: str = "wrong password or damaged store") -> None:
        super().__init__(message)


class NotAStoreError(StoreError):
    """The file at the store path is not a kms store (it is never overwritten)."""


class UpstreamStoreError(StoreError):
    """The file at the store path is an upstream tatum-kms wallet.dat that has not been migrated."""


class TamperedRecordError(StoreError):
    def __init__(self, signature_id: str) -> None:
        super().__init__(f"record for signatureId '{signature_id}' failed authentication: the store was tampered with")
        self.signature_id = signature_id


class WalletNotFoundError(StoreError):
    def __init__(self, signature_id: str) -> None:
        super().__init__(f"No such wallet for signatureId '{signature_id}'.")
        self.signature_id = signature_id


class LimitExceededError(StoreError):
    """Writing would take a chain over the per-chain signatureId limit."""


class ChainError(KmsError):
    """A chain operation failed: unknown chain, invalid key or address, unsupported operation."""


class UnknownChainError(ChainError):
    pass


class InvalidKeyError(ChainError):
    pass


class WalletKindError(ChainError):
    """An operation asked for a kind of wallet (mnemonic / private key) that this wallet is not."""


class UntrustedJsonError(KmsError):
    """JSON from outside kms was refused: not JSON, too large, or nested too deep (see kms.bounded_json)."""


class SigningError(KmsError):
    """A pending transaction could not be signed; nothing was signed."""


class ProviderError(KmsError):
    """A password provider could not produce the password."""


class TransientProviderError(ProviderError):
    """A failure worth retrying (timeout, connection error, 5xx, throttling)."""


class TatumApiError(KmsError):
    """The Tatum API (or the approval server) answered badly or not at all."""


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


class KeyResolutionError(SigningError):
    """The pending transaction's wallets cannot give the keys it asks for; nothing was signed."""


class SealError(KmsError):
    """The unseal socket could not be used: nothing listening, unsafe permissions, refused peer, bad answer."""


class AuditLogError(KmsError):
    """The audit log cannot be opened or appended to (its message names the file, never a secret)."""


_EXCERPT = 300


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A printable one-line excerpt of a server's answer."""
    flat = " ".join(text.split())
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class TatumHttpError(TatumApiError):
    """The API answered with a status that is not 2xx (after any retries)."""

    def __init__(self, operation: str, status: int, body: str) -> None:
        detail = f": {excerpt(body)}" if body.strip() else ""
        super().__init__(f"{operation}: HTTP {status}{detail}")
        self.operation = operation
        self.status = status
        self.body = excerpt(body, 2000)


class TatumUnavailableError(TatumApiError):
    """No answer at all: connection refused or reset, timeout (after the retries)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: no answer from the Tatum API ({reason})")
        self.operation = operation


class MalformedResponseError(TatumApiError):
    """A 2xx answer whose body is not JSON or not of the documented shape."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: malformed response ({reason})")
        self.operation = operation
