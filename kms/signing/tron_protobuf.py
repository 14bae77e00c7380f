"""The TRON protocol's ``Transaction.raw`` and the contract messages upstream's tronweb 5.3.5 re-encodes, as protobuf
descriptors built from a table, and tronweb's ``txJsonToPb``: the node's transaction JSON back to ``raw_data`` bytes.

Field numbers and types are those of TRON's ``core/Tron.proto`` and ``core/contract/*.proto`` (as compiled into
tronweb). The encoding is Google's ``protobuf`` library's; nothing here writes wire bytes by hand. Like tronweb, only
``contract[0]`` and ``ref_block_bytes``, ``ref_block_hash``, ``data``, ``fee_limit``, ``expiration`` and
``timestamp`` are re-encoded, so anything else in ``raw_data_hex`` makes the comparison fail, and the type URL comes
from the contract type, not from the JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from kms.errors import SigningError

ADDRESS = "address"
"""21 bytes: 0x41 + 20, written as 42 hex digits or as a base58check ``T...`` address (tronweb ``address.toHex``)."""
HEX_BYTES = "hex"
INT64 = "int64"
RESOURCE = "resource"
BOOL = "bool"

RESOURCE_CODES = {"BANDWIDTH": 0, "ENERGY": 1, "TRON_POWER": 2}
ADDRESS_PREFIX = 0x41

# contract type -> (ContractType number, ((JSON field, field number, kind), ...)) for the contracts whose JSON tronweb
# reads back; only the fields its builder reads are listed (the others do not reach raw_data).
CONTRACTS: Mapping[str, tuple[int, tuple[tuple[str, int, str], ...]]] = {
    "AccountCreateContract": (0, (("owner_address", 1, ADDRESS), ("account_address", 2, ADDRESS))),
    "TransferContract": (1, (("owner_address", 1, ADDRESS), ("to_address", 2, ADDRESS), ("amount", 3, INT64))),
    "TransferAssetContract": (
        2,
        (("asset_name", 1, HEX_BYTES), ("owner_address", 2, ADDRESS), ("to_address", 3, ADDRESS), ("amount", 4, INT64)),
    ),
    "FreezeBalanceContract": (
        11,
        (
            ("owner_address", 1, ADDRESS),
            ("frozen_balance", 2, INT64),
            ("frozen_duration", 3, INT64),
            ("resource", 10, RESOURCE),
            ("receiver_address", 15, ADDRESS),
        ),
    ),
    "UnfreezeBalanceContract": (
        12,
        (("owner_address", 1, ADDRESS), ("resource", 10, RESOURCE), ("receiver_address", 15, ADDRESS)),
    ),
    "WithdrawBalanceContract": (13, (("owner_address", 1, ADDRESS),)),
    "TriggerSmartContract": (
        31,
        (
            ("owner_address", 1, ADDRESS),
            ("contract_address", 2, ADDRESS),
            ("call_value", 3, INT64),
            ("data", 4, HEX_BYTES),
            ("call_token_value", 5, INT64),
            ("token_id", 6, INT64),
        ),
    ),
    "FreezeBalanceV2Contract": (
        54,
        (("owner_address", 1, ADDRESS), ("frozen_balance", 2, INT64), ("resource", 3, RESOURCE)),
    ),
    "UnfreezeBalanceV2Contract": (
        55,
        (("owner_address", 1, ADDRESS), ("unfreeze_balance", 2, INT64), ("resource", 3, RESOURCE)),
    ),
    "WithdrawExpireUnfreezeContract": (56, (("owner_address", 1, ADDRESS),)),
    "DelegateResourceContract": (
        57,
        (
            ("owner_address", 1, ADDRESS),
            ("resource", 2, RESOURCE),
            ("balance", 3, INT64),
            ("receiver_address", 4, ADDRESS),
            ("lock", 5, BOOL),
            ("lock_period", 6, INT64),
        ),
    ),
    "UnDelegateResourceContract": (
        58,
        (
            ("owner_address", 1, ADDRESS),
            ("resource", 2, RESOURCE),
            ("balance", 3, INT64),
            ("receiver_address", 4, ADDRESS),
        ),
    ),
}

# Transaction.raw fields tronweb sets: (JSON field, field number, kind)
_RAW_FIELDS = (
    ("ref_block_bytes", 1, HEX_BYTES),
    ("ref_block_hash", 4, HEX_BYTES),
    ("expiration", 8, INT64),
    ("data", 10, HEX_BYTES),
    ("contract", 11, "Contract"),
    ("timestamp", 14, INT64),
    ("fee_limit", 18, INT64),
)
_RAW_JSON_FIELDS = frozenset(name for name, _, _ in _RAW_FIELDS)
_PACKAGE = "kms.tron"
_TYPE_URL_PREFIX = "type.googleapis.com/protocol."
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_INT64_MAX = 2**63 - 1


class InvalidTransaction(SigningError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid transaction: {detail}")


@cache
def _messages() -> dict[str, Any]:
    """The message classes, built once in a private descriptor pool (never clashing with another copy of the TRON
    protocol, such as tronpy's, in the default pool)."""
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    scalar = {ADDRESS: field.TYPE_BYTES, HEX_BYTES: field.TYPE_BYTES, INT64: field.TYPE_INT64, BOOL: field.TYPE_BOOL}
    file = descriptor_pb2.FileDescriptorProto(name="kms_tron.proto", package=_PACKAGE, syntax="proto3")
    file.dependency.append("google/protobuf/any.proto")
    file.enum_type.add(name="ResourceCode").value.extend(
        descriptor_pb2.EnumValueDescriptorProto(name=name, number=number) for name, number in RESOURCE_CODES.items()
    )

    def add_field(message: Any, name: str, number: int, kind: str, repeated: bool = False) -> None:
        label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
        if kind in scalar:
            message.field.add(name=name, number=number, type=scalar[kind], label=label)
        else:
            type_name = {RESOURCE: f".{_PACKAGE}.ResourceCode", "Any": ".google.protobuf.Any"}.get(kind)
            type_name = type_name or f".{_PACKAGE}.{kind}"
            wire = field.TYPE_ENUM if kind == RESOURCE else field.TYPE_MESSAGE
            message.field.add(name=name, number=number, type=wire, type_name=type_name, label=label)

    for contract_name, (_, fields) in CONTRACTS.items():
        message = file.message_type.add(name=contract_name)
        for name, number, kind in fields:
            add_field(message, name, number, kind)
    contract = file.message_type.add(name="Contract")
    contract.field.add(name="type", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    add_field(contract, "parameter", 2, "Any")
    contract.field.add(name="Permission_id", number=5, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    raw = file.message_type.add(name="Raw")
    for name, number, kind in _RAW_FIELDS:
        add_field(raw, name, number, kind, repeated=(name == "contract"))

    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    pool.Add(file)
    names = [*CONTRACTS, "Contract", "Raw"]
    classes = {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{n}")) for n in names}
    classes["Any"] = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.Any"))
    return classes


def address_bytes(value: object, name: str) -> bytes:
    """tronweb ``address.toHex``: hex (``41`` + 20 bytes) or base58check; anything else is refused."""
    from bip_utils import Base58Decoder

    if isinstance(value, str) and len(value) == 42 and _HEX.fullmatch(value):
        raw = bytes.fromhex(value)
    elif isinstance(value, str) and value.startswith("T") and value.isalnum() and len(value) <= 40:
        try:
            raw = Base58Decoder.CheckDecode(value)
        except Exception:
            raise InvalidTransaction(f"{name} is not a TRON address") from None
    else:
        raise InvalidTransaction(f"{name} is not a TRON address")
    if len(raw) != 21 or raw[0] != ADDRESS_PREFIX:
        raise InvalidTransaction(f"{name} is not a TRON address")
    return raw


def _hex_bytes(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise InvalidTransaction(f"{name} is not hex")
    return bytes.fromhex(value)


def _int64(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise InvalidTransaction(f"{name} is not an integer")
    return value


def _field_value(kind: str, value: object, name: str) -> Any:
    if kind == ADDRESS:
        return address_bytes(value, name)
    if kind == HEX_BYTES:
        return _hex_bytes(value, name)
    if kind == INT64:
        return _int64(value, name)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise InvalidTransaction(f"{name} is not a boolean")
        return value
    if not isinstance(value, str) or value not in RESOURCE_CODES:
        raise InvalidTransaction(f"{name} is not one of {', '.join(RESOURCE_CODES)}")
    return RESOURCE_CODES[value]


def _strip_0x(value: object) -> object:
    """tronweb strips a leading ``0x`` from these fields before reading them as hex."""
    return value[2:] if isinstance(value, str) and value.startswith("0x") else value


def _encode_contract(contract_json: Mapping[str, Any]) -> Any:
    classes = _messages()
    contract_type = contract_json.get("type")
    if not isinstance(contract_type, str) or contract_type not in CONTRACTS:
        raise SigningError(f"Unsupported transaction type: {str(contract_type)[:60]}")
    type_number, fields = CONTRACTS[contract_type]
    parameter = contract_json.get("parameter")
    value = parameter.get("value") if isinstance(parameter, Mapping) else None
    if not isinstance(value, Mapping):
        raise InvalidTransaction("contract[0].parameter.value is missing")
    message = classes[contract_type]()
    for name, _, kind in fields:
        given = value.get(name)
        if name in ("asset_name", "account_address"):
            given = _strip_0x(given)
        # tronweb's builders skip what is absent, empty, zero or false; proto3 would not write those either
        if given is None or given == "" or given is False or given == 0:
            continue
        setattr(message, name, _field_value(kind, given, name))
    any_message = classes["Any"](type_url=_TYPE_URL_PREFIX + contract_type, value=message.SerializeToString())
    contract = classes["Contract"](type=type_number)
    contract.parameter.CopyFrom(any_message)
    permission_id = contract_json.get("Permission_id")
    if permission_id:
        if isinstance(permission_id, bool) or not isinstance(permission_id, int) or not 0 < permission_id < 2**31:
            raise InvalidTransaction("Permission_id is not an integer")
        contract.Permission_id = permission_id
    return contract


def encode_raw_data(raw_data: Mapping[str, Any]) -> bytes:
    """tronweb ``txJsonToPb(tx).getRawData().serializeBinary()`` for ``raw_data`` as the node returned it."""
    contracts = raw_data.get("contract")
    if not isinstance(contracts, list) or not contracts or not isinstance(contracts[0], Mapping):
        raise InvalidTransaction("raw_data.contract is missing")
    # tronweb re-encodes only these; anything else would reach the node's JSON but not the signature: refused
    if len(contracts) != 1:
        raise InvalidTransaction("raw_data holds more than one contract")
    unchecked = [name for name in raw_data if name not in _RAW_JSON_FIELDS]
    if unchecked:
        raise InvalidTransaction(f"raw_data.{unchecked[0][:40]} is not covered by the signature check")
    raw = _messages()["Raw"]()
    raw.contract.append(_encode_contract(contracts[0]))
    for name, _, kind in _RAW_FIELDS:
        given = raw_data.get(name)
        if name == "contract" or (name not in ("ref_block_bytes", "ref_block_hash") and not given):
            continue
        if given is None:
            given = ""
        setattr(raw, name, _field_value(kind, given, f"raw_data.{name}"))
    return raw.SerializeToString()
