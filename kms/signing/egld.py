"""EGLD (MultiversX) signing, as upstream's ``signEgldKMSTransaction`` (@tatumio/tatum 1.37.68 with erdjs 7.0.1).

The pending transaction holds ``{from, to, value (EGLD, decimal), data?, gasPrice, gasLimit}``. Upstream keeps only
``to``, ``value`` and ``data`` and asks the node behind the Tatum gateway for the rest: ``GET network/config`` (minimum
gas price, chain id, transaction version), ``GET address/{sender}/nonce`` and ``POST transaction/cost`` (the gas limit
for the unsigned transaction with gasLimit 0). The signature is ed25519 over erdjs' compact JSON of the transaction
(without ``signature``); txData is the same JSON with the hex signature appended, posted to ``/v3/egld/broadcast``.

Every node answer is checked before use: the chain id must be the daemon's network, nonce, gas price and gas limit
integers in sane bounds. Where the node is and what it may answer come from ``kms.chains.egld`` (``EgldFacts``).
Secrets: the raw key is the 32-byte ed25519 seed (decoded by the chain module); PyNaCl keeps its own copy for the
call.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from bip_utils import Bech32Decoder, Bech32Encoder
from nacl.signing import SigningKey

from kms.api import NodeGateway, PendingTransaction
from kms.chains.egld import EgldFacts
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import one_key_of_chain, plain_json_fields

CHAIN = "EGLD"

MAX_GAS_PRICE_FACTOR = 100
"""A node that asks for more than 100x the network's default gas price is lying (or being used to drain fees)."""
MAX_GAS_LIMIT = 600_000_000
"""MultiversX's maximum gas per transaction."""
TRANSACTION_VERSIONS = frozenset({1, 2})
NONCE_MAX = 2**64 - 1
DENOMINATION = Decimal(10) ** 18
MAX_VALUE = 10**40
MAX_SERIALIZED = 64 * 1024
MAX_DATA = 256 * 1024

_AMOUNT = re.compile(r"\d{1,40}(?:\.\d{1,40})?")


def address_of_public_key(public_key: bytes, hrp: str) -> str:
    return Bech32Encoder.Encode(hrp, public_key)


def _check_address(address: object, what: str, hrp: str) -> str:
    if not isinstance(address, str) or not address.startswith(hrp + "1") or len(address) != len(hrp) + 59:
        raise SigningError(f"EGLD transaction: {what} is not an erd1 address")
    try:
        decoded = Bech32Decoder.Decode(hrp, address)
    except Exception:
        raise SigningError(f"EGLD transaction: {what} is not an erd1 address") from None
    if len(decoded) != 32:
        raise SigningError(f"EGLD transaction: {what} is not an erd1 address")
    return address


def _atto_value(value: object) -> str:
    """``BigNumber(value).multipliedBy(1e18).toFixed()``, for the values that make a valid transaction."""
    if isinstance(value, str) and _AMOUNT.fullmatch(value):
        amount = Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        amount = Decimal(value)
    elif isinstance(value, float) and value >= 0:
        amount = Decimal(repr(value))  # JS prints a number by its shortest round-trip form, as repr does
    else:
        raise SigningError("EGLD transaction: value must be a non-negative decimal amount of EGLD")
    try:
        atto = amount * DENOMINATION
    except InvalidOperation:
        raise SigningError("EGLD transaction: value is not a usable amount") from None
    if not atto.is_finite() or atto != atto.to_integral_value() or atto > MAX_VALUE:
        raise SigningError("EGLD transaction: value has more than 18 decimals or is too large")
    return str(int(atto))


def parse_transfer(pending: PendingTransaction, hrp: str) -> Mapping[str, Any]:
    """The fields upstream keeps: ``to``, ``value`` (in atto-EGLD), ``data`` (base64, or absent) and ``from``."""
    tx = plain_json_fields(pending, CHAIN, MAX_SERIALIZED, {"from", "to", "value", "data", "gasPrice", "gasLimit"})
    data = tx.get("data")
    if data is not None and not isinstance(data, str):
        raise SigningError("EGLD transaction: data must be text")
    encoded = base64.b64encode(data.encode("utf-8")).decode("ascii") if data else None
    if encoded is not None and len(encoded) > MAX_DATA:
        raise SigningError("EGLD transaction: data too long")
    sender = tx.get("from")
    return {
        "from": None if sender in (None, "") else _check_address(sender, "from", hrp),
        "to": _check_address(tx.get("to"), "to", hrp),
        "value": _atto_value(tx.get("value")),
        "data": encoded,
    }


# --- node answers ----------------------------------------------------------------------------------------------------


def _data_of(answer: object, what: str) -> Mapping[str, Any]:
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, Mapping):
        raise SigningError(f"EGLD node: malformed {what} answer")
    return data


def _int_in(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SigningError(f"EGLD node: {what} is not an integer from {low} to {high}")
    return value


def network_config(gateway: NodeGateway, facts: EgldFacts, testnet: bool) -> tuple[int, str, int]:
    """(gas price, chain id, transaction version) from ``network/config``, checked against the daemon's network."""
    answer = gateway.tatum_get(f"{facts.node_path}/network/config", what="EGLD network config")
    config = _data_of(answer, "network config").get("config")
    if not isinstance(config, Mapping):
        raise SigningError("EGLD node: malformed network config answer")
    gas_price = config.get("erd_min_gas_price") or facts.default_gas_price  # upstream's `|| 1000000000`
    gas_price = _int_in(gas_price, "erd_min_gas_price", 1, MAX_GAS_PRICE_FACTOR * facts.default_gas_price)
    chain_id = config.get("erd_chain_id")
    if not isinstance(chain_id, str) or chain_id not in facts.chain_ids[testnet]:
        network = "testnet" if testnet else "mainnet"
        raise SigningError(f"EGLD node: its chain id is not one of MultiversX {network}, the network this daemon signs")
    version = config.get("erd_min_transaction_version")
    if version not in TRANSACTION_VERSIONS or isinstance(version, bool):
        raise SigningError("EGLD node: unsupported erd_min_transaction_version")
    return gas_price, chain_id, version


def account_nonce(gateway: NodeGateway, node_path: str, sender: str) -> int:
    answer = gateway.tatum_get(f"{node_path}/address/{sender}/nonce", what="EGLD account nonce")
    return _int_in(_data_of(answer, "nonce").get("nonce"), "nonce", 0, NONCE_MAX)


def gas_limit(gateway: NodeGateway, node_path: str, unsigned: Mapping[str, Any]) -> int:
    answer = gateway.tatum_post(f"{node_path}/transaction/cost", dict(unsigned), what="EGLD transaction cost")
    return _int_in(_data_of(answer, "transaction cost").get("txGasUnits"), "txGasUnits", 1, MAX_GAS_LIMIT)


# --- signing ---------------------------------------------------------------------------------------------------------


def _plain(
    nonce: int, fields: Mapping[str, Any], sender: str, gas_price: int, gas: int, chain_id: str, version: int
) -> dict[str, Any]:
    """erdjs 7 ``toPlainObject`` field order; ``data`` only when there is some."""
    plain: dict[str, Any] = {
        "nonce": nonce,
        "value": fields["value"],
        "receiver": fields["to"],
        "sender": sender,
        "gasPrice": gas_price,
        "gasLimit": gas,
    }
    if fields["data"]:
        plain["data"] = fields["data"]
    plain["chainID"] = chain_id
    plain["version"] = version
    return plain


def _compact(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class EgldSigner:
    """Signs EGLD pending transactions like upstream, with nonce, gas price, chain id and gas limit from the node behind
    the Tatum gateway. ``meta`` records the nonce and chain id that were signed. ``facts``: where the node is and
    what it may answer (``kms.chains.egld.EGLD_FACTS``)."""

    def __init__(self, facts: EgldFacts) -> None:
        self._facts = facts

    def __repr__(self) -> str:
        return "EgldSigner()"

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        key = one_key_of_chain(pending, keys, CHAIN)
        facts = self._facts
        fields = parse_transfer(pending, facts.address_hrp)
        with key.raw() as seed:
            if len(seed) != 32:
                raise SigningError("EGLD key: expected a 32-byte ed25519 seed")
            signing_key = SigningKey(bytes(seed))
        sender = address_of_public_key(bytes(signing_key.verify_key), facts.address_hrp)
        if fields["from"] is not None and fields["from"] != sender:
            raise SigningError("EGLD transaction: its sender is not this wallet's address")
        if gateway is None:
            raise SigningError("EGLD transaction: signing needs the node behind the Tatum gateway (offline)")
        gas_price, chain_id, version = network_config(gateway, facts, testnet)
        nonce = account_nonce(gateway, facts.node_path, sender)
        gas = gas_limit(gateway, facts.node_path, _plain(nonce, fields, sender, gas_price, 0, chain_id, version))
        plain = _plain(nonce, fields, sender, gas_price, gas, chain_id, version)
        signature = signing_key.sign(_compact(plain).encode("utf-8")).signature
        del signing_key
        plain["signature"] = signature.hex()
        return SignedTransaction(payload=_compact(plain), meta={"nonce": nonce, "chainID": chain_id})
