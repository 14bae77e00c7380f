"""Test doubles for the signers of kms.signing: pending transactions and key handles from upstream's vectors, and a
NodeGateway that answers from a script and records every call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kms.api import PendingTransaction
from kms.errors import TatumApiError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle

API_KEY = "test-api-key"


def pending_of(vector: Mapping[str, Any], serialized: str | None = None, **extra: Any) -> PendingTransaction:
    pending = vector["input"]["pending"]
    return PendingTransaction(
        id=pending["id"],
        chain=pending["chain"],
        serialized_transaction=pending["serializedTransaction"] if serialized is None else serialized,
        hashes=tuple(pending.get("hashes", ())),
        index=pending.get("index"),
        raw=pending,
        **extra,
    )


def handle(raw: SecretBuffer, signature_id: str = "wallet-1", index: int | None = None) -> KeyHandle:
    return KeyHandle(signature_id, raw, index)


@dataclass
class RpcCall:
    path: str
    method: str
    params: Any


@dataclass
class ScriptedGateway:
    """Answers ``node_rpc`` from ``answers`` (method -> value, or callable(params) -> value; an exception instance is
    raised), records every call; any other look-up fails the test."""

    answers: dict[str, Any]
    testnet: bool = True
    calls: list[RpcCall] = field(default_factory=list)

    def node_rpc(self, path: str, method: str, params: Sequence[Any] | Mapping[str, Any], *, what: str) -> Any:
        assert what, "every look-up names itself for error messages"
        self.calls.append(RpcCall(path.replace("{apiKey}", API_KEY), method, params))
        if method not in self.answers:
            raise AssertionError(f"unexpected JSON-RPC call {method}")
        answer = self.answers[method]
        if isinstance(answer, BaseException):
            raise answer
        return answer(params) if callable(answer) else answer

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def tatum_get(self, path: str, *, what: str) -> Any:
        raise AssertionError("unexpected Tatum API call")

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        raise AssertionError("unexpected Tatum API call")

    def external_get(self, url: str, *, what: str) -> Any:
        raise AssertionError("unexpected external call")

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        raise AssertionError("unexpected external call")


def gateway_error(message: str) -> TatumApiError:
    return TatumApiError(message)


def sequence(*answers: Any) -> Callable[[Any], Any]:
    """An answer that is each of ``answers`` in turn (the last one repeats)."""
    remaining = list(answers)

    def answer(params: Any) -> Any:
        value = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(value, BaseException):
            raise value
        return value

    return answer


def raw_key(code: str, text: str, *, kind: str = "privateKey", index: int | None = None, testnet: bool = True) -> Any:
    """The raw signing key the chain module decodes from a stored secret (``kind`` "mnemonic" derives at ``index``)."""
    from kms.chains import get_chain

    return get_chain(code).raw_signing_key(SecretBuffer(text), kind, index, testnet)
