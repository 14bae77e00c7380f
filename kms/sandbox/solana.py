"""A local double of the Solana JSON-RPC node behind Tatum's gateway (``POST /v3/blockchain/node/SOL/{apiKey}``), for
the sandbox: the calls upstream's SDK and kms's SOL signer make, answered from a small in-memory ledger.

- ``getLatestBlockhash``: the configured blockhash and ``lastValidBlockHeight``.
- ``sendTransaction``: decodes the wire transaction (solders), verifies every signature against its message and
  refuses a transaction whose blockhash is not the current one or whose height has passed (as a node would); a
  verified one is "landed" (confirmed at once unless ``confirm`` is off) and its first signature answered.
- ``getTransaction``, ``getSignatureStatuses``: what landed; ``getBlockHeight``: the configured height.

It never invents a result for anything else (a JSON-RPC error, as a real node answers an unknown method).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BLOCKHASH = "GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi"
DEFAULT_LAST_VALID_HEIGHT = 2000
SETTINGS = ("blockhash", "lastValidBlockHeight", "blockHeight", "confirm")


class RpcError(Exception):
    """A JSON-RPC error answer (``code``, one-line ``message``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SolanaNode:
    blockhash: str = DEFAULT_BLOCKHASH
    last_valid_block_height: int = DEFAULT_LAST_VALID_HEIGHT
    block_height: int = DEFAULT_LAST_VALID_HEIGHT - 150
    confirm: bool = True
    """Off: sent transactions are accepted but never confirmed (``getTransaction`` answers null)."""
    sent: list[str] = field(default_factory=list)
    """Every accepted wire transaction (base64), in order."""
    landed: dict[str, str] = field(default_factory=dict)
    """Signature (base58) -> wire transaction, for the transactions that are on chain."""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def configure(self, raw: Mapping[str, Any]) -> None:
        unknown = sorted(set(raw) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown solana setting {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
        with self.lock:
            if "blockhash" in raw:
                self.blockhash = _blockhash(raw["blockhash"])
            for name, attr in (("lastValidBlockHeight", "last_valid_block_height"), ("blockHeight", "block_height")):
                if name in raw:
                    if isinstance(raw[name], bool) or not isinstance(raw[name], int) or raw[name] < 0:
                        raise ValueError(f"'solana.{name}' must be a whole number")
                    setattr(self, attr, raw[name])
            if "confirm" in raw:
                self.confirm = bool(raw["confirm"])

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"sent": list(self.sent), "landed": sorted(self.landed), "calls": [m for m, _ in self.calls]}

    def land(self, payload: str) -> str:
        """Put a wire transaction on chain as if it had been sent before (a crash after the send); its id."""
        signature = _verified(payload)[0]
        with self.lock:
            self.landed[signature] = payload
        return signature

    def answer(self, method: str, params: Any) -> Any:
        """The ``result`` of one JSON-RPC call; RpcError for what a node would refuse."""
        params = params if isinstance(params, list) else []
        with self.lock:
            self.calls.append((method, params))
        handler = {
            "getLatestBlockhash": self._latest_blockhash,
            "sendTransaction": self._send,
            "getTransaction": self._transaction,
            "getSignatureStatuses": self._statuses,
            "getBlockHeight": lambda _: self.block_height,
        }.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found")
        return handler(params)

    def _latest_blockhash(self, params: list[Any]) -> Any:
        value = {"blockhash": self.blockhash, "lastValidBlockHeight": self.last_valid_block_height}
        return {"context": {"slot": self.block_height}, "value": value}

    def _send(self, params: list[Any]) -> str:
        if not params or not isinstance(params[0], str):
            raise RpcError(-32602, "invalid transaction: expected base64 text")
        signature, blockhash = _verified(params[0])
        with self.lock:
            if blockhash != self.blockhash or self.block_height > self.last_valid_block_height:
                raise RpcError(-32002, "Transaction simulation failed: Blockhash not found")
            self.sent.append(params[0])
            if self.confirm:
                self.landed[signature] = params[0]
        return signature

    def _transaction(self, params: list[Any]) -> Any:
        with self.lock:
            found = params and params[0] in self.landed
        return {"slot": self.block_height, "meta": {"err": None}, "transaction": {}} if found else None

    def _statuses(self, params: list[Any]) -> Any:
        ids = params[0] if params and isinstance(params[0], list) else []
        with self.lock:
            value = [
                {"slot": self.block_height, "confirmations": None, "err": None, "confirmationStatus": "finalized"}
                if isinstance(tx_id, str) and tx_id in self.landed
                else None
                for tx_id in ids
            ]
        return {"context": {"slot": self.block_height}, "value": value}


def _blockhash(value: Any) -> str:
    from solders.hash import Hash

    try:
        return str(Hash.from_string(str(value)))
    except Exception:
        raise ValueError("'solana.blockhash' must be a base58 32-byte hash") from None


def _verified(payload: str) -> tuple[str, str]:
    """(first signature, blockhash) of a wire transaction whose every signature verifies; RpcError otherwise."""
    from solders.transaction import Transaction

    try:
        tx = Transaction.from_bytes(base64.b64decode(payload, validate=True))
    except Exception:
        raise RpcError(-32602, "invalid transaction: failed to deserialize") from None
    try:
        tx.verify()
    except Exception:
        raise RpcError(-32003, "Transaction signature verification failure") from None
    return str(tx.signatures[0]), str(tx.message.recent_blockhash)
