"""FLOW: the wallet's key signs as the transaction's authorizer; proposer and payer are Tatum's keys.

As upstream (``flowSignKMSTransaction`` of ``@tatumio/tatum`` 1.37.68 driving fcl): the payer and proposer keys come
from ``GET /v3/flow/proposal/{isPayer}``, their signatures from ``POST /v3/flow/sign``; reference block and proposal
sequence number from the Flow access node's REST API; the authorizer (``body.account``, key 0) signs the payload
message with secp256k1 over SHA3-256 (RFC 6979 nonce with HMAC-SHA256, S left as it comes, as elliptic does). The
signed transaction goes to the access node (``submit``), whose id is what the daemon broadcasts.

Unlike upstream, the wallet's key is never written into the transaction body, and the body is checked field by field
before anything is asked of Tatum. The Cadence templates are the Cadence 1.0 set by default (see ``flow_cadence``).
Tatum's routes, the networks' access nodes, chain ids and contract addresses come from the chain module
(``kms.chains.flow.FlowFacts``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import rlp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from kms.api import NodeGateway, PendingTransaction
from kms.chains.flow import FlowFacts
from kms.errors import KmsError, SigningError, TatumApiError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.flow_cadence import CADENCE_1_0_SET, TEMPLATE_SETS, UPSTREAM_SET
from kms.signing.pending import plain_json, single_key

EMULATOR_CHAIN_ID = "flow-emulator"
AUTHORIZER_KEY_INDEX = 0
TRANSACTION_DOMAIN_TAG = b"FLOW-V0.0-transaction".ljust(32, b"\0")
MAX_SERIALIZED_CHARS = 200_000
MAX_SCRIPT_CHARS = 100_000
MAX_ARGUMENTS = 64
MAX_ARRAY_ITEMS = 1_000
MAX_KEY_INDEX = 2**32 - 1
UFIX64_MAX = Decimal("184467440737.09551615")
UINT64_MAX = 2**64 - 1
WEIGHT_ADD_KEY = "0.0"
"""Upstream adds a public key with weight 0 (``flowAddPublicKeyToAccount``'s default)."""
WEIGHT_NEW_ACCOUNT = 1000

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{16}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")
_UINT = re.compile(r"[0-9]{1,20}")
_INT = re.compile(r"-?[0-9]{1,80}")
_INTEGER_TYPES = frozenset(
    {"Int", "UInt", "Int8", "Int16", "Int32", "Int64", "Int128", "Int256"}
    | {"UInt8", "UInt16", "UInt32", "UInt128", "UInt256", "Word8", "Word16", "Word32", "Word64"}
)
_SIMPLE_ARGUMENT_TYPES = frozenset({"String", "Address", "UFix64", "UInt64"}) | _INTEGER_TYPES
_TOKENS = {"FLOW": ("FlowToken", "flowToken"), "FUSD": ("FUSD", "fusd")}
_FORBIDDEN_BODY_KEYS = ("privateKey", "mnemonic", "secret")


@dataclass(frozen=True)
class FlowScript:
    """A Cadence transaction and its arguments as JSON-Cadence values, in order."""

    code: str
    arguments: tuple[Mapping[str, Any], ...]
    authorizer: str


@dataclass(frozen=True)
class _TatumKey:
    address: str
    key_id: int

    @property
    def temp_id(self) -> str:
        return f"{self.address}-{self.key_id}"


def _fail(message: str) -> SigningError:
    return SigningError(message)


def _address(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise _fail(f"FLOW body field {field_name!r} is not a Flow address (0x and 16 hex digits)")
    return value


def _text(value: object, field_name: str, limit: int = 10_000) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _fail(f"FLOW body field {field_name!r} is not a non-empty string")
    return value


def _ufix64(value: object, field_name: str) -> str:
    """JSON-Cadence UFix64 text: upstream's ``parseFloat(amount).toFixed(8)``, without its silent rounding."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,8})?", value):
        raise _fail(f"FLOW body field {field_name!r} is not an amount with at most 8 decimals")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise _fail(f"FLOW body field {field_name!r} is not an amount") from exc
    if amount > UFIX64_MAX:
        raise _fail(f"FLOW body field {field_name!r} is larger than UFix64 allows")
    return f"{amount:.8f}"


def _uint64(value: object, field_name: str) -> str:
    """Upstream passes UInt64 values through ``parseInt``: the decimal text of the number."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _UINT.fullmatch(text) or int(text) > UINT64_MAX:
        raise _fail(f"FLOW body field {field_name!r} is not an unsigned 64-bit integer")
    return str(int(text))


def _public_key(value: object) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{128}", value):
        raise _fail("FLOW body field 'publicKey' is not an uncompressed secp256k1 public key (128 hex digits)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x04" + bytes.fromhex(value))
    except ValueError as exc:
        raise _fail("FLOW body field 'publicKey' is not a point on secp256k1") from exc
    return bytes.fromhex(value)


def encode_account_key(public_key: bytes, weight: int) -> str:
    """``@onflow/util-encode-key`` ``encodeKey(key, ECDSA_secp256k1, SHA3_256, weight)``: hex RLP of the account key."""
    return rlp.encode([public_key, 2, 3, weight]).hex()


def _argument(value: object, type_name: object, sub_type: object, position: int) -> Mapping[str, Any]:
    """One custom-transaction argument as ``fcl.arg(value, types[type])`` encodes it (a small, checked subset)."""
    where = f"args[{position}]"
    if type_name == "Array":
        if sub_type not in _SIMPLE_ARGUMENT_TYPES or not isinstance(value, list) or len(value) > MAX_ARRAY_ITEMS:
            raise _fail(f"FLOW {where}: an Array needs a list value and a supported subType")
        return {"type": "Array", "value": [_argument(item, sub_type, None, position) for item in value]}
    if type_name == "String":
        return {"type": "String", "value": _text(value, where, MAX_SCRIPT_CHARS)}
    if type_name == "Address":
        return {"type": "Address", "value": _address(value, where)}
    if type_name == "UFix64":
        return {"type": "UFix64", "value": _ufix64(value, where)}
    if type_name == "UInt64":
        return {"type": "UInt64", "value": _uint64(value, where)}
    if type_name in _INTEGER_TYPES and isinstance(value, str) and _INT.fullmatch(value):
        return {"type": type_name, "value": value}
    raise _fail(f"FLOW {where}: argument type {str(type_name)[:40]!r} with this value is not supported")


def _custom_script(body: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    code = _text(body.get("transaction"), "transaction", MAX_SCRIPT_CHARS)
    args = body.get("args", [])
    if not isinstance(args, list) or len(args) > MAX_ARGUMENTS:
        raise _fail(f"FLOW body field 'args' is not a list of at most {MAX_ARGUMENTS} arguments")
    encoded = []
    for position, arg in enumerate(args):
        if not isinstance(arg, dict):
            raise _fail(f"FLOW args[{position}] is not an object")
        encoded.append(_argument(arg.get("value"), arg.get("type"), arg.get("subType"), position))
    return code, encoded


def _template_script(
    tx_type: int, body: Mapping[str, Any], template_set: str, contracts: Mapping[str, str]
) -> tuple[str, list[Mapping[str, Any]]]:
    templates = TEMPLATE_SETS[template_set]
    names = dict(contracts)
    upstream = template_set == UPSTREAM_SET
    if tx_type in (0, 1):
        key = _public_key(body.get("publicKey"))
        if tx_type == 0:
            arg = encode_account_key(key, WEIGHT_NEW_ACCOUNT) if upstream else key.hex()
            return string.Template(templates["create_account"]).substitute(names), [{"type": "String", "value": arg}]
        if upstream:
            return templates["add_public_key"], [{"type": "String", "value": encode_account_key(key, 0)}]
        return templates["add_public_key"], [
            {"type": "String", "value": key.hex()},
            {"type": "UFix64", "value": WEIGHT_ADD_KEY},
        ]
    if tx_type == 2:
        currency = body.get("currency")
        if currency not in _TOKENS:
            raise _fail("FLOW body field 'currency' is neither FLOW nor FUSD")
        token_name, storage = _TOKENS[currency]
        names.update(tokenName=token_name, tokenAddress=names[token_name], tokenStorage=storage)
        args = [
            {"type": "UFix64", "value": _ufix64(body.get("amount"), "amount")},
            {"type": "Address", "value": _address(body.get("to"), "to")},
        ]
        return string.Template(templates["transfer"]).substitute(names), args
    token_type = lambda: {"type": "String", "value": _text(body.get("contractAddress"), "contractAddress")}  # noqa: E731
    if tx_type == 4:
        args = [
            {"type": "Address", "value": _address(body.get("to"), "to")},
            {"type": "String", "value": _text(body.get("url"), "url")},
            token_type(),
        ]
        return string.Template(templates["mint_nft"]).substitute(names), args
    if tx_type == 5:
        return string.Template(templates["mint_multiple_nft"]).substitute(names), _mint_multiple_args(body, token_type)
    if tx_type == 6:
        args = [{"type": "UInt64", "value": _uint64(body.get("tokenId"), "tokenId")}, token_type()]
        return string.Template(templates["burn_nft"]).substitute(names), args
    args = [
        {"type": "Address", "value": _address(body.get("to"), "to")},
        {"type": "UInt64", "value": _uint64(body.get("tokenId"), "tokenId")},
    ]
    return string.Template(templates["transfer_nft"]).substitute(names), args


def _mint_multiple_args(body: Mapping[str, Any], token_type: Callable[[], Mapping[str, Any]]) -> list[Any]:
    to, urls = body.get("to"), body.get("url")
    if not isinstance(to, list) or not isinstance(urls, list) or not 0 < len(to) == len(urls) <= MAX_ARRAY_ITEMS:
        raise _fail("FLOW body fields 'to' and 'url' are not two lists of the same length")
    return [
        {"type": "Array", "value": [{"type": "Address", "value": _address(a, "to")} for a in to]},
        {"type": "Array", "value": [{"type": "String", "value": _text(u, "url")} for u in urls]},
        token_type(),
    ]


_TEMPLATE_TYPES = frozenset({0, 1, 2, 4, 5, 6, 7})
"""Upstream has no case for 3 (DEPLOY_NFT): it and every other type go to its custom-transaction path."""


def parse_flow_transaction(serialized: object, template_set: str, contracts: Mapping[str, str]) -> FlowScript:
    """The Cadence transaction a pending FLOW ``serializedTransaction`` (``{"type", "body"}``) asks for; ``contracts``
    are the network's contract addresses the templates import."""
    document = plain_json(serialized, MAX_SERIALIZED_CHARS, "FLOW", "is missing or too large")
    if not isinstance(document, dict) or not isinstance(document.get("body"), dict):
        raise _fail("FLOW serializedTransaction is not an object with a 'body' object")
    tx_type, body = document.get("type"), document["body"]
    if not isinstance(tx_type, int) or isinstance(tx_type, bool) or not 0 <= tx_type <= 255:
        raise _fail("FLOW serializedTransaction 'type' is not a transaction type number")
    if any(body.get(name) for name in _FORBIDDEN_BODY_KEYS):
        raise _fail("FLOW transaction body carries key material; refusing it")
    authorizer = _address(body.get("account"), "account")
    if tx_type in _TEMPLATE_TYPES:
        code, args = _template_script(tx_type, body, template_set, contracts)
    else:
        code, args = _custom_script(body)
    return FlowScript(code=code, arguments=tuple(args), authorizer=authorizer)


def _argument_bytes(argument: Mapping[str, Any]) -> bytes:
    return json.dumps(argument, separators=(",", ":"), ensure_ascii=False).encode()


def _sans_prefix(address: str) -> str:
    return address[2:] if address.startswith("0x") else address


@dataclass(frozen=True)
class _Envelope:
    gas_limit: int
    script: FlowScript
    reference_block: str
    proposer: _TatumKey
    sequence_number: int
    payer: _TatumKey

    def signers(self) -> dict[str, int]:
        """fcl's signer index: proposer, payer, authorizers, each address once, in that order."""
        order: dict[str, int] = {}
        for address in (self.proposer.address, self.payer.address, self.script.authorizer):
            order.setdefault(_sans_prefix(address), len(order))
        return order

    def payload_fields(self) -> list[Any]:
        return [
            self.script.code.encode(),
            [_argument_bytes(arg) for arg in self.script.arguments],
            bytes.fromhex(self.reference_block),
            self.gas_limit,
            bytes.fromhex(_sans_prefix(self.proposer.address)),
            self.proposer.key_id,
            self.sequence_number,
            bytes.fromhex(_sans_prefix(self.payer.address)),
            [bytes.fromhex(_sans_prefix(self.script.authorizer))],
        ]

    def payload_message(self) -> bytes:
        return TRANSACTION_DOMAIN_TAG + rlp.encode(self.payload_fields())

    def ordered(self, signatures: Sequence[tuple[str, int, bytes]]) -> list[tuple[int, int, str, bytes]]:
        index = self.signers()
        rows = [(index[_sans_prefix(a)], k, _sans_prefix(a), s) for a, k, s in signatures]
        return sorted(rows, key=lambda row: (row[0], row[1]))

    def envelope_message(self, payload_signatures: Sequence[tuple[str, int, bytes]]) -> bytes:
        rows = [[i, k, s] for i, k, _, s in self.ordered(payload_signatures)]
        return TRANSACTION_DOMAIN_TAG + rlp.encode([self.payload_fields(), rows])

    def rest_body(
        self, payload_signatures: Sequence[tuple[str, int, bytes]], envelope_signature: bytes
    ) -> dict[str, Any]:
        """The access node's ``POST /v1/transactions`` body, in fcl's field order."""

        def rest_signatures(rows: Sequence[tuple[int, int, str, bytes]]) -> list[dict[str, str]]:
            return [
                {"address": a, "key_index": str(k), "signature": base64.b64encode(s).decode()} for _, k, a, s in rows
            ]

        envelope_row = [(0, self.payer.key_id, _sans_prefix(self.payer.address), envelope_signature)]
        return {
            "script": base64.b64encode(self.script.code.encode()).decode(),
            "arguments": [base64.b64encode(_argument_bytes(arg)).decode() for arg in self.script.arguments],
            "reference_block_id": self.reference_block,
            "gas_limit": str(self.gas_limit),
            "payer": _sans_prefix(self.payer.address),
            "proposal_key": {
                "address": _sans_prefix(self.proposer.address),
                "key_index": str(self.proposer.key_id),
                "sequence_number": str(self.sequence_number),
            },
            "authorizers": [_sans_prefix(self.script.authorizer)],
            "payload_signatures": rest_signatures(self.ordered(payload_signatures)),
            "envelope_signatures": rest_signatures(envelope_row),
        }


def sign_flow_message(raw_key: bytes | bytearray, message: bytes) -> bytes:
    """r || s of secp256k1 ECDSA over SHA3-256(message), nonce per RFC 6979 with HMAC-SHA256 (elliptic's ``sign``
    as upstream calls it); S is not normalized, as upstream's is not."""
    key = ec.derive_private_key(int.from_bytes(raw_key, "big"), ec.SECP256K1())
    digest = hashlib.sha3_256(message).digest()
    der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def flow_public_key(raw_key: bytes | bytearray) -> str:
    """The uncompressed public key (128 hex digits, no 04 prefix) of a raw FLOW key, as Flow account keys hold it."""
    key = ec.derive_private_key(int.from_bytes(raw_key, "big"), ec.SECP256K1())
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point[1:].hex()


def _answer_object(answer: object, what: str) -> Mapping[str, Any]:
    if not isinstance(answer, dict):
        raise _fail(f"{what}: the answer is not a JSON object")
    return answer


def _tatum_key(answer: object, what: str) -> _TatumKey:
    body = _answer_object(answer, what)
    address, key_id = body.get("address"), body.get("keyId")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address if address.startswith("0x") else "0x" + address):
        raise _fail(f"{what}: the answer holds no Flow address")
    if not isinstance(key_id, int) or isinstance(key_id, bool) or not 0 <= key_id <= MAX_KEY_INDEX:
        raise _fail(f"{what}: the answer holds no key index")
    return _TatumKey("0x" + _sans_prefix(address).lower(), key_id)


def _tatum_signature(answer: object, what: str) -> bytes:
    signature = _answer_object(answer, what).get("signature")
    if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        raise _fail(f"{what}: the answer is not a 64-byte signature")
    return bytes.fromhex(signature)


def _reference_block(answer: object) -> str:
    blocks = answer if isinstance(answer, list) else [answer]
    header = blocks[0].get("header") if blocks and isinstance(blocks[0], dict) else None
    block_id = header.get("id") if isinstance(header, dict) else None
    if not isinstance(block_id, str) or not _HEX64.fullmatch(block_id):
        raise _fail("FLOW latest block: the access node's answer holds no block id")
    return block_id.lower()


def _sequence_number(answer: object, proposer: _TatumKey) -> int:
    """The proposal key's sequence number, after checking the account is the proposer's and the key usable."""
    account = _answer_object(answer, "FLOW proposer account")
    if _sans_prefix(str(account.get("address", ""))).lower() != _sans_prefix(proposer.address):
        raise _fail("FLOW proposer account: the access node answered for another account")
    keys = account.get("keys")
    match = (
        [k for k in keys if isinstance(k, dict) and str(k.get("index")) == str(proposer.key_id)]
        if isinstance(keys, list)
        else []
    )
    if len(match) != 1:
        raise _fail(f"FLOW proposer account has no key {proposer.key_id}: Tatum proposed a key that does not exist")
    if match[0].get("revoked") is not False:
        raise _fail(f"FLOW proposer key {proposer.key_id} is revoked")
    sequence = match[0].get("sequence_number")
    if not isinstance(sequence, str | int) or not _UINT.fullmatch(str(sequence)) or int(sequence) > UINT64_MAX:
        raise _fail("FLOW proposer key has no sequence number")
    return int(sequence)


class FlowSigner:
    """Signs FLOW pending transactions (authorizer key = the wallet's) and submits them to the access node.

    ``facts``: Tatum's routes, the networks' access nodes, chain ids and contract addresses
    (``kms.chains.flow.FLOW_FACTS``). ``node_url``: the Flow access node's REST API (setting
    ``TATUM_KMS_FLOW_NODE_URL``); None means the default node for the network. ``templates``: ``"cadence-1.0"``
    (default) or ``"upstream"`` (pre-1.0, what upstream sends; only to reproduce its vectors).
    ``accept_emulator``: also accept an access node that reports ``flow-emulator`` (tests and local emulators).
    """

    def __init__(
        self,
        facts: FlowFacts,
        node_url: str | None = None,
        *,
        templates: str = CADENCE_1_0_SET,
        accept_emulator: bool = False,
        seal_polls: int = 60,
        poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if templates not in TEMPLATE_SETS:
            raise ValueError(f"unknown FLOW template set {templates!r}")
        if node_url is not None and not re.fullmatch(r"https?://[^\s?#]+", node_url):
            raise ValueError("the FLOW access node URL must be an http(s) URL without query or fragment")
        self.facts = facts
        self.node_url = node_url.rstrip("/") if node_url else None
        self.templates = templates
        self.accept_emulator = accept_emulator
        self.seal_polls = seal_polls
        self.poll_interval = poll_interval
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FlowSigner(node_url={self.node_url!r}, templates={self.templates!r})"

    def access_node(self, testnet: bool) -> str:
        return self.node_url or self.facts.default_node_urls[testnet]

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        if pending.chain != "FLOW":
            raise _fail(f"pending transaction {pending.id!r} is not a FLOW transaction")
        key = single_key("FLOW", keys)
        contracts = self.facts.contract_addresses[testnet]
        script = parse_flow_transaction(pending.serialized_transaction, self.templates, contracts)
        if gateway is None:
            raise _fail("FLOW signing needs the Tatum API (proposer and payer keys); no gateway was given")
        if gateway.testnet != testnet:
            raise _fail("the gateway's network is not the daemon's network")
        node = self.access_node(testnet)
        proposal = self.facts.proposal_key_path
        payer_answer = gateway.tatum_get(proposal.format(is_payer="true"), what="FLOW payer key")
        payer = _tatum_key(payer_answer, "FLOW payer key")
        self._check_network(gateway.external_get(f"{node}/v1/network/parameters", what="FLOW network"), testnet)
        proposer = _tatum_key(
            gateway.tatum_get(proposal.format(is_payer="false"), what="FLOW proposal key"), "FLOW proposal key"
        )
        try:
            return self._sign_with(script, key, proposer, payer, node, gateway)
        except BaseException:
            self._release_proposal_key(gateway, "", proposer.key_id)
            raise

    def _check_network(self, answer: object, testnet: bool) -> None:
        chain_id = _answer_object(answer, "FLOW network").get("chain_id")
        wanted = self.facts.chain_ids[testnet]
        accepted = {wanted} | ({EMULATOR_CHAIN_ID} if self.accept_emulator else set())
        if chain_id not in accepted:
            raise _fail(f"the FLOW access node is on {str(chain_id)[:40]!r}, not {wanted}")

    def _sign_with(
        self,
        script: FlowScript,
        key: KeyHandle,
        proposer: _TatumKey,
        payer: _TatumKey,
        node: str,
        gateway: NodeGateway,
    ) -> SignedTransaction:
        block = _reference_block(
            gateway.external_get(f"{node}/v1/blocks?height=final&expand=payload", what="FLOW block")
        )
        account_url = f"{node}/v1/accounts/{_sans_prefix(proposer.address)}?block_height=final&expand=contracts,keys"
        sequence = _sequence_number(gateway.external_get(account_url, what="FLOW proposer account"), proposer)
        envelope = _Envelope(self.facts.gas_limit, script, block, proposer, sequence, payer)
        payload_message = envelope.payload_message()
        signatures: list[tuple[str, int, bytes]] = []
        if proposer.temp_id != payer.temp_id:
            answer = gateway.tatum_post(
                self.facts.sign_path,
                {"data": payload_message.hex(), "isPayer": False},
                what="FLOW proposer signature",
            )
            signatures.append((proposer.address, proposer.key_id, _tatum_signature(answer, "FLOW proposer signature")))
        with key.raw() as raw:
            if len(raw) != 32:
                raise _fail("the FLOW key is not a 32-byte secp256k1 key")
            signatures.append((script.authorizer, AUTHORIZER_KEY_INDEX, sign_flow_message(raw, payload_message)))
        envelope_message = envelope.envelope_message(signatures)
        answer = gateway.tatum_post(
            self.facts.sign_path, {"data": envelope_message.hex(), "isPayer": True}, what="FLOW payer signature"
        )
        body = envelope.rest_body(signatures, _tatum_signature(answer, "FLOW payer signature"))
        payload = json.dumps(body, separators=(",", ":"))
        return SignedTransaction(payload=payload, meta={"proposalKey": proposer.key_id, "accessNode": node})

    def submit(self, signed: SignedTransaction, gateway: NodeGateway) -> str:
        """Send the signed transaction to the access node, wait until it is sealed, release the proposal key as
        upstream does (``POST /v3/flow/broadcast {txData, proposalKey}``); the transaction id is the txData."""
        node = self.access_node(gateway.testnet)
        key_id = signed.meta.get("proposalKey")
        try:
            body = json.loads(signed.payload)
            answer = gateway.external_post(f"{node}/v1/transactions", body, what="FLOW transaction")
            tx_id = _answer_object(answer, "FLOW transaction").get("id")
            if not isinstance(tx_id, str) or not _HEX64.fullmatch(tx_id):
                raise _fail("FLOW transaction: the access node's answer holds no transaction id")
        except BaseException:
            self._release_proposal_key(gateway, "", key_id)
            raise
        try:
            self._wait_sealed(tx_id, node, gateway)
        finally:
            self._release_proposal_key(gateway, tx_id, key_id)
        return tx_id

    def _wait_sealed(self, tx_id: str, node: str, gateway: NodeGateway) -> None:
        for attempt in range(self.seal_polls):
            if attempt:
                self._sleep(self.poll_interval)
            result = _answer_object(
                gateway.external_get(f"{node}/v1/transaction_results/{tx_id}", what="FLOW transaction result"),
                "FLOW transaction result",
            )
            if result.get("status") == "Expired":
                raise SigningError(f"FLOW transaction {tx_id} expired before it was sealed")
            if result.get("status") == "Sealed":
                if result.get("status_code") not in (0, None) or result.get("error_message"):
                    message = str(result.get("error_message", ""))[:200].replace("\n", " ")
                    raise KmsError(f"FLOW transaction {tx_id} failed: {message}")
                return
        raise TatumApiError(f"FLOW transaction {tx_id} was not sealed after {self.seal_polls} polls")

    def _release_proposal_key(self, gateway: NodeGateway, tx_id: str, key_id: object) -> None:
        """Upstream frees Tatum's proposal key after every attempt; its failures are ignored there as here."""
        if not isinstance(key_id, int):
            return
        body = {"txData": tx_id, "proposalKey": key_id}
        try:
            gateway.tatum_post(self.facts.release_path, body, what="FLOW proposal key")
        except KmsError:
            pass
