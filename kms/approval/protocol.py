"""Approval protocol v2: the signed request the daemon sends and the signed answer it accepts (JWTs, PyJWT).

Request (``POST {url}``, ``Content-Type: application/jwt``, body the compact JWT), header
``{"typ": "kms-approval-request+jwt", "alg": "ES256"|"EdDSA", "kid": <sha256 of the daemon's public key>}``, claims::

    iss "kms", aud "kms-approver", jti <request id, uuid4>, iat, exp (iat + ttl),
    pendingId, chain, payloadSha256 <hex SHA-256 of the exact bytes to be signed>, intent <Intent.as_json()>

Answer (``200``, body the compact JWT, any content type), header ``typ "kms-approval-answer+jwt"``, claims::

    iss "kms-approver", aud "kms", iat, exp, requestId <the request's jti>, pendingId,
    payloadSha256 <the request's>, decision "approve" | "deny", reason <optional text>

The daemon verifies the answer with the pinned approver key and that key's algorithm only, requires every claim
above, refuses an answer past its ``exp`` or past the request's own ``exp``, and refuses a request id it has already
accepted an answer for (``ReplayCache``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from kms.approval.keys import PinnedKey, SigningKey

REQUEST_TYPE = "kms-approval-request+jwt"
ANSWER_TYPE = "kms-approval-answer+jwt"
DAEMON_ISSUER = "kms"
APPROVER_ISSUER = "kms-approver"
APPROVE, DENY = "approve", "deny"
LEEWAY_SECONDS = 5
"""Clock skew tolerated between the daemon and the approver."""
MAX_REASON = 200
ANSWER_CLAIMS = ("iss", "aud", "iat", "exp", "requestId", "pendingId", "payloadSha256", "decision")
REQUEST_CLAIMS = ("iss", "aud", "iat", "exp", "jti", "pendingId", "payloadSha256", "intent")


class AnswerRejected(Exception):
    """An answer that does not approve; ``code`` names why (``bad_signature``, ``expired``, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Request:
    request_id: str
    pending_id: str
    payload_sha256: str
    expires_at: float
    token: str


def sign_request(
    key: SigningKey,
    *,
    request_id: str,
    pending_id: str,
    chain: str,
    payload_sha256: str,
    intent: Mapping[str, Any],
    ttl: float,
    now: float | None = None,
) -> Request:
    issued = int(now if now is not None else time.time())
    expires = issued + max(1, int(ttl))
    claims = {
        "iss": DAEMON_ISSUER,
        "aud": APPROVER_ISSUER,
        "jti": request_id,
        "iat": issued,
        "exp": expires,
        "pendingId": pending_id,
        "chain": chain,
        "payloadSha256": payload_sha256,
        "intent": dict(intent),
    }
    headers = {"typ": REQUEST_TYPE, "kid": key.public.fingerprint}
    token = jwt.encode(claims, key.key, algorithm=key.algorithm, headers=headers)
    return Request(request_id, pending_id, payload_sha256, float(expires), token)


def verify_answer(token: str, approver: PinnedKey, request: Request, now: float | None = None) -> dict[str, Any]:
    """The answer's claims when it approves ``request``; AnswerRejected (with its reason code) otherwise."""
    claims = _decode(token, approver, APPROVER_ISSUER, DAEMON_ISSUER, ANSWER_TYPE, ANSWER_CLAIMS)
    moment = time.time() if now is None else now
    if claims.get("requestId") != request.request_id:
        raise AnswerRejected("other_request", "the answer names another request id")
    if claims.get("pendingId") != request.pending_id:
        raise AnswerRejected("other_request", "the answer names another pending transaction")
    if claims.get("payloadSha256") != request.payload_sha256:
        raise AnswerRejected("other_digest", "the answer approves other bytes than the ones to be signed")
    if moment > request.expires_at + LEEWAY_SECONDS:
        raise AnswerRejected("expired", "the answer arrived after the request expired")
    decision = claims.get("decision")
    if decision == DENY:
        raise AnswerRejected("denied", _reason_text(claims.get("reason")) or "the approver denied it")
    if decision != APPROVE:
        raise AnswerRejected("bad_answer", "the answer's decision is neither approve nor deny")
    return claims


def verify_request(token: str, daemon: PinnedKey | None) -> dict[str, Any]:
    """The approver's side: the request's claims, verified against the pinned daemon key (``None``: signature not
    checked, for a sandbox that has not pinned the daemon yet). Raises AnswerRejected."""
    return _decode(token, daemon, DAEMON_ISSUER, APPROVER_ISSUER, REQUEST_TYPE, REQUEST_CLAIMS)


def sign_answer(
    key: SigningKey, request_claims: Mapping[str, Any], decision: str, reason: str = "", ttl: float = 30.0
) -> str:
    issued = int(time.time())
    claims = {
        "iss": APPROVER_ISSUER,
        "aud": DAEMON_ISSUER,
        "iat": issued,
        "exp": issued + int(ttl),
        "requestId": request_claims.get("jti"),
        "pendingId": request_claims.get("pendingId"),
        "payloadSha256": request_claims.get("payloadSha256"),
        "decision": decision,
    }
    if reason:
        claims["reason"] = reason[:MAX_REASON]
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers={"typ": ANSWER_TYPE})


def _decode(
    token: str, key: PinnedKey | None, issuer: str, audience: str, token_type: str, required: tuple[str, ...]
) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != token_type:
            raise AnswerRejected("bad_answer", f"the token is not a {token_type}")
        if key is None:
            claims = jwt.decode(token, options={"verify_signature": False, "require": list(required)})
        else:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(required)},
            )
    except jwt.ExpiredSignatureError:
        raise AnswerRejected("expired", "the token has expired") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise AnswerRejected("bad_signature", "the token is not signed by the pinned key") from None
    except jwt.DecodeError:
        raise AnswerRejected("bad_answer", "the token does not decode") from None
    except jwt.InvalidTokenError as exc:
        raise AnswerRejected("bad_answer", f"the token's claims are invalid ({type(exc).__name__})") from None
    return claims


def _reason_text(raw: object) -> str:
    if not isinstance(raw, str):
        return ""
    return "".join(ch if ch.isprintable() else "?" for ch in raw[:MAX_REASON])


class ReplayCache:
    """Request ids whose answer was accepted, each kept until it expires; at most ``capacity`` (the oldest go first).
    An id already here is refused as replayed, so an approval is used at most once."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, request_id: str, until: float, now: float | None = None) -> bool:
        """Record ``request_id``; False when it was already recorded (a replay)."""
        moment = time.time() if now is None else now
        with self._lock:
            while self._entries:
                oldest, expiry = next(iter(self._entries.items()))
                if expiry >= moment and len(self._entries) < self._capacity:
                    break
                del self._entries[oldest]
            if request_id in self._entries:
                return False
            self._entries[request_id] = until
            return True

    def __len__(self) -> int:
        return len(self._entries)
