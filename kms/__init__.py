"""kms: a hardened key-management daemon for the Tatum API."""

__version__ = "0.1.0"
# Reported to the Tatum API in x-ttm-kms-client-version; upstream's header format.
CLIENT_VERSION = "8.0.1"
