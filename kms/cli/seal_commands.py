"""``kms unlock`` and ``kms seal``: the operator's end of a daemon's unseal socket (kms.seal.client)."""

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
    from kms.seal import unlock as send_password

    path = _socket_path(args)
    provider = session.password_provider(args, session.load_settings(args))
    message = send_password(path, provider.fetch(), peer_uid=getattr(args, "peerUid", None))  # wipes the buffer
    output.emit({"status": message})
    return 0


def seal(args: Namespace) -> int:
    from kms.seal import seal as ask_to_seal

    output.emit({"status": ask_to_seal(_socket_path(args), peer_uid=getattr(args, "peerUid", None))})
    return 0
