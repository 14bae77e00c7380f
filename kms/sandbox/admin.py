"""A small client of the sandbox's admin API (tests, the demo, the bench)."""

from __future__ import annotations

from typing import Any

import httpx


class SandboxAdmin:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        # The sandbox is on loopback: never through a proxy named in the environment.
        self._http = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def enqueue(self, pending: dict[str, Any] | list[dict[str, Any]], *, unchecked: bool = False) -> list[str]:
        """Queue pending transactions; ``unchecked`` queues malformed ones as given (to test the daemon with them)."""
        params = {"unchecked": "1"} if unchecked else None
        response = self._http.post("/_sandbox/pending", json=pending, params=params)
        response.raise_for_status()
        ids: list[str] = response.json()["ids"]
        return ids

    def configure(self, **settings: Any) -> None:
        response = self._http.post("/_sandbox/config", json=settings)
        response.raise_for_status()

    def state(self) -> dict[str, Any]:
        response = self._http.get("/_sandbox/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def reset(self) -> None:
        self._http.post("/_sandbox/reset").raise_for_status()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
