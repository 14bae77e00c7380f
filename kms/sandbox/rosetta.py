"""A local double of the Cardano Rosetta construction API behind Tatum's node gateway
(``POST /v3/blockchain/node/cardano-{preprod|mainnet}/{apiKey}/construction/{derive|preprocess|metadata|payloads|
combine}``), for tests and staging.

It builds real Cardano transaction bodies from the operations (pycardano), wraps them as Cardano Rosetta does
(CBOR ``[transaction hex, extra data]``), and in ``combine`` verifies every signature it is given (ed25519 over the
payload, by the key whose enterprise address the payload names) before assembling the signed transaction; a bad
signature is an HTTP 500 Rosetta error, as the real gateway answers. ``lies`` makes it misbehave on purpose, to test
that a signer does not believe it. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError
from pycardano import (
    Address,
    Network,
    Transaction,
    TransactionBody,
    TransactionInput,
    TransactionOutput,
    TransactionWitnessSet,
    VerificationKey,
    VerificationKeyWitness,
)
from pycardano.crypto.bip32 import BIP32ED25519PublicKey

MAX_BODY = 4 * 1024 * 1024
SUGGESTED_FEE = 170_000
TIP_SLOT = 50_000_000
_ROUTE = re.compile(r"^/v3/blockchain/node/cardano-(preprod|mainnet)/([^/]+)/construction/([a-z]+)$")
ATTACKER_ADDRESS = "addr_test1vr4a7jylg9a25hrfwz7s8fc044mm3gak3a3rju49895ushsfwvjln"
LIES = frozenset({"derive_address", "payload_address", "pay_elsewhere", "payload_hash", "combine_other_body"})


class RosettaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _network(name: str) -> Network:
    return Network.TESTNET if name == "preprod" else Network.MAINNET


def enterprise_address_of(public_key_hex: str, network: str) -> str:
    return str(Address(payment_part=VerificationKey(bytes.fromhex(public_key_hex)).hash(), network=_network(network)))


def _body_from(operations: list[Mapping[str, Any]], ttl: int, lies: frozenset[str]) -> TransactionBody:
    inputs, outputs, total_in, total_out = [], [], 0, 0
    for operation in operations:
        value = int(operation["amount"]["value"])
        if operation["type"] == "input":
            tx_hash, index = operation["coin_change"]["coin_identifier"]["identifier"].split(":")
            inputs.append(TransactionInput.from_primitive([tx_hash, int(index)]))
            total_in -= value
        else:
            address = ATTACKER_ADDRESS if "pay_elsewhere" in lies else operation["account"]["address"]
            outputs.append(TransactionOutput(Address.from_primitive(address), value))
            total_out += value
    return TransactionBody(inputs=inputs, outputs=outputs, fee=total_in - total_out, ttl=ttl)


class RosettaDouble:
    """``with RosettaDouble(api_key) as rosetta:`` serves on ``rosetta.url``; ``requests`` records every call,
    ``verified`` every (address, public key) whose signature ``combine`` checked."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[tuple[str, Mapping[str, Any]]] = []
        self.verified: list[tuple[str, str]] = []
        self.lies: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RosettaDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # the path holds the API key
                pass

            def do_POST(self) -> None:
                status, answer = double.handle(
                    self.path, self.rfile.read(min(int(self.headers["Content-Length"] or 0), MAX_BODY))
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, path: str, raw: bytes) -> tuple[int, Any]:
        match = _ROUTE.fullmatch(path)
        if match is None or match.group(2) != self.api_key:
            return 404 if match is None else 403, {"message": "no such route or key"}
        network, operation = match.group(1), match.group(3)
        try:
            request = json.loads(raw)
            if request.get("network_identifier") != {"blockchain": "cardano", "network": network}:
                raise RosettaError(400, 1, "network_identifier does not match the route")
            with self._lock:
                self.requests.append((operation, request))
                return 200, getattr(self, f"_{operation}")(request, network)
        except RosettaError as error:
            return error.status, {"code": error.code, "message": str(error), "retriable": False}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            return 500, {"code": 4, "message": f"bad request: {type(exc).__name__}", "retriable": False}

    def _derive(self, request: Mapping[str, Any], network: str) -> Any:
        key = request["public_key"]
        if key.get("curve_type") != "edwards25519" or len(bytes.fromhex(key["hex_bytes"])) != 32:
            raise RosettaError(400, 2, "invalid public key")
        address = enterprise_address_of(key["hex_bytes"], network)
        if "derive_address" in self.lies:
            address = ATTACKER_ADDRESS
        return {"account_identifier": {"address": address}}

    def _preprocess(self, request: Mapping[str, Any], network: str) -> Any:
        ttl = int(request["metadata"]["relative_ttl"])
        return {"options": {"relative_ttl": ttl, "transaction_size": 300 + 200 * len(request["operations"])}}

    def _metadata(self, request: Mapping[str, Any], network: str) -> Any:
        ttl = TIP_SLOT + int(request["options"]["relative_ttl"])
        fee = {"value": str(SUGGESTED_FEE), "currency": {"symbol": "ADA", "decimals": 6}}
        return {"metadata": {"ttl": str(ttl), "protocol_parameters": {"minFeeA": "44"}}, "suggested_fee": [fee]}

    def _payloads(self, request: Mapping[str, Any], network: str) -> Any:
        operations = request["operations"]
        body = _body_from(operations, int(request["metadata"]["ttl"]), frozenset(self.lies))
        body_bytes = body.to_cbor()
        digest = hashlib.blake2b(body_bytes, digest_size=32).hexdigest()
        if "payload_hash" in self.lies:
            digest = "00" * 32
        signers = dict.fromkeys(op["account"]["address"] for op in operations if op["type"] == "input")
        if "payload_address" in self.lies:
            signers = dict.fromkeys([ATTACKER_ADDRESS])
        payloads = [
            {"account_identifier": {"address": a}, "hex_bytes": digest, "signature_type": "ed25519"} for a in signers
        ]
        unsigned = cbor2.dumps([body_bytes.hex(), {"operations": operations}]).hex()
        return {"unsigned_transaction": unsigned, "payloads": payloads}

    def _combine(self, request: Mapping[str, Any], network: str) -> Any:
        body_hex, extra = cbor2.loads(bytes.fromhex(request["unsigned_transaction"]))
        body_bytes = bytes.fromhex(body_hex)
        digest = hashlib.blake2b(body_bytes, digest_size=32).digest()
        witnesses = []
        for signature in request["signatures"]:
            public_key = signature["public_key"]["hex_bytes"]
            address = signature["signing_payload"]["account_identifier"]["address"]
            if enterprise_address_of(public_key, network) != address:
                raise RosettaError(500, 5, "the public key does not own the payload's address")
            if bytes.fromhex(signature["signing_payload"]["hex_bytes"]) != digest:
                raise RosettaError(500, 5, "the signed payload is not the transaction's hash")
            try:
                BIP32ED25519PublicKey(bytes.fromhex(public_key), bytes(32)).verify(
                    bytes.fromhex(signature["hex_bytes"]), digest
                )
            except BadSignatureError as exc:
                raise RosettaError(500, 5, "invalid signature") from exc
            self.verified.append((address, public_key))
            witnesses.append(
                VerificationKeyWitness(
                    VerificationKey(bytes.fromhex(public_key)), bytes.fromhex(signature["hex_bytes"])
                )
            )
        body = TransactionBody.from_cbor(body_bytes)
        if "combine_other_body" in self.lies:
            body.fee += 1
        transaction = Transaction(body, TransactionWitnessSet(vkey_witnesses=witnesses))
        return {"signed_transaction": cbor2.dumps([transaction.to_cbor().hex(), extra]).hex()}
