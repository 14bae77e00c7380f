"""``kms unlock`` and ``kms seal``: the operator's end of a daemon's unseal socket (kms.seal)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from kms.cli import output, session


def _socket_path(args: Namespace) -> Path:
    from kms.seal import default_socket_path

    given = getattr(args, "socket", None)
    return Path(given).expanduser() if given else default_socket_path(session.load_settings(args))


def unlock(args: Namespace) -> int:
    """The password comes from the chosen backend (a no-echo prompt by default) and goes straight to the socket."""
    from kms import seal

    path = _socket_path(args)
    provider = session.password_provider(args, session.load_settings(args))
    message = seal.unlock(path, provider.fetch())  # wipes the buffer
    output.emit({"status": message})
    return 0


def seal(args: Namespace) -> int:
    from kms import seal as seal_module

    output.emit({"status": seal_module.seal(_socket_path(args))})
    return 0
