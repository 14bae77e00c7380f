"""Password providers: where the store password comes from.

Every provider is one short module implementing ``PasswordProvider``; ``get_provider`` is the only place that maps
a name to an implementation (built-ins plus the ``kms.password_providers`` entry-point group), and
``backend_from_flags`` turns ``--backend NAME`` / ``--vgs`` / ``--azure`` / ``--aws`` into that name.
"""

from backends.base import (
    BUILTIN_PROVIDERS,
    ENTRY_POINT_GROUP,
    PasswordProvider,
    Settings,
    available_providers,
    backend_from_flags,
    get_provider,
)

__all__ = [
    "BUILTIN_PROVIDERS",
    "ENTRY_POINT_GROUP",
    "PasswordProvider",
    "Settings",
    "available_providers",
    "backend_from_flags",
    "get_provider",
]
