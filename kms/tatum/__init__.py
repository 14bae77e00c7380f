"""Client of the Tatum API endpoints the daemon uses."""

from kms.errors import MalformedResponseError, TatumHttpError, TatumUnavailableError
from kms.tatum.client import DEFAULT_API_URL, MAX_SIGNATURE_IDS, BroadcastResult, PendingBatch, TatumClient
from kms.tatum.gateway import TatumGateway
from kms.tatum.retry import RetryingTransport, RetryPolicy

__all__ = [
    "DEFAULT_API_URL",
    "MAX_SIGNATURE_IDS",
    "BroadcastResult",
    "MalformedResponseError",
    "PendingBatch",
    "RetryPolicy",
    "RetryingTransport",
    "TatumClient",
    "TatumGateway",
    "TatumHttpError",
    "TatumUnavailableError",
]
