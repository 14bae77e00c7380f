"""VET (VeChainThor) signing, as upstream's ``signVetKMSTransaction`` (@tatumio/tatum 1.37.68: web3 1.10 + thorify
1.6.2 + thor-devkit).

The pending transaction is a web3-style ``{from?, to, value (wei, decimal), data?, gas?}``. Upstream asks a public
VeChain node (not Tatum) for three things: the gas (``POST /accounts/*?revision=best`` with the clause; gas =
intrinsic gas + (gasUsed ? gasUsed + 15000 : 0)), the chain tag (last byte of ``GET /blocks/0``'s id) and the block
reference (first 8 bytes of ``GET /blocks/best``'s id). The nonce is random:
``floor(Date.now() / 0xffff * Math.random() * 0xffff)``. The body is one clause, expiration 720, gasPriceCoef 0, no
dependsOn; the signature is secp256k1 (RFC 6979, r || s || recovery id) over blake2b-256 of the RLP body; txData is
``0x`` + the RLP of the body with the signature, posted to ``/v3/vet/broadcast``.

The node is a setting (``TATUM_KMS_VET_NODE_URL``; default the public node upstream uses for the network, from
``kms.chains.vet``, which also holds the networks' genesis ids) and is called through the gateway's ``external_*``
calls. The raw key (a 32-byte secp256k1 scalar) is decoded by the chain module. The node's answers are checked:
``/blocks/0`` must be the genesis block of the daemon's network, the best block's id must carry its number, the gas
must be an integer in sane bounds.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import rlp
from coincurve import PrivateKey
from eth_utils import is_checksum_address, keccak

from kms.api import NodeGateway, PendingTransaction
from kms.chains.vet import VetFacts
from kms.errors import SigningError, UsageError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import one_key_of_chain, plain_json_fields

CHAIN = "VET"

TX_GAS = 5000
CLAUSE_GAS = 16000
ZERO_BYTE_GAS = 4
NONZERO_BYTE_GAS = 68
MAX_GAS = 100_000_000
"""Far above any VeChainThor block gas limit: a node answering more is lying."""
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
MAX_SERIALIZED = 256 * 1024

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BLOCK_ID = re.compile(r"0x[0-9a-f]{64}")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_DECIMAL = re.compile(r"[0-9]{1,78}")
_HEX_NUMBER = re.compile(r"0x[0-9a-fA-F]{1,64}")


def upstream_nonce(now_ms: int, random_fraction: float) -> int:
    """thorify's ``newNonce``: ``Math.floor((Date.now() / 0xffff) * Math.random() * 0xffff)`` (same IEEE doubles)."""
    return math.floor((now_ms / 0xFFFF) * random_fraction * 0xFFFF)


def random_nonce() -> int:
    """Upstream's nonce formula, drawn from the operating system's random source."""
    return upstream_nonce(time.time_ns() // 1_000_000, secrets.SystemRandom().random())


def address_of(private_key: bytes | bytearray) -> str:
    public_key = PrivateKey(bytes(private_key)).public_key.format(compressed=False)
    return "0x" + keccak(public_key[1:])[12:].hex()


def intrinsic_gas(data: bytes) -> int:
    """thor-devkit ``Transaction.intrinsicGas`` for one clause with a recipient."""
    zeros = data.count(0)
    return TX_GAS + CLAUSE_GAS + zeros * ZERO_BYTE_GAS + (len(data) - zeros) * NONZERO_BYTE_GAS


# --- the pending transaction -----------------------------------------------------------------------------------------


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise SigningError(f"VET transaction: {what} is not 0x + 40 hex digits")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise SigningError(f"VET transaction: {what} has a wrong checksum (mixed case)")
    return value.lower()


def _uint(value: object, what: str, high: int) -> int:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    elif isinstance(value, str) and _HEX_NUMBER.fullmatch(value):
        number = int(value[2:], 16)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise SigningError(f"VET transaction: {what} must be a non-negative integer (decimal or 0x hex)")
    if not 0 <= number <= high:
        raise SigningError(f"VET transaction: {what} out of range")
    return number


def parse_clause(pending: PendingTransaction) -> Mapping[str, Any]:
    """``from`` (or None), ``to``, ``value`` (int, or None when absent), ``data`` (hex as given), ``gas`` (or None)."""
    tx = plain_json_fields(pending, CHAIN, MAX_SERIALIZED, {"from", "to", "value", "data", "gas"})
    data = tx.get("data") or "0x"
    if isinstance(data, str) and not data.startswith("0x"):
        data = "0x" + data  # web3's input formatter does the same before thorify sees it
    if not isinstance(data, str) or not _DATA.fullmatch(data):
        raise SigningError("VET transaction: data must be 0x-prefixed hex bytes")
    gas = tx.get("gas")
    return {
        "from": None if tx.get("from") in (None, "") else _address(tx["from"], "from"),
        "to": _address(tx.get("to"), "to"),
        "value": None if tx.get("value") is None else _uint(tx["value"], "value", UINT256_MAX),
        "data": data,
        "gas": None if gas is None else _uint(gas, "gas", MAX_GAS),
    }


# --- the node --------------------------------------------------------------------------------------------------------


def estimate_request(clause: Mapping[str, Any], caller: str) -> dict[str, Any]:
    """thorify's ``eth_estimateGas`` body after web3's input formatting (value as hex, '' when absent)."""
    value = clause["value"]
    body: dict[str, Any] = {
        "clauses": [{"to": clause["to"], "value": "" if value is None else hex(value), "data": clause["data"]}]
    }
    if clause["gas"] is not None:
        body["gas"] = clause["gas"]
    body["caller"] = caller
    return body


def gas_from_estimate(answer: object, data: bytes, vm_gas_margin: int) -> int:
    if not isinstance(answer, list) or not answer or not isinstance(answer[0], Mapping):
        raise SigningError("VET node: malformed gas estimate answer")
    result = answer[0]
    if result.get("reverted") is not False or result.get("vmError") not in ("", None):
        raise SigningError("VET node: gas estimation failed: the clause reverts")
    used = result.get("gasUsed")
    if isinstance(used, bool) or not isinstance(used, int) or not 0 <= used <= MAX_GAS:
        raise SigningError("VET node: gasUsed is not an integer in range")
    return intrinsic_gas(data) + (used + vm_gas_margin if used else 0)


def _block_id(answer: object, what: str) -> tuple[str, object]:
    block_id = answer.get("id") if isinstance(answer, Mapping) else None
    if not isinstance(block_id, str) or not _BLOCK_ID.fullmatch(block_id):
        raise SigningError(f"VET node: malformed {what} answer")
    return block_id, answer.get("number")  # type: ignore[union-attr]


def chain_tag(answer: object, genesis_id: str, testnet: bool) -> int:
    block_id, number = _block_id(answer, "genesis block")
    if number != 0 or block_id != genesis_id:
        network = "testnet" if testnet else "mainnet"
        raise SigningError(f"VET node: its genesis block is not VeChainThor {network}, the network this daemon signs")
    return int(block_id[-2:], 16)


def block_ref(answer: object) -> bytes:
    block_id, number = _block_id(answer, "best block")
    # A VeChainThor block id starts with the block number (4 bytes, big-endian).
    if isinstance(number, bool) or not isinstance(number, int) or int(block_id[2:10], 16) != number or number == 0:
        raise SigningError("VET node: the best block's id does not carry its number")
    return bytes.fromhex(block_id[2:18])


# --- signing ---------------------------------------------------------------------------------------------------------


def body_fields(facts: VetFacts, tag: int, ref: bytes, clause: Mapping[str, Any], gas: int, nonce: int) -> list[Any]:
    """The RLP body list in thor-devkit's order; blockRef is a compact blob (leading zero bytes dropped)."""
    value = clause["value"] or 0
    clauses = [[bytes.fromhex(clause["to"][2:]), value, bytes.fromhex(clause["data"][2:])]]
    return [tag, ref.lstrip(b"\0"), facts.expiration, clauses, facts.gas_price_coef, gas, b"", nonce, []]


def blake2b256(*parts: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    for part in parts:
        digest.update(part)
    return digest.digest()


class VetSigner:
    """Signs VET pending transactions like upstream.

    ``facts``: the networks' genesis ids and default nodes (``kms.chains.vet.VET_FACTS``). ``node_url``: the
    VeChainThor REST node (setting ``TATUM_KMS_VET_NODE_URL``); None means the default node for the daemon's network.
    ``nonce_source``: where the random transaction nonce comes from (tests inject upstream's recorded draw).
    ``meta["txId"]`` is the transaction id.
    """

    def __init__(
        self, facts: VetFacts, node_url: str | None = None, nonce_source: Callable[[], int] = random_nonce
    ) -> None:
        if node_url is not None and (not isinstance(node_url, str) or not re.fullmatch(r"https?://[^\s?#]+", node_url)):
            raise UsageError("the VET node URL must be an http(s) URL without query or fragment")
        self._facts = facts
        self._node_url = node_url.rstrip("/") if node_url else None
        self._nonce_source = nonce_source

    def __repr__(self) -> str:
        return f"VetSigner(node_url={self._node_url!r})"

    def node_url(self, testnet: bool) -> str:
        return self._node_url or self._facts.default_node_urls[testnet]

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        handle = one_key_of_chain(pending, keys, CHAIN)
        clause = parse_clause(pending)
        with handle.raw() as key:
            if len(key) != 32:
                raise SigningError("VET key: expected a 32-byte secp256k1 key")
            origin = address_of(key)
        if clause["from"] is not None and clause["from"] != origin:
            raise SigningError("VET transaction: its sender is not this wallet's address")
        if gateway is None:
            raise SigningError("VET transaction: signing needs a VeChainThor node (offline)")
        gas, tag, ref = self._look_up(gateway, clause, clause["from"] or origin, testnet)
        nonce = self._nonce_source()
        if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= UINT64_MAX:
            raise SigningError("VET transaction: the nonce source gave no 64-bit nonce")
        body = body_fields(self._facts, tag, ref, clause, gas, nonce)
        signing_hash = blake2b256(rlp.encode(body))
        with handle.raw() as key:
            signature = PrivateKey(bytes(key)).sign_recoverable(signing_hash, hasher=None)
        tx_id = "0x" + blake2b256(signing_hash, bytes.fromhex(origin[2:])).hex()
        return SignedTransaction(payload="0x" + rlp.encode([*body, signature]).hex(), meta={"txId": tx_id})

    def _look_up(
        self, gateway: NodeGateway, clause: Mapping[str, Any], caller: str, testnet: bool
    ) -> tuple[int, int, bytes]:
        """In upstream's order: gas estimate, genesis block (chain tag), best block (block reference)."""
        node = self.node_url(testnet)
        estimate = gateway.external_post(
            f"{node}/accounts/*?revision=best", estimate_request(clause, caller), what="VET gas estimate"
        )
        gas = gas_from_estimate(estimate, bytes.fromhex(clause["data"][2:]), self._facts.vm_gas_margin)
        genesis = gateway.external_get(f"{node}/blocks/0", what="VET genesis block")
        tag = chain_tag(genesis, self._facts.genesis_ids[testnet], testnet)
        ref = block_ref(gateway.external_get(f"{node}/blocks/best", what="VET best block"))
        return gas, tag, ref
