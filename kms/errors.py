"""The error hierarchy. Every message is one line and never carries secret material."""

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
