from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.servers.postgres import postgres_server, postgres_url  # noqa: F401 - session fixtures

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
VECTORS = DATA / "vectors"
"""Vectors computed by upstream's own code (see data/vectors/README.md), kept in the checkout."""
FIXTURES = DATA / "fixtures"
"""An upstream-format wallet.dat, its password and its decrypted contents."""


def load_vectors(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"test vectors missing: {path}")
    return json.loads(path.read_text())
