"""EVM transaction encoding and signing on maintained libraries, without the per-call layers of eth-account: RLP
from ``rlp`` (its raw encoder), Keccak-256 from safe-pysha3 (the C Keccak reference code; pycryptodome's costs ten
times more per call, a tenth of a signature), recoverable ECDSA (RFC 6979, low-s) from libsecp256k1 through
coincurve.

These produce exactly the bytes eth-account produces for the same fields (legacy EIP-155 and type-2 with an empty
access list; the vector tests compare them byte for byte), at a fraction of the cost: eth-account builds a typed
transaction object, checksums addresses and hashes several times per signature.
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PrivateKey, PublicKey
from coincurve.context import GLOBAL_CONTEXT
from coincurve.utils import validate_secret
from rlp.codec import encode_raw, length_prefix
from sha3 import keccak_256

from kms.errors import SigningError

EIP1559_TYPE = b"\x02"

RlpItem = int | bytes | Sequence["RlpItem"]


_LIST_OFFSET = 0xC0


def rlp_encode(item: RlpItem) -> bytes:
    """RLP of integers (big-endian, no leading zeros: what ``rlp.encode`` infers for an int), bytes and lists, by
    ``rlp``'s own raw encoder; converting the integers here skips its per-item serializer inference."""
    return encode_raw(_raw(item))


def _rlp_list(encoded_items: list[bytes]) -> bytes:
    """An RLP list of items already encoded one by one (so the fields shared by the signing payload and the signed
    transaction are encoded once)."""
    payload = b"".join(encoded_items)
    return length_prefix(len(payload), _LIST_OFFSET) + payload


def _int_item(number: int) -> bytes:
    """The RLP item of a non-negative integer."""
    return encode_raw(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def _raw(item: RlpItem) -> bytes | list[object]:
    if type(item) is bytes:
        return item
    if type(item) is int:
        if item < 0:
            raise SigningError("a negative integer cannot be RLP-encoded")
        return item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, bytes):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise SigningError("a negative integer cannot be RLP-encoded")
        return item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, list | tuple):
        return [_raw(part) for part in item]
    raise SigningError(f"cannot RLP-encode a {type(item).__name__}")


def keccak256(data: bytes) -> bytes:
    return keccak_256(data).digest()


def address_of(key: PrivateKey) -> bytes:
    """The 20-byte account address of a secp256k1 key."""
    return keccak256(key.public_key.format(compressed=False)[1:])[12:]


class EcdsaKey(PrivateKey):
    """coincurve's PrivateKey without the x-only (BIP-340) public key its constructor also derives, which ECDSA never
    uses: that derivation would be a third of the cost of an EVM signature."""

    def __init__(self, secret: bytes) -> None:  # not super().__init__(): that derives the x-only key
        self.secret = validate_secret(secret)
        self.context = GLOBAL_CONTEXT
        self.public_key = PublicKey.from_valid_secret(self.secret, self.context)


def load_key(raw: bytes | bytearray) -> PrivateKey:
    """A coincurve key from 32 raw bytes; an out-of-range scalar is a SigningError."""
    if len(raw) != 32:
        raise SigningError("the signing key is not a 32-byte secp256k1 private key")
    try:
        return EcdsaKey(bytes(raw))
    except ValueError:
        raise SigningError("the signing key is not a valid secp256k1 private key") from None


def _sign_digest(key: PrivateKey, digest: bytes) -> tuple[int, bytes, bytes]:
    """(recovery id, r, s) of a recoverable signature over a 32-byte digest; r and s as their RLP integer bytes
    (big-endian without leading zeros)."""
    signature = key.sign_recoverable(digest, hasher=None)
    return signature[64], signature[:32].lstrip(b"\0"), signature[32:64].lstrip(b"\0")


def sign_legacy(fields: list[RlpItem], chain_id: int, key: PrivateKey) -> bytes:
    """EIP-155: ``fields`` is [nonce, gasPrice, gas, to, value, data] (or Celo's longer body); signs
    RLP(fields + [chainId, 0, 0]) and returns RLP(fields + [v, r, s]) with v = chainId * 2 + 35 + recovery id."""
    encoded = [encode_raw(_raw(field)) for field in fields]
    recovery, r, s = _sign_digest(key, keccak256(_rlp_list([*encoded, _int_item(chain_id), b"\x80", b"\x80"])))
    return _rlp_list([*encoded, _int_item(chain_id * 2 + 35 + recovery), encode_raw(r), encode_raw(s)])


def sign_eip1559(fields: list[RlpItem], key: PrivateKey) -> bytes:
    """EIP-1559: ``fields`` is [chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data,
    accessList]; returns 0x02 || RLP(fields + [yParity, r, s])."""
    encoded = [encode_raw(_raw(field)) for field in fields]
    recovery, r, s = _sign_digest(key, keccak256(EIP1559_TYPE + _rlp_list(encoded)))
    return EIP1559_TYPE + _rlp_list([*encoded, _int_item(recovery), encode_raw(r), encode_raw(s)])


__all__ = ["EcdsaKey", "address_of", "keccak256", "load_key", "rlp_encode", "sign_eip1559", "sign_legacy"]
