"""In-process doubles of the nodes ALGO, EGLD, VET, FLOW and ADA signing reaches, for ``kms demo`` (offline).

``DemoNodes`` is a NodeGateway: the MultiversX node behind the Tatum gateway, a VeChainThor REST node, Tatum's FLOW
proposal and signing routes with a Flow access node (it holds its own proposer/payer key and keeps every transaction
submitted to it, so the demo can verify what was signed), and Tatum's Cardano Rosetta gateway (the Rosetta double,
called in-process). Anything else goes to ``fallback`` (the sandbox's own gateway). Answers are plausible, not real:
a staging and demo tool, never a production endpoint.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from kms.api import NodeGateway
from kms.chains.egld import EGLD_FACTS
from kms.chains.flow import FLOW_FACTS
from kms.chains.vet import VET_FACTS
from kms.errors import TatumApiError
from kms.sandbox.rosetta import RosettaDouble

TATUM_FLOW_ACCOUNT = "0xf8d6e0586b0a20c7"
ROSETTA_KEY = "demo-rosetta-key"
EGLD_CHAIN_IDS = {True: "D", False: "1"}


class DemoNodes:
    """``with DemoNodes(testnet, fallback) as nodes:`` a NodeGateway answering for the demo's chains."""

    def __init__(self, testnet: bool, fallback: NodeGateway | None = None) -> None:
        self._testnet = testnet
        self.fallback = fallback
        self.flow_transactions: dict[str, Mapping[str, Any]] = {}
        self._tatum_flow_key = ec.generate_private_key(ec.SECP256K1())
        self._rosetta = RosettaDouble(ROSETTA_KEY)
        self._egld_node = EGLD_FACTS.node_path
        self._vet_node = VET_FACTS.default_node_urls[testnet]
        self._flow_node = FLOW_FACTS.default_node_urls[testnet]

    @property
    def testnet(self) -> bool:
        return self._testnet

    def __enter__(self) -> DemoNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flow_transactions.clear()

    # -- the NodeGateway --------------------------------------------------------------------------------------------

    def tatum_get(self, path: str, *, what: str) -> Any:
        if path.startswith(self._egld_node):
            return self._egld(path[len(self._egld_node) :], None)
        if path.startswith("/v3/flow/proposal/"):
            return {"address": TATUM_FLOW_ACCOUNT, "keyId": 1 if path.endswith("true") else 0}
        return self._fallback(lambda g: g.tatum_get(path, what=what), what)

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        if path.startswith(self._egld_node):
            return self._egld(path[len(self._egld_node) :], body)
        if path == FLOW_FACTS.sign_path:
            return {"signature": self._tatum_flow_signature(bytes.fromhex(body["data"]))}
        if path == FLOW_FACTS.release_path:
            return {}
        if path.startswith("/v3/blockchain/node/cardano-"):
            status, answer = self._rosetta.handle(path.replace("{apiKey}", ROSETTA_KEY), json.dumps(body).encode())
            if status != 200:
                raise TatumApiError(f"{what}: HTTP {status}")
            return answer
        return self._fallback(lambda g: g.tatum_post(path, body, what=what), what)

    def node_rpc(self, path: str, method: str, params: Sequence[Any] | Mapping[str, Any], *, what: str) -> Any:
        return self._fallback(lambda g: g.node_rpc(path, method, params, what=what), what)

    def external_get(self, url: str, *, what: str) -> Any:
        if url.startswith(self._vet_node):
            return self._vet_block(url[len(self._vet_node) :])
        if url.startswith(self._flow_node):
            return self._flow_get(url[len(self._flow_node) :])
        return self._fallback(lambda g: g.external_get(url, what=what), what)

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        if url.startswith(self._vet_node + "/accounts/*"):
            return [{"gasUsed": 0, "reverted": False, "vmError": ""} for _ in body["clauses"]]
        if url == self._flow_node + "/v1/transactions":
            tx_id = hashlib.sha3_256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self.flow_transactions[tx_id] = body
            return {"id": tx_id}
        return self._fallback(lambda g: g.external_post(url, body, what=what), what)

    def _fallback(self, call: Callable[[NodeGateway], Any], what: str) -> Any:
        if self.fallback is None:
            raise TatumApiError(f"{what}: the demo has no node for this")
        return call(self.fallback)

    # -- the chains -------------------------------------------------------------------------------------------------

    def _egld(self, path: str, body: Any) -> Any:
        if path == "/network/config":
            chain_id = EGLD_CHAIN_IDS[self._testnet]
            config = {"erd_min_gas_price": 1_000_000_000, "erd_chain_id": chain_id, "erd_min_transaction_version": 1}
            return {"data": {"config": config}}
        if path.endswith("/nonce"):
            return {"data": {"nonce": 0}}
        return {"data": {"txGasUnits": 50_000 + 1_500 * len(body.get("data") or "")}}

    def _vet_block(self, path: str) -> Any:
        if path == "/blocks/0":
            return {"id": VET_FACTS.genesis_ids[self._testnet], "number": 0}
        number = 20_000_000
        return {"id": "0x" + number.to_bytes(4, "big").hex() + secrets.token_hex(28), "number": number}

    def _flow_get(self, path: str) -> Any:
        if path == "/v1/network/parameters":
            return {"chain_id": FLOW_FACTS.chain_ids[self._testnet]}
        if path.startswith("/v1/blocks"):
            return [{"header": {"id": secrets.token_hex(32)}}]
        if path.startswith("/v1/accounts/"):
            keys = [{"index": str(i), "sequence_number": "7", "revoked": False} for i in (0, 1)]
            return {"address": TATUM_FLOW_ACCOUNT[2:], "keys": keys}
        if path.startswith("/v1/transaction_results/"):
            return {"status": "Sealed", "status_code": 0, "error_message": ""}
        raise TatumApiError("FLOW access node: no such route in the demo")

    def _tatum_flow_signature(self, message: bytes) -> str:
        digest = hashlib.sha3_256(message).digest()
        der = self._tatum_flow_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()
