"""`kms audit verify FILE`: check an audit log's hash chain (and its HMACs when the key is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kms.cli import output
from kms.cli.command_types import CommandFactory
from kms.errors import UsageError
from kms.hygiene import SecretBuffer

# kms.audit (and cryptography) is imported only when the command runs, to keep every other command's start fast.
HMAC_KEY_SETTING = "TATUM_KMS_AUDIT_HMAC_KEY"
HMAC_KEY_FILE_SETTING = "TATUM_KMS_AUDIT_HMAC_KEY_FILE"

HELP = (
    "Verify an audit log: 'kms audit verify FILE' checks every record's hash chain (and HMAC, with the key from "
    f"--hmac-key-env, --hmac-key-file, {HMAC_KEY_SETTING} or {HMAC_KEY_FILE_SETTING}); prints the record count and "
    "last hash as JSON and exits 0, or names the first bad record and exits 1."
)


def register(command: CommandFactory) -> None:
    p = command("audit", HELP, audit)
    p.add_argument("action", choices=["verify"], metavar="ACTION", help="verify (the only action)")
    p.add_argument("file", metavar="FILE", help="the audit log (JSON lines)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--hmac-key-env",
        metavar="NAME",
        help=f"check HMACs with the key in environment variable NAME (default: {HMAC_KEY_SETTING} when set)",
    )
    keys.add_argument(
        "--hmac-key-file", metavar="FILE", help="check HMACs with the key in FILE (mode 600; trailing newline ignored)"
    )


def _hmac_key(args: argparse.Namespace) -> SecretBuffer | None:
    from kms import settings as settings_mod
    from kms.audit import derive_hmac_key, hmac_key_from_settings, read_key_file

    if any(getattr(args, flag, None) for flag in ("backend", "vgs", "azure", "aws")):
        raise UsageError(
            "audit verify does not use a password backend: the audit HMAC key is its own secret; give it with "
            f"--hmac-key-env, --hmac-key-file, {HMAC_KEY_SETTING} or {HMAC_KEY_FILE_SETTING}"
        )
    if args.hmac_key_file:
        with read_key_file(Path(args.hmac_key_file).expanduser()) as material:
            return derive_hmac_key(material)
    settings = settings_mod.load_settings(getattr(args, "envFile", None))
    if args.hmac_key_env:
        value = settings.get(args.hmac_key_env)
        if not value or not value.strip():
            raise UsageError(f"{args.hmac_key_env} is not set")
        with SecretBuffer.from_str(value.strip()) as material:
            return derive_hmac_key(material)
    return hmac_key_from_settings(settings)


def audit(args: argparse.Namespace) -> int:
    from kms.audit import verify_file

    key = _hmac_key(args)
    try:
        result = verify_file(Path(args.file).expanduser(), key)
    finally:
        if key is not None:
            key.wipe()
    output.emit(result.as_dict())
    if not result.ok:
        output.error(f"audit log {args.file}: {result.reason}")
        return 1
    return 0


__all__ = ["audit", "register"]
