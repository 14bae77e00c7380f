"""How the CLI talks: JSON results on stdout, one-line JSON errors on stderr (upstream's shapes)."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(value: Any) -> None:
    """A result, pretty-printed as upstream's JSON.stringify(value, null, 2)."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def emit_line(value: Any) -> None:
    """A compact one-line result (upstream's batch output)."""
    sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")


def error(message: str) -> None:
    sys.stderr.write(json.dumps({"error": message}) + "\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def warn_if_secret_to_terminal() -> None:
    if sys.stdout.isatty():
        warn("this output contains secret key material; it is shown on your terminal and may stay in its scrollback")
