"""The sandbox's in-memory world: pending queue, what was broadcast and reported, approvals, faults. Thread-safe."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kms.sandbox.solana import SolanaNode

APPROVAL_VERDICTS = ("approve", "deny", "notfound", "error", "timeout")
FAULT_KINDS = ("status", "reset", "malformed", "wrongshape", "delay", "trickle")


@dataclass
class FaultRule:
    """Applies to requests whose path starts with ``path`` (and method / body signatureId, when given), ``times``
    times (-1: always). ``status`` answers with that status (``retryAfter`` adds the header); ``reset`` drops the
    connection with a TCP reset; ``malformed`` answers 200 with a body that is not JSON; ``wrongshape`` answers 200
    with JSON of the wrong shape; ``delay`` waits ``seconds`` and then serves the request normally; ``trickle``
    serves the request normally but sends the answer one byte every ``seconds``."""

    kind: str
    path: str = "/v3/"
    method: str | None = None
    signature_id: str | None = None
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    times: int = 1
    hits: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        kind = str(raw.get("kind", "status"))
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        return cls(
            kind=kind,
            path=str(raw.get("path", "/v3/")),
            method=str(raw["method"]).upper() if raw.get("method") else None,
            signature_id=str(raw["signatureId"]) if raw.get("signatureId") else None,
            status=int(raw.get("status", 503)),
            retry_after=float(raw["retryAfter"]) if raw.get("retryAfter") is not None else None,
            seconds=float(raw.get("seconds", 0.0)),
            times=int(raw.get("times", 1)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "method": self.method,
            "signatureId": self.signature_id,
            "status": self.status,
            "retryAfter": self.retry_after,
            "seconds": self.seconds,
            "times": self.times,
            "hits": self.hits,
        }

    def matches(self, method: str, path: str, signature_id: str | None) -> bool:
        if self.times == 0 or not path.startswith(self.path):
            return False
        if self.method and self.method != method:
            return False
        return not (self.signature_id and self.signature_id != signature_id)


@dataclass
class SandboxState:
    api_key: str | None = None
    latency: float = 0.0
    approval_default: str = "approve"
    approval_overrides: dict[str, str] = field(default_factory=dict)
    approval_hang: float = 30.0
    latest_version: str | None = None
    fee: dict[str, str] = field(
        default_factory=lambda: {"slow": "10000000000", "medium": "20000000000", "fast": "30000000000"}
    )
    chain_ids: dict[str, int] = field(default_factory=lambda: {"ethereum": 11155111})
    estimate_gas: int = 21000
    nonces: dict[str, int] = field(default_factory=dict)
    node_nonces: bool = False
    """Count like a node: an account's transaction count is its configured nonce plus the accepted EVM broadcasts
    that follow it without a gap (off: the configured nonce, always)."""
    accepted_nonces: dict[str, set[int]] = field(default_factory=dict)
    nonce_step: int = 0
    """Added to an address's nonce after every look-up of it: a signer that looks twice gets two answers (a re-sign
    after a crash would make a different payload)."""
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[FaultRule] = field(default_factory=list)
    solana: SolanaNode = field(default_factory=SolanaNode)
    requests: Counter[str] = field(default_factory=Counter)
    inflight: Counter[str] = field(default_factory=Counter)
    peak_inflight: Counter[str] = field(default_factory=Counter)
    generation: int = 0
    """Bumped by reset(): a request that started before a reset (e.g. one held by a delay fault) must not write
    into the fresh state."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- admin ------------------------------------------------------------------------------------------------------

    def enqueue(self, items: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.lock:
            for raw in items:
                item = dict(raw)
                item.setdefault("id", str(uuid.uuid4()))
                # The admin API checks the shape (admin_api.check_pending); this is the queue's own minimum.
                if not isinstance(item.get("chain"), str):
                    raise ValueError("a pending transaction needs a 'chain'")
                item["chain"] = str(item["chain"]).upper()
                item.setdefault("hashes", [])
                self.pending[str(item["id"])] = item
                ids.append(str(item["id"]))
        return ids

    def configure(self, raw: dict[str, Any]) -> None:
        with self.lock:
            if "latency" in raw:
                self.latency = float(raw["latency"])
            if "faults" in raw:
                self.faults = [FaultRule.from_json(rule) for rule in raw["faults"]]
            if "approval" in raw:
                approval = raw["approval"]
                default = approval.get("default", self.approval_default)
                overrides = {str(k): str(v) for k, v in approval.get("ids", {}).items()}
                for verdict in [default, *overrides.values()]:
                    if verdict not in APPROVAL_VERDICTS:
                        raise ValueError(f"unknown approval verdict {verdict!r}; one of {', '.join(APPROVAL_VERDICTS)}")
                self.approval_default = default
                self.approval_overrides.update(overrides)
                self.approval_hang = float(approval.get("hang", self.approval_hang))
            if "latestVersion" in raw:
                self.latest_version = raw["latestVersion"] or None
            if "fee" in raw:
                self.fee = {str(k): str(v) for k, v in raw["fee"].items()}
            if "chainIds" in raw:
                self.chain_ids.update({str(k): int(v) for k, v in raw["chainIds"].items()})
            if "estimateGas" in raw:
                self.estimate_gas = int(raw["estimateGas"])
            if "nonceStep" in raw:
                self.nonce_step = int(raw["nonceStep"])
            if "nonces" in raw:
                self.nonces.update({str(k).lower(): int(v) for k, v in raw["nonces"].items()})
            if "nodeNonces" in raw:
                self.node_nonces = bool(raw["nodeNonces"])
            if "apiKey" in raw:
                self.api_key = raw["apiKey"] or None
            if "solana" in raw:
                self.solana.configure(raw["solana"])

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(
                {
                    "pending": list(self.pending.values()),
                    "completed": list(self.completed.values()),
                    "broadcasts": self.broadcasts,
                    "attempts": self.attempts,
                    "errors": self.errors,
                    "approvals": self.approvals,
                    "polls": self.polls,
                    "faults": [rule.as_json() for rule in self.faults],
                    "requests": dict(self.requests),
                    "peakInflight": dict(self.peak_inflight),
                    "approval": {"default": self.approval_default, "ids": self.approval_overrides},
                    "latency": self.latency,
                    "nonceStep": self.nonce_step,
                }
            ) | {"solana": self.solana.snapshot()}

    def reset(self) -> None:
        with self.lock:
            fresh = SandboxState(api_key=self.api_key, generation=self.generation + 1)
            for name in fresh.__dataclass_fields__:
                if name != "lock":
                    setattr(self, name, getattr(fresh, name))

    # -- the API side -----------------------------------------------------------------------------------------------

    def take_fault(self, method: str, path: str, signature_id: str | None) -> FaultRule | None:
        with self.lock:
            for rule in self.faults:
                if rule.matches(method, path, signature_id):
                    if rule.times > 0:
                        rule.times -= 1
                    rule.hits += 1
                    return copy.copy(rule)
        return None

    def count(self, key: str) -> None:
        with self.lock:
            self.requests[key] += 1

    def enter(self, key: str) -> None:
        with self.lock:
            self.inflight[key] += 1
            self.peak_inflight[key] = max(self.peak_inflight[key], self.inflight[key])

    def leave(self, key: str) -> None:
        with self.lock:
            self.inflight[key] = max(0, self.inflight[key] - 1)

    def pending_for(self, chain: str, signature_ids: list[str], client_version: str | None) -> list[dict[str, Any]]:
        wanted = set(signature_ids)
        with self.lock:
            self.polls.append({"chain": chain, "count": len(signature_ids), "clientVersion": client_version})
            found = []
            for item in self.pending.values():
                if item["chain"] != chain:
                    continue
                names = set(item.get("hashes") or []) | {
                    s.get("id") for s in item.get("signatures") or [] if isinstance(s, dict)
                }
                if names & wanted:
                    found.append(copy.deepcopy(item))
            return found

    def record_attempt(self, path: str, body: Any) -> None:
        with self.lock:
            self.attempts.append({"path": path, "body": body, "time": time.time()})

    def broadcast(self, path: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        signature_id = str(body.get("signatureId", ""))
        tx_data = body.get("txData")
        tx_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{route}:{tx_data}").hex
        sender_nonce = _evm_sender_nonce(tx_data) if self.node_nonces and route in self.chain_ids else None
        with self.lock:
            if sender_nonce is not None:
                self.accepted_nonces.setdefault(sender_nonce[0], set()).add(sender_nonce[1])
            self.broadcasts.append(
                {"path": path, "route": route, "signatureId": signature_id, "txData": tx_data, "txId": tx_id,
                 "withdrawalId": body.get("withdrawalId"), "currency": body.get("currency"), "time": time.time()}
            )  # fmt: skip
            item = self.pending.pop(signature_id, None)
            if item is not None:
                item["txId"] = tx_id
                self.completed[signature_id] = item
        return {"txId": tx_id, "completed": item is not None}

    def report(self, errors: list[Any]) -> None:
        with self.lock:
            for entry in errors:
                self.errors.append({"signatureId": entry.get("signatureId"), "error": entry.get("error")})

    def approval_for(self, pending_id: str, method: str, body: Any) -> tuple[str, float]:
        with self.lock:
            self.approvals.append({"id": pending_id, "method": method, "body": body, "time": time.time()})
            return self.approval_overrides.get(pending_id, self.approval_default), self.approval_hang

    def get(self, pending_id: str) -> dict[str, Any] | None:
        with self.lock:
            item = self.pending.get(pending_id) or self.completed.get(pending_id)
            return copy.deepcopy(item) if item is not None else None

    def delete(self, pending_id: str) -> bool:
        with self.lock:
            return self.pending.pop(pending_id, None) is not None

    def complete(self, pending_id: str, tx_id: str) -> bool:
        with self.lock:
            item = self.pending.pop(pending_id, None)
            if item is None:
                return False
            item["txId"] = tx_id
            self.completed[pending_id] = item
            return True

    def nonce(self, address: str) -> int:
        with self.lock:
            count = self.nonces.get(address.lower(), 0)
            if self.nonce_step:
                self.nonces[address.lower()] = count + self.nonce_step
            accepted = self.accepted_nonces.get(address.lower(), set())
            while count in accepted:
                count += 1
            return count


def _evm_sender_nonce(tx_data: object) -> tuple[str, int] | None:
    """(sender in lower case, nonce) of a signed legacy or type-2 EVM transaction; None when it is not one."""
    if not isinstance(tx_data, str) or not tx_data.startswith("0x"):
        return None
    try:
        import rlp

        from kms.recursion import imports_keeping_recursion_limit

        with imports_keeping_recursion_limit():  # the sandbox runs inside `kms demo`, beside the daemon's parsers
            from eth_account import Account

        raw = bytes.fromhex(tx_data[2:])
        fields = rlp.decode(raw[1:]) if raw[:1] == b"\x02" else rlp.decode(raw)
        nonce = int.from_bytes(fields[1] if raw[:1] == b"\x02" else fields[0], "big")
        return str(Account.recover_transaction(raw)).lower(), nonce
    except Exception:  # not an EVM transaction: nothing to count
        return None
