"""Approvals bound to what is signed (issue 19): decoded intents, the signed approval protocol v2, a local policy.

- ``kms.approval.intent`` / ``kms.approval.decoders``: ``decode_intent(pending, testnet) -> Intent``.
- ``kms.approval.v2``: ``ApprovalV2.check(pending, intent, payload_sha256) -> Decision`` (signed request, signed
  answer from a pinned key). The upstream four-eye check (``kms.daemon.four_eye``) stays the default mode.
- ``kms.approval.policy``: ``LocalPolicy`` (a TOML rules file) over a ``VelocityLedger`` (``kms.approval.velocity``).

Nothing here signs a transaction or touches a wallet key; the daemon's own approval key is read from the settings.
"""
