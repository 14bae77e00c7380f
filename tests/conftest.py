from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VECTORS = SHARED / "vectors"
FIXTURES = SHARED / "fixtures"


def load_vectors(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"test vectors missing: {path} (CI keeps shared/ beside the checkout)")
    return json.loads(path.read_text())
