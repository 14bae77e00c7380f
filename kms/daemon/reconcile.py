"""Reconciling the signing journal at start (issue 15, items 6 and 7).

With the audit log: every pending id the log records as signed (a decision or broadcast record carrying a
``payloadSha256``) that the journal does not know is ``held``: the store file was restored or rolled back to a copy
older than that signing, and signing the id again could put a second, different payload on chain. A held id is never
signed until an operator runs ``kms journal release``; a signing the operator released (``was_released``) does not
hold the id again.

With the Tatum API: entries still ``signed`` (the process died between the broadcast and the status update) are asked
about with ``GET /v3/kms/{id}``: one the API completed (it carries a ``txId``) becomes ``completed``; one it no longer
knows becomes ``failed`` (a later poll that hands the id out again re-sends the same journaled payload); one still
pending stays ``signed`` (its reconciliation time is set) and is re-sent with its journaled payload when polled.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kms.errors import KmsError, StoreError, TatumHttpError
from kms.store.journal import JournalState, SigningJournal, check_pending_id

log = logging.getLogger("kms.daemon")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_LINE = 1 << 20
_SIGNING_RECORDS = ("decision", "broadcast")


def audited_signings(path: Path) -> Iterator[tuple[str, str, str]]:
    """(pending id, chain, payload SHA-256) of every signing the audit log at ``path`` records, in order. Lines that
    are not such records (or not JSON: a torn last line) are passed over; ``kms audit verify`` judges the chain."""
    with path.open("rb") as lines:
        for line in lines:
            if len(line) > _MAX_LINE or b"payloadSha256" not in line:
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict) or record.get("record") not in _SIGNING_RECORDS:
                continue
            pending_id, digest = record.get("pendingId"), record.get("payloadSha256")
            if isinstance(pending_id, str) and isinstance(digest, str) and _SHA256.fullmatch(digest):
                yield pending_id, str(record.get("chain") or ""), digest


def hold_audited(journal: SigningJournal, audit_path: Path) -> list[str]:
    """Hold every id the audit log shows signed and the journal does not know (unless that signing was released).
    Returns the ids held now. A missing audit log holds nothing (a first start)."""
    if not audit_path.is_file():
        return []
    signed: dict[str, tuple[str, list[str]]] = {}
    for pending_id, chain, digest in audited_signings(audit_path):
        digests = signed.setdefault(pending_id, (chain, []))[1]
        if digest not in digests:
            digests.append(digest)
    held = []
    for pending_id, (chain, digests) in signed.items():
        try:
            check_pending_id(pending_id)
        except StoreError:
            continue
        if journal.lookup(pending_id) is not None:
            continue
        unreleased = [d for d in digests if not journal.was_released(pending_id, d)]
        if not unreleased:
            continue
        reason = (
            f"the audit log records it signed (payload sha256 {unreleased[-1][:16]}...) but the journal does not:"
            " restored or rolled-back store? not signed until released"
        )
        journal.hold(pending_id, reason, chain=chain, payload_sha256=unreleased[-1])
        log.error("pending transaction %s held: %s", pending_id, reason)
        held.append(pending_id)
    return held


def reconcile_stuck(journal: SigningJournal, lookup: Callable[[str], Any], older_than_s: float = 0.0) -> int:
    """Ask the Tatum API (``lookup``: TatumClient.get_pending_transaction) about every entry still ``signed``; mark
    what it says. Returns how many entries changed state. An API failure leaves the entry as it is."""
    changed = 0
    for entry in journal.stuck(older_than_s):
        try:
            body = lookup(entry.pending_id)
        except TatumHttpError as exc:
            if exc.status != 404:
                log.warning("cannot reconcile %s with the Tatum API: %s", entry.pending_id, exc)
                continue
            body = None
        except KmsError as exc:
            log.warning("cannot reconcile %s with the Tatum API: %s", entry.pending_id, exc)
            continue
        outcome, reason = _outcome(body)
        journal.reconcile(entry.pending_id, outcome, reason)
        if outcome is not JournalState.SIGNED:
            changed += 1
            log.info("journal: %s reconciled as %s (%s)", entry.pending_id, outcome.value, reason)
    return changed


def _outcome(body: object) -> tuple[JournalState, str]:
    if body is None:
        return JournalState.FAILED, "the Tatum API no longer knows this pending transaction (404)"
    if isinstance(body, dict):
        tx_id = body.get("txId")
        if isinstance(tx_id, str) and tx_id.strip():
            return JournalState.COMPLETED, f"completed at the Tatum API, txId {tx_id.strip()[:100]}"
    return JournalState.SIGNED, "still pending at the Tatum API"
