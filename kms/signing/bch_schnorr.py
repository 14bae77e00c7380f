"""Bitcoin Cash Schnorr signatures (the 2019-05-15 BCH upgrade spec), as upstream's @tatumio/bitcoincashjs2-lib makes
them: nonce from RFC 6979 HMAC-DRBG seeded with key || message || "Schnorr+SHA256  " (libsecp256k1's
``nonce_function_rfc6979`` with that algo16, as Bitcoin ABC and the JS library use), negated when R's y is not a
quadratic residue; ``e = sha256(r || compressed P || m)``; ``s = k + e*x mod n``.

Why this is composed here: no maintained Python library signs BCH Schnorr (coincurve and python-bitcointx only do
BIP340, whose challenge and nonce differ; bitcash signs BCH with ECDSA). So the scheme is composed from library
primitives only: every curve operation and the secret scalar arithmetic run in libsecp256k1 through coincurve's public
API (``PublicKey.from_secret``, ``PrivateKey.multiply/add``, ``PublicKey.multiply/combine_keys``), hashing and HMAC in
the standard library. The only arithmetic done in Python is on public values (the Euler criterion on R's y, ``n - e``)
and the nonce's negation. Every signature is verified before it is used.
"""

from __future__ import annotations

import hashlib
import hmac

import coincurve

from kms.errors import SigningError

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FIELD_PRIME = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
NONCE_ALGO16 = b"Schnorr+SHA256  "


def _is_quadratic_residue(y: int) -> bool:
    return pow(y, (FIELD_PRIME - 1) // 2, FIELD_PRIME) == 1


def _rfc6979_nonce(secret: bytes, message: bytes) -> int:
    """RFC 6979 section 3.2 with SHA-256 and section 3.6 additional data (algo16), first candidate in [1, n-1]."""
    k = b"\x00" * 32
    v = b"\x01" * 32
    k = hmac.digest(k, v + b"\x00" + secret + message + NONCE_ALGO16, "sha256")
    v = hmac.digest(k, v, "sha256")
    k = hmac.digest(k, v + b"\x01" + secret + message + NONCE_ALGO16, "sha256")
    v = hmac.digest(k, v, "sha256")
    while True:
        v = hmac.digest(k, v, "sha256")
        candidate = int.from_bytes(v, "big")
        if 0 < candidate < CURVE_ORDER:
            return candidate
        k = hmac.digest(k, v + b"\x00", "sha256")
        v = hmac.digest(k, v, "sha256")


def _challenge(r: bytes, compressed_pubkey: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha256(r + compressed_pubkey + message).digest(), "big") % CURVE_ORDER


def schnorr_sign(private_key: coincurve.PrivateKey, message: bytes) -> bytes:
    """64-byte ``r || s`` over the 32-byte ``message`` (a signature hash)."""
    if len(message) != 32:
        raise SigningError("Schnorr signing needs a 32-byte hash")
    nonce = _rfc6979_nonce(private_key.secret, message)
    r_point = coincurve.PublicKey.from_secret(nonce.to_bytes(32, "big"))
    r_x, r_y = r_point.point()
    if not _is_quadratic_residue(r_y):
        nonce = CURVE_ORDER - nonce
    r = r_x.to_bytes(32, "big")
    pubkey = private_key.public_key.format(compressed=True)
    challenge = _challenge(r, pubkey, message)
    try:
        s = private_key.multiply(challenge.to_bytes(32, "big")).add(nonce.to_bytes(32, "big")).secret
    except ValueError:  # e == 0 or s == 0: probability about 2^-256
        raise SigningError("Schnorr signing failed for this hash") from None
    del nonce
    signature = r + s
    if not schnorr_verify(pubkey, message, signature):
        raise SigningError("Schnorr signature self-check failed")
    return signature


def schnorr_verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """The BCH spec's verification: R = s*G - e*P must have x == r and a quadratic-residue y."""
    if len(signature) != 64 or len(message) != 32:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r >= FIELD_PRIME or not 0 < s < CURVE_ORDER:
        return False
    try:
        public = coincurve.PublicKey(pubkey)
        challenge = _challenge(signature[:32], public.format(compressed=True), message)
        terms = [coincurve.PublicKey.from_secret(signature[32:])]
        if challenge:
            terms.append(public.multiply((CURVE_ORDER - challenge).to_bytes(32, "big")))
        point = coincurve.PublicKey.combine_keys(terms) if len(terms) > 1 else terms[0]
    except ValueError:  # invalid key, or R at infinity
        return False
    x, y = point.point()
    return x == r and _is_quadratic_residue(y)
