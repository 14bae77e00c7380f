"""The shape of the sandbox's admin bodies (``POST /_sandbox/pending``, ``POST /_sandbox/config``), checked before
anything is queued or changed. Each refusal is one line naming the field; the documentation an operator reads is in
``kms sandbox --help`` (kms/cli/sandbox_help.py) and the README."""

from __future__ import annotations

from typing import Any

PENDING_REQUIRED = ("id", "chain", "serializedTransaction")
PENDING_WALLETS = ("hashes", "signatures")
CONFIG_KEYS = (
    "latency", "faults", "approval", "latestVersion", "fee", "chainIds", "estimateGas", "nonces", "nodeNonces",
    "apiKey", "solana", "nonceStep",
)  # fmt: skip
APPROVAL_KEYS = ("default", "ids", "hang")


def check_pending(body: Any) -> list[dict[str, Any]]:
    """The pending transactions in a ``POST /_sandbox/pending`` body (one object or a list); ValueError otherwise.

    Every entry is checked before any is queued: a bad one queues nothing.
    """
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ValueError("expected a pending transaction object or a non-empty list of them")
    for number, item in enumerate(items):
        where = f"pending transaction {number}" if isinstance(body, list) else "pending transaction"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for name in PENDING_REQUIRED:
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise ValueError(f"{where}: '{name}' is required (a non-empty string)")
        _check_wallets(item, f"{where} '{item['id']}'")
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("the same 'id' appears twice")
    return items


def _check_wallets(item: dict[str, Any], where: str) -> None:
    hashes = item.get("hashes")
    signatures = item.get("signatures")
    if hashes is not None and not (isinstance(hashes, list) and all(isinstance(h, str) for h in hashes)):
        raise ValueError(f"{where}: 'hashes' must be a list of signatureIds")
    if signatures is not None and not (isinstance(signatures, list) and all(isinstance(s, dict) for s in signatures)):
        raise ValueError(f'{where}: \'signatures\' must be a list of {{"id", "index"}} objects')
    if not hashes and not signatures:
        # Pending transactions are listed by the signatureIds they name: without one it would never be polled.
        raise ValueError(f"{where}: name its wallets in 'hashes' or 'signatures'")


def check_config(body: Any) -> dict[str, Any]:
    """A ``POST /_sandbox/config`` body with known keys of the right types; ValueError otherwise."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(body) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    if "latency" in body:
        _number(body["latency"], "latency")
    if "faults" in body and not (isinstance(body["faults"], list) and all(isinstance(f, dict) for f in body["faults"])):
        raise ValueError("'faults' must be a list of fault rule objects")
    if "approval" in body:
        _check_approval(body["approval"])
    for name in ("fee", "chainIds", "nonces", "solana"):
        if name in body and not isinstance(body[name], dict):
            raise ValueError(f"'{name}' must be an object")
    if "nonceStep" in body and (isinstance(body["nonceStep"], bool) or not isinstance(body["nonceStep"], int)):
        raise ValueError("'nonceStep' must be a whole number")
    if "nodeNonces" in body and not isinstance(body["nodeNonces"], bool):
        raise ValueError("'nodeNonces' must be true or false")
    if "estimateGas" in body and (isinstance(body["estimateGas"], bool) or not isinstance(body["estimateGas"], int)):
        raise ValueError("'estimateGas' must be a whole number")
    for name in ("latestVersion", "apiKey"):
        if name in body and body[name] is not None and not isinstance(body[name], str):
            raise ValueError(f"'{name}' must be a string or null")
    return body


def _check_approval(approval: Any) -> None:
    if not isinstance(approval, dict):
        raise ValueError("'approval' must be an object")
    unknown = sorted(set(approval) - set(APPROVAL_KEYS))
    if unknown:
        raise ValueError(f"unknown approval setting {', '.join(unknown)}; known: {', '.join(APPROVAL_KEYS)}")
    if "ids" in approval and not isinstance(approval["ids"], dict):
        raise ValueError("'approval.ids' must be an object of pending id to verdict")
    if "hang" in approval:
        _number(approval["hang"], "approval.hang")


def _number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"'{name}' must be a number of seconds, 0 or more")


__all__ = ["CONFIG_KEYS", "PENDING_REQUIRED", "check_config", "check_pending"]
