"""``kms demo``'s transaction builders and independent checks for ALGO, EGLD, VET, FLOW and ADA.

Each builds a pending transaction as the Tatum API would hand it for the demo wallet, and checks what reached the
broadcast endpoint with the chain's own library or primitive, not with kms's signer: algosdk's msgpack and ed25519
(ALGO), ed25519 over the MultiversX JSON (EGLD), public-key recovery over blake2b-256 of the Thor body (VET), ECDSA
verification of the authorizer's signature over the Flow payload rebuilt from the submitted REST body (FLOW), and
pycardano for every witness of the Cardano transaction (ADA). Node look-ups are answered by ``kms.sandbox.nodes``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from kms.sandbox.nodes import DemoNodes


def _byte_map(data: bytes) -> dict[str, int]:
    return {str(i): b for i, b in enumerate(data)}


class AlgoDemo:
    """A flat-fee payment in upstream's JSON form of an algosdk Transaction; checked with algosdk and PyNaCl."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        from algosdk import encoding

        from kms.chains.algo import GENESIS

        def address_object(text: str) -> dict[str, Any]:
            public_key = encoding.decode_address(text)
            checksum = hashlib.new("sha512_256", public_key).digest()[-4:]
            return {"publicKey": _byte_map(public_key), "checksum": _byte_map(checksum)}

        genesis_id, genesis_hash = GENESIS[testnet]
        recipient = encoding.encode_address(hashlib.sha256(address.encode()).digest())
        tx = {"name": "Transaction", "tag": {"type": "Buffer", "data": [84, 88]}, "from": address_object(address),
              "to": address_object(recipient), "amount": 1_500_000, "note": {}, "type": "pay", "flatFee": True,
              "genesisHash": {"type": "Buffer", "data": list(genesis_hash)}, "fee": 1000, "firstRound": 1000,
              "lastRound": 2000, "genesisID": genesis_id, "appArgs": [], "lease": {}}  # fmt: skip
        return json.dumps(tx)

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from algosdk import encoding
        from nacl.signing import VerifyKey

        signed = encoding.msgpack_decode(base64.b64encode(bytes.fromhex(tx_data)).decode())
        message = b"TX" + base64.b64decode(encoding.msgpack_encode(signed.transaction))
        VerifyKey(encoding.decode_address(address)).verify(message, base64.b64decode(signed.signature))
        if signed.transaction.sender != address:
            raise ValueError("the payment is not from the wallet")
        return f"ed25519 signature of {address[:8]}... verified over the msgpack transaction"


class EgldDemo:
    """A transfer; checked by verifying ed25519 over the signed JSON without its signature (PyNaCl)."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        from bip_utils import Bech32Encoder

        recipient = Bech32Encoder.Encode("erd", hashlib.sha256(address.encode()).digest())  # any 32 bytes
        return json.dumps({"from": address, "to": recipient, "value": "0.25", "gasPrice": 1, "gasLimit": 1})

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from bip_utils import EgldAddrDecoder
        from nacl.signing import VerifyKey

        plain = json.loads(tx_data)
        signature = bytes.fromhex(plain.pop("signature"))
        message = json.dumps(plain, separators=(",", ":")).encode()
        VerifyKey(EgldAddrDecoder.DecodeAddr(address)).verify(message, signature)
        if plain["sender"] != address:
            raise ValueError("the transfer is not from the wallet")
        return f"ed25519 signature verified (chain {plain['chainID']}, nonce {plain['nonce']})"


class VetDemo:
    """A VET transfer; checked by recovering the signer from the signature over blake2b-256 of the RLP body."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        recipient = "0x" + hashlib.sha256(address.encode()).hexdigest()[:40]
        return json.dumps({"from": address, "to": recipient, "value": "1000000000000000000"})

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        import rlp
        from coincurve import PublicKey
        from eth_utils import keccak

        *body, signature = rlp.decode(bytes.fromhex(tx_data.removeprefix("0x")))
        digest = hashlib.blake2b(rlp.encode(body), digest_size=32).digest()
        public_key = PublicKey.from_signature_and_message(bytes(signature), digest, hasher=None)
        signer = "0x" + keccak(public_key.format(compressed=False)[1:])[12:].hex()
        if signer != address.lower():
            raise ValueError(f"recovered {signer}, expected {address}")
        return f"signer {signer} recovered over the Thor body (chain tag {body[0][0]:#x})"


class FlowDemo:
    """A FLOW transfer authorized by the wallet's key; checked by verifying the authorizer's payload signature in
    the transaction the access-node double received (the txData is only its id)."""

    ACCOUNT = "0x1f2e3d4c5b6a7980"

    def __init__(self, nodes: DemoNodes) -> None:
        self.nodes = nodes

    def demo_pending(self, address: str, testnet: bool) -> str:
        body = {"account": self.ACCOUNT, "to": "0x0a1b2c3d4e5f6071", "amount": "1.5", "currency": "FLOW"}
        return json.dumps({"type": 2, "body": body})

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        import rlp
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

        body = self.nodes.flow_transactions[tx_data]
        fields = [
            base64.b64decode(body["script"]), [base64.b64decode(a) for a in body["arguments"]],
            bytes.fromhex(body["reference_block_id"]), int(body["gas_limit"]),
            bytes.fromhex(body["proposal_key"]["address"]), int(body["proposal_key"]["key_index"]),
            int(body["proposal_key"]["sequence_number"]), bytes.fromhex(body["payer"]),
            [bytes.fromhex(a) for a in body["authorizers"]],
        ]  # fmt: skip
        message = b"FLOW-V0.0-transaction".ljust(32, b"\0") + rlp.encode(fields)
        (mine,) = [s for s in body["payload_signatures"] if s["address"] == self.ACCOUNT[2:]]
        raw = base64.b64decode(mine["signature"])
        signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x04" + bytes.fromhex(address))
        digest = hashlib.sha3_256(message).digest()
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))  # raises when it does not verify
        return f"authorizer signature verified over the Flow payload (tx {tx_data[:12]}...)"


class AdaDemo:
    """A payment from the wallet's enterprise address through the Rosetta double; every witness checked with
    pycardano against the transaction body."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        def operation(kind: str, index: int, where: str, value: int) -> dict[str, Any]:
            op: dict[str, Any] = {
                "operation_identifier": {"index": index, "network_index": 0}, "related_operations": [],
                "type": kind, "status": "success", "account": {"address": where, "metadata": {}},
                "amount": {"value": str(value), "currency": {"symbol": "ADA", "decimals": 6}}, "metadata": {},
            }  # fmt: skip
            if kind == "input":
                coin = {"identifier": f"{secrets.token_hex(32)}:0"}
                op["coin_change"] = {"coin_identifier": coin, "coin_action": "coin_created"}
            return op

        return json.dumps(
            [operation("input", 0, address, -5_000_000), operation("output", 1, address, 4_800_000)]
        )  # paid back to itself: the demo has no second wallet

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        import cbor2
        from pycardano import Address, Network, Transaction, VerificationKey
        from pycardano.crypto.bip32 import BIP32ED25519PublicKey

        transaction = Transaction.from_cbor(bytes.fromhex(cbor2.loads(bytes.fromhex(tx_data))[0]))
        body_hash = hashlib.blake2b(transaction.transaction_body.to_cbor(), digest_size=32).digest()
        network = Network.TESTNET if testnet else Network.MAINNET
        for witness in transaction.transaction_witness_set.vkey_witnesses or []:
            public_key = bytes(witness.vkey.payload)
            BIP32ED25519PublicKey(public_key, bytes(32)).verify(bytes(witness.signature), body_hash)
            if str(Address(payment_part=VerificationKey(public_key).hash(), network=network)) == address:
                return "pycardano verified the wallet's witness over the transaction body"
        raise ValueError("no witness of the wallet's key")
