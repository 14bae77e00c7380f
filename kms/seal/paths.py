"""Where the unseal socket is when no path is given (the daemon and ``kms unlock`` agree on it)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

SOCKET_SETTING = "TATUM_KMS_UNSEAL_SOCKET"
ROOT_SOCKET = Path("/run/kms/unseal.sock")
USER_SOCKET = "~/.tatumrc/run/unseal.sock"


def runtime_dir_is_ours(runtime: Path, uid: int) -> bool:
    """Whether ``$XDG_RUNTIME_DIR`` may hold our socket: absent (the daemon creates it, private), or a directory of
    our own. One owned by another user is what ``su`` without ``-`` or ``sudo -E`` leaves behind; using it would send
    root's password to that user's socket."""
    try:
        st = os.stat(runtime)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid


def default_socket_path(settings: Mapping[str, str] | None = None, *, uid: int | None = None) -> Path:
    """TATUM_KMS_UNSEAL_SOCKET, else $XDG_RUNTIME_DIR/kms/unseal.sock when that directory is ours, else /run/kms
    (root) or ~/.tatumrc/run."""
    env = os.environ if settings is None else settings
    uid = os.geteuid() if uid is None else uid
    explicit = (env.get(SOCKET_SETTING) or "").strip()
    if explicit:
        return Path(os.path.expanduser(explicit))
    runtime = (env.get("XDG_RUNTIME_DIR") or "").strip()
    if runtime and runtime_dir_is_ours(Path(runtime), uid):
        return Path(runtime) / "kms" / "unseal.sock"
    if uid == 0:
        return ROOT_SOCKET
    return Path(os.path.expanduser(USER_SOCKET))
