"""Helpers every chain module shares: index bounds, BIP39 mnemonics, and parsing key text without leaking it.

Secrets arrive as ``str`` (the libraries below accept nothing else). No message raised from here ever contains
the text it was given: library exceptions are replaced by our own, with their context suppressed.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TypeVar

from bip_utils import (
    Bip39Languages,
    Bip39MnemonicGenerator,
    Bip39MnemonicValidator,
    Bip39SeedGenerator,
    Bip39WordsNum,
    Secp256k1PrivateKey,
)

from kms.api import MAX_INDEX
from kms.errors import InvalidKeyError, KmsError, UsageError, WalletKindError
from kms.hygiene import SecretBuffer

MNEMONIC_WORD_COUNTS = (12, 15, 18, 21, 24)
_HEX = re.compile(r"[0-9a-fA-F]*")
T = TypeVar("T")
_INVALID_MNEMONIC = "the mnemonic is not a valid English BIP39 phrase (unknown word or bad checksum)"

_mnemonic_generator = Bip39MnemonicGenerator(Bip39Languages.ENGLISH)
_mnemonic_validator = Bip39MnemonicValidator(Bip39Languages.ENGLISH)


def check_index(index: object) -> int:
    """Derivation indexes are unhardened BIP32 indexes: 0 to 2^31-1."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise UsageError(f"index must be an integer from 0 to {MAX_INDEX}")
    return index


def attempt(message: str, action: Callable[[], T], error: type[KmsError] = InvalidKeyError) -> T:
    """Run a library call; any failure becomes ``error(message)``. The library's exception (whose message may quote
    the secret it was given) is dropped before ours is raised, so it is neither the cause nor the context of ours."""
    try:
        return action()
    except KmsError:
        raise
    except Exception:  # noqa: S110 - dropped on purpose, see above
        pass
    raise error(message)


def succeeds(action: Callable[[], object]) -> bool:
    """True when a library check runs without raising (for decoders that signal "invalid" by raising)."""
    try:
        action()
    except Exception:
        return False
    return True


# --- mnemonics -----------------------------------------------------------------------------------------------------


def new_mnemonic() -> str:
    """A fresh 24-word English mnemonic (256 bits of entropy), as upstream's ``generateMnemonic(256)``."""
    return _mnemonic_generator.FromWordsNumber(Bip39WordsNum.WORDS_NUM_24).ToStr()


def normalize_mnemonic(text: object) -> str:
    """Operator input: surrounding whitespace and runs of blanks between words are not part of the phrase."""
    if not isinstance(text, str):
        raise InvalidKeyError("the mnemonic must be text")
    return check_mnemonic(" ".join(text.split()))


def _canonical_form(mnemonic: object) -> str:
    if not isinstance(mnemonic, str) or not mnemonic:
        raise InvalidKeyError("the mnemonic is missing or not text")
    if mnemonic != " ".join(mnemonic.split()) or mnemonic != mnemonic.lower():
        # The seed is PBKDF2 of the exact text: other spacing or case would silently make another wallet.
        raise InvalidKeyError("the mnemonic must be lower-case words separated by single spaces")
    if len(mnemonic.split(" ")) not in MNEMONIC_WORD_COUNTS:
        raise InvalidKeyError("the mnemonic must have 12, 15, 18, 21 or 24 words")
    return mnemonic


def check_mnemonic(mnemonic: object) -> str:
    """A stored mnemonic must already be canonical (the seed is computed from the exact text), English, and carry a
    valid BIP39 checksum."""
    phrase = _canonical_form(mnemonic)
    valid = False
    with contextlib.suppress(Exception):
        valid = _mnemonic_validator.IsValid(phrase)
    if not valid:
        raise InvalidKeyError(_INVALID_MNEMONIC)
    return phrase


def bip39_seed(mnemonic: object) -> bytes:
    """The 64-byte BIP39 seed (empty passphrase) of a checked mnemonic (the seed generator verifies the checksum)."""
    phrase = _canonical_form(mnemonic)
    return attempt(_INVALID_MNEMONIC, lambda: Bip39SeedGenerator(phrase, Bip39Languages.ENGLISH).Generate())


def mnemonic_of(wallet: Mapping[str, str], code: str) -> str:
    mnemonic = wallet.get("mnemonic")
    if not isinstance(mnemonic, str):
        raise WalletKindError(f"this {code} wallet has no mnemonic: addresses by index need a mnemonic wallet")
    return mnemonic


def xpub_of(wallet: Mapping[str, str], code: str) -> str:
    xpub = wallet.get("xpub")
    if not isinstance(xpub, str) or not xpub:
        raise WalletKindError(f"this {code} wallet has no xpub: addresses by index need a mnemonic wallet")
    return xpub


# --- key text --------------------------------------------------------------------------------------------------------


def parse_hex(text: object, *, nbytes: int, prefix: str, message: str) -> bytes:
    """Exactly ``prefix`` followed by ``2 * nbytes`` hex digits (either case)."""
    if not isinstance(text, str) or not text.startswith(prefix):
        raise InvalidKeyError(message)
    digits = text[len(prefix) :]
    if len(digits) != 2 * nbytes or not _HEX.fullmatch(digits):
        raise InvalidKeyError(message)
    return bytes.fromhex(digits)


_HEX_DIGIT_CHARS = "0123456789abcdefABCDEF"
_HEX_PAIRS = {ord(h) << 8 | ord(lo): int(h + lo, 16) for h in _HEX_DIGIT_CHARS for lo in _HEX_DIGIT_CHARS}
"""Two ASCII hex digits (as one 16-bit number) -> the byte they spell: one look-up per decoded byte."""


def hex_secret(text: SecretBuffer, nbytes: int) -> SecretBuffer | None:
    """Exactly ``2 * nbytes`` hex digits (an optional ``0x``/``0X`` prefix) decoded straight from one wipeable
    buffer into another, with no ``str`` or ``bytes`` copy on the way; None when it is not that."""
    view = text.view()
    start, end = 0, len(view)
    if end - start >= 2 and view[start] == ord("0") and view[start + 1] in b"xX":
        start += 2
    if end - start != 2 * nbytes:
        return None
    out = SecretBuffer(bytearray(nbytes))
    raw = out.raw()
    for i, at in enumerate(range(start, end, 2)):
        value = _HEX_PAIRS.get(view[at] << 8 | view[at + 1])
        if value is None:
            out.wipe()
            return None
        raw[i] = value
    return out


_HEX_DIGIT_VALUES = {ord(c): int(c, 16) for c in _HEX_DIGIT_CHARS}


def hex_number_secret(text: SecretBuffer, nbytes: int) -> SecretBuffer | None:
    """1 to ``2 * nbytes`` hex digits (a number written without leading zeros, as ``BN.toString(16)`` prints it)
    decoded right-aligned into ``nbytes`` bytes, buffer to buffer with no ``str`` copy; None when it is not that."""
    view = text.view()
    count = len(view)
    if not 1 <= count <= 2 * nbytes:
        return None
    out = SecretBuffer(bytearray(nbytes))
    raw = out.raw()
    for position in range(count):
        value = _HEX_DIGIT_VALUES.get(view[count - 1 - position])
        if value is None:
            out.wipe()
            return None
        raw[nbytes - 1 - position // 2] |= value << (4 * (position % 2))
    return out


_BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE32_VALUES = {ord(c): i for i, c in enumerate(_BASE32_ALPHABET)} | {
    ord(c.lower()): i for i, c in enumerate(_BASE32_ALPHABET)
}


def base32_secret(text: SecretBuffer, nbytes: int) -> SecretBuffer | None:
    """RFC 4648 base32 (either case, without padding, or with one trailing ``=`` as upstream's secrets may carry) of
    exactly ``nbytes`` bytes, decoded buffer to buffer with no ``str`` copy; None when it is not that (including
    non-zero unused trailing bits)."""
    view = text.view()
    count = len(view)
    if count and view[count - 1] == ord("="):
        count -= 1
    if count != -(-nbytes * 8 // 5):
        return None
    out = SecretBuffer(bytearray(nbytes))
    raw = out.raw()
    bits = 0
    for position in range(count):
        value = _BASE32_VALUES.get(view[position])
        if value is None:
            out.wipe()
            return None
        for bit in range(4, -1, -1):
            if value >> bit & 1:
                if bits >= nbytes * 8:
                    out.wipe()
                    return None
                raw[bits // 8] |= 0x80 >> (bits % 8)
            bits += 1
    return out


_SECP256K1_ORDER = bytes.fromhex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141")


def secp256k1_scalar_ok(scalar: memoryview | bytearray) -> bool:
    """A 32-byte big-endian scalar in [1, n-1], compared in place (no copy of the secret)."""
    if len(scalar) != 32 or not any(scalar):
        return False
    for mine, order in zip(scalar, _SECP256K1_ORDER, strict=True):
        if mine != order:
            return mine < order
    return False


def is_hex(text: str) -> bool:
    return bool(_HEX.fullmatch(text))


def secp256k1_key(raw: bytes, message: str) -> Secp256k1PrivateKey:
    """A secp256k1 private key object; the scalar must lie in [1, n-1]."""
    key = attempt(message, lambda: Secp256k1PrivateKey.FromBytes(raw))
    if not isinstance(key, Secp256k1PrivateKey):  # pragma: no cover - FromBytes always returns its own class
        raise InvalidKeyError(message)
    return key


def random_secp256k1_key() -> Secp256k1PrivateKey:
    while True:  # a random 32-byte string is out of range with probability ~2^-128
        with contextlib.suppress(ValueError):
            key = Secp256k1PrivateKey.FromBytes(secrets.token_bytes(32))
            assert isinstance(key, Secp256k1PrivateKey)
            return key


def require_text(value: object, message: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidKeyError(message)
    return value


def network_name(testnet: bool) -> str:
    return "testnet" if testnet else "mainnet"
