"""kms: a hardened key-management daemon for the Tatum API."""

__version__ = "0.1.0"
