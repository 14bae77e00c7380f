"""The keys of approval protocol v2: the daemon's signing key (a secret setting) and the approver's pinned public key.

The daemon's key is a PEM private key, P-256 (ES256) or Ed25519 (EdDSA), from ``TATUM_KMS_APPROVAL_KEY`` (the PEM
text; in an env file use double quotes with ``\\n``) or ``TATUM_KMS_APPROVAL_KEY_FILE`` (a file, or a credential name
looked up in ``$CREDENTIALS_DIRECTORY``), read like the store password (``backends.env``): the file must be a regular
file of this user or root that others cannot read. ``kms approval pubkey`` prints its public key for the approver to
pin. The approver's public key is pinned with ``TATUM_KMS_APPROVER_PUBLIC_KEY(_FILE)`` or ``--approver-key FILE``.
Each key is used with its one algorithm only: an answer can never pick its own.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kms.errors import UsageError
from kms.hygiene import SecretBuffer
from kms.settings import private_file_problem

APPROVAL_KEY = "TATUM_KMS_APPROVAL_KEY"
APPROVAL_KEY_FILE = "TATUM_KMS_APPROVAL_KEY_FILE"
APPROVER_PUBLIC_KEY = "TATUM_KMS_APPROVER_PUBLIC_KEY"
APPROVER_PUBLIC_KEY_FILE = "TATUM_KMS_APPROVER_PUBLIC_KEY_FILE"
MAX_KEY_FILE = 16 * 1024

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A private key with its JOSE algorithm; repr shows the public fingerprint only."""

    key: PrivateKey
    algorithm: str

    @property
    def public(self) -> PinnedKey:
        return PinnedKey(self.key.public_key(), self.algorithm)

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, {self.public.fingerprint[:16]}..., private=<hidden>)"


@dataclass(frozen=True)
class PinnedKey:
    key: PublicKey
    algorithm: str

    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, hex (also the JWT ``kid``)."""
        der = self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()

    def as_json(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "sha256": self.fingerprint, "publicKey": self.pem()}


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise UsageError("approval keys must be P-256 (ES256) or Ed25519 (EdDSA)")


def generate_signing_key(algorithm: str = "ES256") -> SigningKey:
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algorithm == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    )
    return SigningKey(key, algorithm_of(key))


def private_pem(key: SigningKey) -> bytes:
    return key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signing_key_from_pem(pem: bytes | bytearray | memoryview, what: str = APPROVAL_KEY) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(bytes(pem), password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{what} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise UsageError(f"{what} must be a P-256 or Ed25519 key")
    return SigningKey(key, algorithm_of(key))


def public_key_from_pem(pem: bytes | str, what: str = APPROVER_PUBLIC_KEY) -> PinnedKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise UsageError(f"{what} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise UsageError(f"{what} must be a P-256 or Ed25519 key")
    return PinnedKey(key, algorithm_of(key))


def load_signing_key(settings: Mapping[str, str]) -> SigningKey:
    """The daemon's approval signing key from the settings (the PEM text or a private file)."""
    file_name = _setting(settings, APPROVAL_KEY_FILE)
    if file_name:
        path = _resolve(file_name, _setting(settings, "CREDENTIALS_DIRECTORY"), APPROVAL_KEY_FILE)
        with read_private_file(path, APPROVAL_KEY_FILE, secret=True) as pem:
            return signing_key_from_pem(pem.view(), APPROVAL_KEY_FILE)
    text = _setting(settings, APPROVAL_KEY)
    if not text:
        raise UsageError(f"approval v2 needs the daemon's key: set {APPROVAL_KEY} or {APPROVAL_KEY_FILE}")
    with SecretBuffer.from_str(text) as pem:
        return signing_key_from_pem(pem.view(), APPROVAL_KEY)


def load_pinned_key(settings: Mapping[str, str], path: str | None = None) -> PinnedKey:
    """The approver's public key: ``path`` (``--approver-key``) first, then the settings."""
    if path:
        with read_private_file(path, "--approver-key", secret=False) as pem:
            return public_key_from_pem(pem.bytes(), "--approver-key")
    file_name = _setting(settings, APPROVER_PUBLIC_KEY_FILE)
    if file_name:
        resolved = _resolve(file_name, _setting(settings, "CREDENTIALS_DIRECTORY"), APPROVER_PUBLIC_KEY_FILE)
        with read_private_file(resolved, APPROVER_PUBLIC_KEY_FILE, secret=False) as pem:
            return public_key_from_pem(pem.bytes(), APPROVER_PUBLIC_KEY_FILE)
    text = _setting(settings, APPROVER_PUBLIC_KEY)
    if not text:
        raise UsageError(
            f"approval v2 needs the approver's public key: --approver-key, {APPROVER_PUBLIC_KEY} or "
            f"{APPROVER_PUBLIC_KEY_FILE}"
        )
    return public_key_from_pem(text)


def read_private_file(path: str, what: str, *, secret: bool) -> SecretBuffer:
    """A small key file, refused when others could change it (or read it, for a ``secret``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"cannot open {what}: {exc.strerror}") from None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        problem = private_file_problem(os.fstat(fd), readable_matters=secret)
        if problem:
            raise UsageError(f"{what} {problem}")
        buffer = SecretBuffer(bytearray(MAX_KEY_FILE + 1))
        size = handle.readinto(buffer.raw()) or 0
    if size > MAX_KEY_FILE:
        buffer.wipe()
        raise UsageError(f"{what} is too large to be a key")
    with buffer:
        return SecretBuffer(buffer.view()[:size])


def _resolve(name: str, credentials_dir: str | None, what: str) -> str:
    if os.path.isabs(name):
        return name
    if credentials_dir:
        return os.path.join(credentials_dir, name)
    raise UsageError(f"{what} must be an absolute path (or a credential name with $CREDENTIALS_DIRECTORY set)")


def _setting(settings: Mapping[str, str], key: str) -> str | None:
    value = settings.get(key)
    return value.strip() if value and value.strip() else None


__all__ = [
    "APPROVAL_KEY",
    "APPROVAL_KEY_FILE",
    "APPROVER_PUBLIC_KEY",
    "APPROVER_PUBLIC_KEY_FILE",
    "PinnedKey",
    "SigningKey",
    "generate_signing_key",
    "load_pinned_key",
    "load_signing_key",
    "private_pem",
    "public_key_from_pem",
    "signing_key_from_pem",
]
