"""Password providers: where the store password comes from.

Every provider is one short module implementing ``PasswordProvider``; ``get_provider`` is the only place that maps
a name to an implementation (built-ins plus the ``kms.password_providers`` entry-point group).
"""

from backends.base import PasswordProvider, Settings, available_providers, get_provider

__all__ = ["PasswordProvider", "Settings", "available_providers", "get_provider"]
