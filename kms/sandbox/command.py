"""``kms sandbox``: the Tatum API double in the foreground until SIGTERM / SIGINT."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from argparse import Namespace
from types import FrameType

from kms.errors import UsageError
from kms.sandbox.approver_options import approver_from_args, approver_info
from kms.sandbox.server import Sandbox
from kms.sandbox.state import SandboxState


def daemon_hint(sandbox: Sandbox, *, api_key_set: bool) -> str:
    """A daemon command line that works against this sandbox as given (the daemon refuses to start without a key).

    A key given to the sandbox is not repeated here: it stays a placeholder the operator fills in.
    """
    api_key = "<the key given to kms sandbox --apiKey>" if api_key_set else "sandbox-key"
    return (
        f"TATUM_API_URL={sandbox.url} TATUM_API_KEY={shlex.quote(api_key)} "
        f"kms daemon --testnet --externalUrl {sandbox.approval_url}"
    )


def run(args: Namespace) -> int:
    port = int(getattr(args, "port", 0) or 0)
    if not 0 <= port <= 65535:
        raise UsageError("--port must be 0 to 65535")
    latency = float(getattr(args, "latency", 0.0) or 0.0)
    if latency < 0:
        raise UsageError("--latency must not be negative")
    state = SandboxState(api_key=getattr(args, "apiKey", None) or None, latency=latency)
    state.approval_default = getattr(args, "approval", "approve") or "approve"
    faults = getattr(args, "faults", None)
    if faults:
        try:
            state.configure({"faults": json.loads(faults)})
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"--faults: {exc}") from None
    try:
        sandbox = Sandbox(port=port, state=state)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with sandbox, approver_from_args(args) as approver:
        print(
            json.dumps(
                {
                    "url": sandbox.url,
                    "approvalUrl": sandbox.approval_url,
                    "admin": f"{sandbox.url}/_sandbox/state",
                    "hint": daemon_hint(sandbox, api_key_set=state.api_key is not None),
                    **approver_info(approver),
                }
            ),
            flush=True,
        )
        sys.stderr.write(f"kms sandbox listening on {sandbox.url} (Ctrl-C to stop)\n")
        stop.wait()
    return 0
