"""Masking of configuration values for display."""

from __future__ import annotations


def mask_api_key(value: str | None) -> str:
    """Upstream's checkconfig shape: the first and last six characters, the rest as stars."""
    if not value:
        return "N/A"
    if len(value) <= 12:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 12) + value[-6:]


def mask_secret(value: str | None) -> str:
    """Passwords and credentials: only whether they are set, not even their length. (Upstream shows the first six
    characters of each password; that is a sixth of a typical password handed to whoever reads the output.)"""
    if not value:
        return "N/A"
    return "********"
