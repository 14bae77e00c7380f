"""Reading upstream's serialized EVM transaction: web3-style JSON, every field checked before anything is signed.

The Tatum API stores the unsigned transaction as the JSON of a web3 ``TransactionConfig`` (CELO: an ethers request
with Celo's fee-currency fields). Upstream hands it to web3 / caver / ethers, which quietly coerce what they can; here
every field is either understood exactly or refused with a SigningError, so nothing ambiguous reaches a signature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import is_checksum_address

from kms.bounded_json import loads_bounded
from kms.errors import SigningError, UntrustedJsonError

UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1
NONCE_MAX = 2**64 - 2
"""EIP-2681: a nonce must stay below 2^64 - 1."""
JSON_SAFE_INTEGER = 2**53 - 1
"""Upstream parses the JSON in JavaScript: a larger bare number has already lost precision there, so it is refused."""
MAX_DATA_BYTES = 256 * 1024
MAX_SERIALIZED_CHARS = 2 * MAX_DATA_BYTES + 64 * 1024

_HEX_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]{0,64}")
_DECIMAL_QUANTITY = re.compile(r"[0-9]{1,78}")
_HEX_BODY = re.compile(r"[0-9a-fA-F]*")
_ADDRESS_BODY = re.compile(r"[0-9a-fA-F]{40}")

COMMON_FIELDS = frozenset(
    {"to", "from", "value", "data", "input", "gas", "gasLimit", "gasPrice", "nonce", "chainId", "type"}
)
EIP1559_FIELDS = frozenset({"maxFeePerGas", "maxPriorityFeePerGas"})
CELO_FIELDS = frozenset({"feeCurrency", "gatewayFeeRecipient", "gatewayFee"})
_REFUSED_FIELDS = {
    "accessList": "access lists (EIP-2930) are not supported",
    "common": "web3 signing options (common) are not accepted in a pending transaction",
    "chain": "web3 signing options (chain) are not accepted in a pending transaction",
    "hardfork": "web3 signing options (hardfork) are not accepted in a pending transaction",
}

LEGACY = 0
EIP1559 = 2


@dataclass(frozen=True)
class EvmTxFields:
    """The checked content of one serialized transaction. ``None`` means absent (to be looked up or defaulted)."""

    to: bytes | None
    value: int
    data: bytes
    nonce: int | None
    gas: int | None
    gas_price: int | None
    max_fee_per_gas: int | None
    max_priority_fee_per_gas: int | None
    chain_id: int | None
    sender: bytes | None
    tx_type: int
    fee_currency: bytes | None = None
    gateway_fee_recipient: bytes | None = None
    gateway_fee: int = 0


@dataclass(frozen=True)
class ParseRules:
    """What one chain accepts in its serialized transactions."""

    code: str
    address_prefixes: tuple[str, ...] = ("0x",)
    """XDC also writes addresses as ``xdc`` + 40 hex."""
    eip1559: bool = False
    celo_fields: bool = False
    legacy_type_names: frozenset[str] = frozenset()
    """Extra spellings of the legacy type (KLAY: caver's ``LEGACY``)."""


def parse_evm_transaction(serialized: object, rules: ParseRules) -> EvmTxFields:
    tx = _load_json(serialized, rules.code)
    _check_keys(tx, rules)

    tx_type = _tx_type(tx.get("type"), rules)
    gas = _pick_gas(tx)
    max_fee = _quantity("maxFeePerGas", tx.get("maxFeePerGas"), UINT256_MAX)
    max_priority = _quantity("maxPriorityFeePerGas", tx.get("maxPriorityFeePerGas"), UINT256_MAX)
    gas_price = _quantity("gasPrice", tx.get("gasPrice"), UINT256_MAX)
    if max_fee is not None or max_priority is not None or tx_type == EIP1559:
        if not rules.eip1559:
            raise SigningError(
                f"{rules.code} pending transaction carries EIP-1559 fee fields: upstream signs only legacy "
                "transactions (with gasPrice) on this chain"
            )
        tx_type = EIP1559
        if gas_price is not None:
            raise SigningError("an EIP-1559 transaction cannot also carry gasPrice")
        if max_fee is None or max_priority is None:
            raise SigningError("an EIP-1559 transaction needs both maxFeePerGas and maxPriorityFeePerGas")
        if max_priority > max_fee:
            raise SigningError("maxPriorityFeePerGas is greater than maxFeePerGas")

    value = _quantity("value", tx.get("value"), UINT256_MAX)
    to = _optional_address("to", tx.get("to"), rules)
    data = _data(tx)
    if to is None and not data:
        raise SigningError("transaction has neither a recipient ('to') nor contract code ('data')")

    fields = EvmTxFields(
        to=to,
        value=value or 0,
        data=data,
        nonce=_quantity("nonce", tx.get("nonce"), NONCE_MAX),
        gas=gas,
        gas_price=gas_price or None,  # upstream treats a zero gas price as missing and fetches one
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=max_priority,
        chain_id=_chain_id(tx.get("chainId")),
        sender=_sender(tx.get("from"), rules),
        tx_type=tx_type,
    )
    if rules.celo_fields:
        fields = _with_celo_fields(fields, tx, rules)
    return fields


def intrinsic_gas(data: bytes, creates_contract: bool) -> int:
    """The least gas any node accepts for this payload (Homestead/Istanbul rules, as upstream's ethereumjs checks)."""
    zero_bytes = data.count(0)
    return 21_000 + (32_000 if creates_contract else 0) + 4 * zero_bytes + 16 * (len(data) - zero_bytes)


def _load_json(serialized: object, code: str) -> dict[str, Any]:
    if not isinstance(serialized, str) or not serialized.strip():
        raise SigningError(f"{code} pending transaction has no serializedTransaction")
    if len(serialized) > MAX_SERIALIZED_CHARS:
        raise SigningError(f"{code} serializedTransaction is too large ({len(serialized)} characters)")
    try:
        tx = loads_bounded(
            serialized,
            max_bytes=MAX_SERIALIZED_CHARS,
            what=f"{code} serializedTransaction",
            object_pairs_hook=_unique_keys,
        )
    except _DuplicateField as duplicate:
        raise SigningError(f"{code} serializedTransaction repeats the field {_safe_name(str(duplicate))}") from None
    except UntrustedJsonError as exc:
        raise SigningError(str(exc)) from None
    if not isinstance(tx, dict):
        raise SigningError(f"{code} serializedTransaction is not a JSON object")
    return tx


class _DuplicateField(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which copy of a repeated field wins; a signer must not guess.
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _DuplicateField(name)
        out[name] = value
    return out


_ALLOWED = {False: COMMON_FIELDS | EIP1559_FIELDS, True: COMMON_FIELDS | EIP1559_FIELDS | CELO_FIELDS}


def _check_keys(tx: Mapping[str, Any], rules: ParseRules) -> None:
    allowed = _ALLOWED[rules.celo_fields]
    for key in tx:
        if key in _REFUSED_FIELDS and tx[key] is not None:
            raise SigningError(_REFUSED_FIELDS[key])
        if key not in allowed and key not in _REFUSED_FIELDS:
            raise SigningError(f"{rules.code} serializedTransaction has an unknown field {_safe_name(key)}")


def _safe_name(key: str) -> str:
    shown = "".join(ch if ch.isprintable() else "?" for ch in key[:40])
    return repr(shown + ("..." if len(key) > 40 else ""))


def _quantity(name: str, raw: object, maximum: int) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise SigningError(f"'{name}' must be a number, not a boolean")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise SigningError(f"'{name}' must be a whole number")
        raw = int(raw)
    if isinstance(raw, int):
        if raw < 0:
            raise SigningError(f"'{name}' is negative")
        if raw > JSON_SAFE_INTEGER:
            raise SigningError(f"'{name}' is a JSON number above 2^53 (upstream loses its precision); send a string")
        number = raw
    elif isinstance(raw, str):
        if _HEX_QUANTITY.fullmatch(raw):
            number = int(raw[2:] or "0", 16)
        elif _DECIMAL_QUANTITY.fullmatch(raw):
            number = int(raw)
        elif raw.startswith("-"):
            raise SigningError(f"'{name}' is negative")
        else:
            raise SigningError(f"'{name}' is not a decimal or 0x-hex integer")
    else:
        raise SigningError(f"'{name}' must be a number or a numeric string")
    if number > maximum:
        bits = "uint256" if maximum == UINT256_MAX else f"its limit ({maximum})"
        raise SigningError(f"'{name}' overflows {bits}")
    return number


def _pick_gas(tx: Mapping[str, Any]) -> int | None:
    gas = _quantity("gas", tx.get("gas"), UINT64_MAX)
    gas_limit = _quantity("gasLimit", tx.get("gasLimit"), UINT64_MAX)
    if gas and gas_limit and gas != gas_limit:
        raise SigningError("'gas' and 'gasLimit' disagree")
    # Upstream treats a zero (or absent) gas limit as missing and estimates one.
    return gas_limit or gas or None


def _chain_id(raw: object) -> int | None:
    chain_id = _quantity("chainId", raw, UINT64_MAX)
    if chain_id == 0:
        raise SigningError("'chainId' is 0: replayable pre-EIP-155 transactions are not signed")
    return chain_id


def _tx_type(raw: object, rules: ParseRules) -> int:
    if raw is None:
        return LEGACY
    if isinstance(raw, str) and raw in rules.legacy_type_names:
        return LEGACY
    number = _quantity("type", raw, 0xFF) if not isinstance(raw, str) or raw[:1].isdigit() else None
    if number == LEGACY:
        return LEGACY
    if number == EIP1559:
        return EIP1559  # refused later with a clear message where the chain has no EIP-1559
    raise SigningError(f"{rules.code} transaction type {_safe_name(str(raw))} is not supported")


def _address_bytes(name: str, raw: object, rules: ParseRules) -> bytes:
    if not isinstance(raw, str):
        raise SigningError(f"'{name}' must be an address string")
    body = None
    for prefix in rules.address_prefixes:
        if raw[: len(prefix)].lower() == prefix:
            body = raw[len(prefix) :]
            break
    if body is None and len(raw) == 40:
        body = raw  # web3 accepts a bare 40-hex address
    if body is None or not _ADDRESS_BODY.fullmatch(body):
        raise SigningError(f"'{name}' is not a 20-byte hex address")
    if body != body.lower() and body != body.upper() and not is_checksum_address("0x" + body):
        raise SigningError(f"'{name}' has mixed case that fails the EIP-55 checksum")
    return bytes.fromhex(body)


def _optional_address(name: str, raw: object, rules: ParseRules) -> bytes | None:
    if raw is None or raw == "":
        return None
    return _address_bytes(name, raw, rules)


def _sender(raw: object, rules: ParseRules) -> bytes | None:
    # The SDK writes `from: 0` into KMS transactions; web3 then signs from the key's own address.
    if raw is None or raw == "" or (isinstance(raw, int) and not isinstance(raw, bool) and raw == 0):
        return None
    return _address_bytes("from", raw, rules)


def _data(tx: Mapping[str, Any]) -> bytes:
    data, alias = tx.get("data"), tx.get("input")
    if data is not None and alias is not None and data != alias:
        raise SigningError("'data' and 'input' are both present and differ")
    raw = data if data is not None else alias
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise SigningError("'data' must be a hex string")
    body = raw[2:] if raw[:2] in ("0x", "0X") else raw
    if not _HEX_BODY.fullmatch(body):
        raise SigningError("'data' is not hex")
    if len(body) % 2:
        raise SigningError("'data' has an odd number of hex digits")
    if len(body) // 2 > MAX_DATA_BYTES:
        raise SigningError(f"'data' is larger than {MAX_DATA_BYTES} bytes")
    return bytes.fromhex(body)


def _with_celo_fields(fields: EvmTxFields, tx: Mapping[str, Any], rules: ParseRules) -> EvmTxFields:
    return replace(
        fields,
        fee_currency=_optional_address("feeCurrency", tx.get("feeCurrency"), rules),
        gateway_fee_recipient=_optional_address("gatewayFeeRecipient", tx.get("gatewayFeeRecipient"), rules),
        gateway_fee=_quantity("gatewayFee", tx.get("gatewayFee"), UINT256_MAX) or 0,
    )


__all__ = [
    "EIP1559",
    "LEGACY",
    "NONCE_MAX",
    "UINT64_MAX",
    "UINT256_MAX",
    "EvmTxFields",
    "ParseRules",
    "intrinsic_gas",
    "parse_evm_transaction",
]
