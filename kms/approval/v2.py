"""Approval protocol v2 on the daemon's side: ``ApprovalV2.check(pending, intent, payload_sha256) -> Decision``.

Ordering the daemon must keep (the payload signed is the one approved): decode the intent, evaluate the local
policy, then do **every** look-up that shapes the bytes (EVM nonce, gas price and limit, chain id; SOL blockhash;
...), compute the exact bytes to be signed and their SHA-256, and only then call ``check``. Nothing may change those
bytes afterwards: sign exactly them, or, if the signer only yields the signed transaction, sign before asking, ask
with the digest of that signed transaction, and broadcast it only when approved (a refused one is dropped, never
sent). An unknown intent is refused here unless ``allow_unknown`` (the local policy's ``allow_unknown``).

Verdicts (``kms.daemon.four_eye.Decision``): a signed ``deny`` from the pinned approver is ``REFUSED`` (final, like
upstream's 4xx). Everything else that is not a valid approval is ``UNAVAILABLE`` (not signed now, asked again next
cycle with a new request id): an answer nobody can prove came from the approver (tampered, other key, bad JSON,
redirect, oversized, timeout, 5xx) must not be able to make a final refusal either. ``Decision.reason`` starts with
a stable code (``denied:``, ``bad_signature:``, ``other_digest:``, ``expired:``, ``replayed:``, ``other_request:``,
``bad_answer:``, ``timeout:``, ``redirect:``, ``oversized:``, ``unreachable:``, ``http_status:``,
``unknown_intent:``) followed by one line for the batch report and the audit log; it never quotes the answer body.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping

import httpx

from kms.api import PendingTransaction
from kms.approval.intent import Intent
from kms.approval.keys import PinnedKey, SigningKey, load_pinned_key, load_signing_key
from kms.approval.protocol import AnswerRejected, ReplayCache, Request, sign_request, verify_answer
from kms.daemon.four_eye import Decision, Verdict
from kms.errors import UsageError
from kms.http_limits import CompressedAnswerError, HttpLimits, LimitedTransport, ResponseTooLargeError
from kms.tatum.proxy import transport_for

log = logging.getLogger("kms.approval")

DEFAULT_TIMEOUT = 30.0
"""Total seconds for one approval exchange (Fireblocks' co-signer window)."""
MAX_ANSWER_BYTES = 16 * 1024
APPROVAL_URL = "TATUM_KMS_APPROVAL_URL"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ApprovalV2:
    """Thread-safe (one httpx.Client, a locked replay cache)."""

    def __init__(
        self,
        url: str,
        key: SigningKey,
        approver: PinnedKey,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        allow_unknown: bool = False,
        replay_cache: ReplayCache | None = None,
        request_ids: Callable[[], str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError("the approval v2 URL must be http(s)://")
        self.url = url
        self.key = key
        self.approver = approver
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.allow_unknown = allow_unknown
        self.replays = replay_cache or ReplayCache()
        self._request_ids = request_ids or (lambda: str(uuid.uuid4()))
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        # The one limits module: a total deadline for the whole exchange and a cap on the answer while it streams.
        transport = LimitedTransport(transport_for(url, limits), HttpLimits(max_answer_bytes, timeout))
        self._http = httpx.Client(follow_redirects=False, trust_env=False, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, str], url: str | None = None, approver_key: str | None = None, **options: object
    ) -> ApprovalV2:
        """From ``TATUM_KMS_APPROVAL_URL`` (or ``url``), the daemon's key and the pinned approver key (see keys)."""
        target = url or (settings.get(APPROVAL_URL) or "").strip()
        if not target:
            raise UsageError(f"approval v2 needs the approver's URL: --approval-url or {APPROVAL_URL}")
        return cls(target, load_signing_key(settings), load_pinned_key(settings, approver_key), **options)  # type: ignore[arg-type]

    def check(
        self, pending: PendingTransaction, intent: Intent, payload_sha256: str, *, unknown_allowed: bool | None = None
    ) -> Decision:
        """Ask the approver about these exact bytes. Call only once they are final (see the module docstring).
        ``unknown_allowed`` (the local policy's ``allows_unknown(chain)``) overrides ``allow_unknown``."""
        allowed = self.allow_unknown if unknown_allowed is None else unknown_allowed
        if not intent.known and not allowed:
            return Decision(Verdict.REFUSED, f"unknown_intent: {intent.unknown_reason or 'not decodable'}")
        if not _SHA256_HEX.fullmatch(payload_sha256 or ""):
            return _unavailable("bad_request", "the payload digest is not a hex SHA-256")  # the caller's bug
        request = sign_request(
            self.key,
            request_id=self._request_ids(),
            pending_id=pending.id,
            chain=intent.chain,
            payload_sha256=payload_sha256,
            intent=intent.with_payload(payload_sha256).as_json(),
            ttl=self.timeout,
        )
        try:
            answer = self._http.post(
                self.url,
                content=request.token.encode(),
                headers={"content-type": "application/jwt", "accept": "application/jwt"},
            )
        except httpx.TimeoutException:  # the total deadline (DeadlineExceededError) included
            return _unavailable("timeout", "the approver did not answer in time")
        except ResponseTooLargeError:
            return _unavailable("oversized", f"the answer is larger than {self.max_answer_bytes} bytes")
        except CompressedAnswerError:
            return _unavailable("bad_answer", "the answer is not a compact JWT (it came compressed)", 200)
        except httpx.HTTPError as exc:
            return _unavailable("unreachable", f"the approver is unreachable ({type(exc).__name__})")
        status = answer.status_code
        if 300 <= status < 400:
            return _unavailable("redirect", f"the approver redirected (HTTP {status}); not followed", status)
        if status != 200:
            return _unavailable("http_status", f"the approver answered HTTP {status}", status)
        return self._judge(answer.content, request)

    def _judge(self, body: bytes, request: Request) -> Decision:
        try:
            token = body.decode("ascii").strip()
        except UnicodeDecodeError:
            return _unavailable("bad_answer", "the answer is not a compact JWT", 200)
        try:
            claims = verify_answer(token, self.approver, request)
        except AnswerRejected as rejected:
            if rejected.code == "denied":
                return Decision(Verdict.REFUSED, str(rejected), 200)
            return _unavailable(rejected.code, rejected.detail, 200)
        until = max(float(claims["exp"]), request.expires_at)
        if not self.replays.claim(request.request_id, until):
            return _unavailable("replayed", "an answer for this request id was already used", 200)
        return Decision(Verdict.APPROVED, f"approved: request {request.request_id}", 200)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApprovalV2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unavailable(code: str, detail: str, status: int | None = None) -> Decision:
    return Decision(Verdict.UNAVAILABLE, f"{code}: {detail}", status)


__all__ = ["APPROVAL_URL", "DEFAULT_TIMEOUT", "MAX_ANSWER_BYTES", "ApprovalV2"]
