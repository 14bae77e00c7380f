"""The store's only contact with raw cryptography: password KDF, data-key wrapping, record sealing.

Everything else in kms.store handles opaque bytes. Primitives come from maintained libraries only: AES-256-GCM from
pyca/cryptography, Argon2id from argon2-cffi (scrypt from pyca/cryptography when Argon2 is unavailable).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kms.errors import StoreError
from kms.hygiene import SecretBuffer

try:
    from argon2.low_level import ARGON2_VERSION, Type, core, error_to_str, ffi, lib

    ARGON2_AVAILABLE = True
except ImportError:  # pragma: no cover - argon2-cffi is a core dependency; scrypt keeps kms usable without it
    ARGON2_AVAILABLE = False
    ARGON2_VERSION = 0x13

KEY_LEN = 32  # AES-256
NONCE_LEN = 12  # 96-bit GCM nonce, random per encryption
TAG_LEN = 16

# RFC 9106 section 4, second recommended option (for memory-constrained settings): m = 64 MiB, t = 3, p = 4.
_ARGON2_MIN_MEMORY_KIB = 64 * 1024
_ARGON2_MIN_TIME = 3
# scrypt as recommended for interactive-to-sensitive use: N = 2^17, r = 8, p = 1 (128 MiB).
_SCRYPT_MIN_N = 2**17
_SCRYPT_MIN_R = 8
_MIN_SALT_LEN = 16
# Upper bounds: a forged header must not make kms allocate unbounded memory or spin for hours.
_MAX_MEMORY_BYTES = 4 * 1024**3
_ARGON2_MAX_TIME = 64
_MAX_PARALLELISM = 64
_MAX_SALT_LEN = 64


@dataclass(frozen=True)
class KdfParams:
    """Password-KDF name and cost. Argon2id uses memory_kib/time_cost/parallelism; scrypt uses n/r/parallelism."""

    name: str
    memory_kib: int = 0
    time_cost: int = 0
    parallelism: int = 1
    n: int = 0
    r: int = 0
    salt_len: int = 16

    @classmethod
    def argon2id_default(cls) -> KdfParams:
        return cls(name="argon2id", memory_kib=_ARGON2_MIN_MEMORY_KIB, time_cost=_ARGON2_MIN_TIME, parallelism=4)

    @classmethod
    def scrypt_default(cls) -> KdfParams:
        return cls(name="scrypt", n=_SCRYPT_MIN_N, r=_SCRYPT_MIN_R, parallelism=1)

    @classmethod
    def default(cls) -> KdfParams:
        return cls.argon2id_default() if ARGON2_AVAILABLE else cls.scrypt_default()

    @classmethod
    def insecure_for_tests(cls) -> KdfParams:
        """A deliberately cheap setting for test suites; refused unless the caller passes allow_weak_kdf=True."""
        if ARGON2_AVAILABLE:
            return cls(name="argon2id", memory_kib=8, time_cost=1, parallelism=1)
        return cls(name="scrypt", n=2**4, r=8, parallelism=1)  # pragma: no cover

    def check_range(self) -> None:
        """Refuse malformed or absurd parameters (a damaged or forged header)."""
        if self.salt_len < _MIN_SALT_LEN or self.salt_len > _MAX_SALT_LEN:
            raise StoreError(f"store header has an invalid KDF salt length {self.salt_len}")
        if not 1 <= self.parallelism <= _MAX_PARALLELISM:
            raise StoreError(f"store header has an invalid KDF parallelism {self.parallelism}")
        if self.name == "argon2id":
            if not 8 * self.parallelism <= self.memory_kib <= _MAX_MEMORY_BYTES // 1024:
                raise StoreError(f"store header has an invalid Argon2id memory cost {self.memory_kib} KiB")
            if not 1 <= self.time_cost <= _ARGON2_MAX_TIME:
                raise StoreError(f"store header has an invalid Argon2id time cost {self.time_cost}")
        elif self.name == "scrypt":
            if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or 128 * self.n * self.r > _MAX_MEMORY_BYTES:
                raise StoreError(f"store header has invalid scrypt parameters N={self.n} r={self.r}")
        else:
            raise StoreError(f"store header names an unknown KDF {self.name!r}")

    def is_weak(self) -> bool:
        if self.salt_len < _MIN_SALT_LEN:
            return True
        if self.name == "argon2id":
            # Lanes split the same memory and passes across threads; the attacker's cost per guess is memory x passes.
            return self.memory_kib < _ARGON2_MIN_MEMORY_KIB or self.time_cost < _ARGON2_MIN_TIME
        return self.n < _SCRYPT_MIN_N or self.r < _SCRYPT_MIN_R

    def describe(self) -> str:
        if self.name == "argon2id":
            return f"argon2id m={self.memory_kib} KiB t={self.time_cost} p={self.parallelism}"
        return f"scrypt N={self.n} r={self.r} p={self.parallelism}"

    def to_json(self) -> str:
        """Canonical text stored in the header (and bound into the wrapped key's associated data)."""
        body: dict[str, Any]
        if self.name == "argon2id":
            body = {
                "name": "argon2id",
                "version": ARGON2_VERSION,
                "memory_kib": self.memory_kib,
                "time_cost": self.time_cost,
                "parallelism": self.parallelism,
                "salt_len": self.salt_len,
            }
        else:
            body = {"name": self.name, "n": self.n, "r": self.r, "p": self.parallelism, "salt_len": self.salt_len}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> KdfParams:
        try:
            body = json.loads(text)
            name = body["name"]
            if name == "argon2id":
                if set(body) != {"name", "version", "memory_kib", "time_cost", "parallelism", "salt_len"}:
                    raise ValueError
                if body["version"] != ARGON2_VERSION:
                    raise ValueError
                params = cls(
                    name=name,
                    memory_kib=_int(body["memory_kib"]),
                    time_cost=_int(body["time_cost"]),
                    parallelism=_int(body["parallelism"]),
                    salt_len=_int(body["salt_len"]),
                )
            elif name == "scrypt":
                if set(body) != {"name", "n", "r", "p", "salt_len"}:
                    raise ValueError
                params = cls(
                    name=name,
                    n=_int(body["n"]),
                    r=_int(body["r"]),
                    parallelism=_int(body["p"]),
                    salt_len=_int(body["salt_len"]),
                )
            else:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            raise StoreError("store header has unreadable KDF parameters") from None
        params.check_range()
        return params


def _int(value: object) -> int:
    if type(value) is not int:
        raise ValueError
    return value


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def derive_kek(password: SecretBuffer, salt: bytes, params: KdfParams) -> SecretBuffer:
    """The key-encryption key: the password stretched by the store's KDF. Costly by design; call once per open."""
    params.check_range()
    if len(salt) != params.salt_len:
        raise StoreError("store header salt does not match its KDF parameters")
    if params.name == "argon2id":
        if not ARGON2_AVAILABLE:  # pragma: no cover
            raise StoreError("this store uses Argon2id but argon2-cffi is not installed")
        return _argon2id(password, salt, params)
    else:
        raw = Scrypt(salt=salt, length=KEY_LEN, n=params.n, r=params.r, p=params.parallelism).derive(password.view())
    return SecretBuffer(raw)


def _argon2id(password: SecretBuffer, salt: bytes, params: KdfParams) -> SecretBuffer:
    # argon2-cffi's documented core() API rather than hash_secret_raw(): the same computation, but the password is
    # read from, and the key written into, our wipeable buffers, with no immutable copy of either left behind.
    kek = SecretBuffer(bytes(KEY_LEN))
    pwd = ffi.from_buffer(password.raw()) if password else ffi.NULL
    out = ffi.from_buffer(kek.raw())
    csalt = ffi.from_buffer(salt)
    context = ffi.new(
        "argon2_context *",
        {
            "version": ARGON2_VERSION,
            "out": ffi.cast("uint8_t *", out),
            "outlen": KEY_LEN,
            "pwd": ffi.cast("uint8_t *", pwd),
            "pwdlen": len(password),
            "salt": ffi.cast("uint8_t *", csalt),
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": params.time_cost,
            "m_cost": params.memory_kib,
            "lanes": params.parallelism,
            "threads": params.parallelism,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    result = core(context, Type.ID.value)
    if result != lib.ARGON2_OK:
        kek.wipe()
        raise StoreError(f"Argon2id failed: {error_to_str(result)}")
    return kek


def new_data_key() -> SecretBuffer:
    key = SecretBuffer(bytes(KEY_LEN))
    _fill_random(key.raw())
    return key


def _fill_random(buf: bytearray) -> None:
    # Read straight into the locked buffer so no immutable copy of the key is left behind.
    try:
        with open("/dev/urandom", "rb", buffering=0) as source:
            if source.readinto(buf) == len(buf):
                return
    except OSError:  # pragma: no cover
        pass
    buf[:] = os.urandom(len(buf))  # pragma: no cover


def wrap_key(kek: SecretBuffer, data_key: SecretBuffer, header_aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt the data key under the KEK; returns (nonce, wrapped key with tag)."""
    nonce = random_bytes(NONCE_LEN)
    return nonce, AESGCM(kek.raw()).encrypt(nonce, data_key.view(), header_aad)


def unwrap_key(kek: SecretBuffer, nonce: bytes, wrapped: bytes, header_aad: bytes) -> SecretBuffer | None:
    """The data key, or None when the KEK (password) is wrong or the header was altered."""
    if len(nonce) != NONCE_LEN or len(wrapped) != KEY_LEN + TAG_LEN:
        return None
    key = SecretBuffer(bytes(KEY_LEN))
    try:
        AESGCM(kek.raw()).decrypt_into(nonce, wrapped, header_aad, key.raw())
    except InvalidTag:
        key.wipe()
        return None
    return key


class RecordCipher:
    """AES-256-GCM under one data key. Owns the key buffer and wipes it on wipe()."""

    __slots__ = ("_aead", "_key")

    def __init__(self, data_key: SecretBuffer) -> None:
        if len(data_key) != KEY_LEN:
            raise ValueError("data key must be 32 bytes")
        self._key = data_key
        self._aead: AESGCM | None = AESGCM(data_key.raw())

    @property
    def key(self) -> SecretBuffer:
        return self._key

    def seal(self, plaintext: bytes | bytearray | memoryview, aad: bytes) -> tuple[bytes, bytes]:
        """Returns (fresh random nonce, ciphertext with tag)."""
        nonce = random_bytes(NONCE_LEN)
        return nonce, self._cipher().encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> SecretBuffer | None:
        """The plaintext in a wipeable buffer, or None when authentication fails."""
        if len(nonce) != NONCE_LEN or len(ciphertext) < TAG_LEN:
            return None
        out = SecretBuffer(bytes(len(ciphertext) - TAG_LEN))
        try:
            self._cipher().decrypt_into(nonce, ciphertext, aad, out.raw())
        except InvalidTag:
            out.wipe()
            return None
        return out

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise StoreError("the wallet store is closed")
        return self._aead

    def wipe(self) -> None:
        self._aead = None
        self._key.wipe()
