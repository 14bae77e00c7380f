"""``kms demo`` builders for TRON, SOL, XLM and XRP: a pending transaction as the Tatum API would store it, and a check
of what the daemon broadcast made with the chain's own library rather than kms's signer (``kms.demo.DemoSupport``).

TRON: the signer recovered from the signature over the txID (coincurve) is the owner. SOL: the broadcast transaction
id is an ed25519 signature (solders) by the wallet over the message under the sandbox node's blockhash, which the
node accepted only after verifying it. XLM: the envelope signature verifies (stellar-sdk) for the network's
passphrase. XRP: the blob decodes (xrpl-py), its ``TxnSignature`` verifies and ``SigningPubKey`` is the ``Account``.
"""

from __future__ import annotations

import hashlib
import json
import secrets


class TronDemo:
    """A TransferContract of 1.5 TRX from the wallet, as the node's transaction JSON."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        from kms.signing.tron_protobuf import encode_raw_data

        value = {"amount": 1_500_000, "owner_address": _tron_hex(address), "to_address": "41" + secrets.token_hex(20)}
        raw_data = {
            "contract": [{"parameter": {"value": value, "type_url": "type.googleapis.com/protocol.TransferContract"},
                          "type": "TransferContract"}],
            "ref_block_bytes": "1a2b", "ref_block_hash": secrets.token_hex(8),
            "expiration": 1_767_225_660_000, "timestamp": 1_767_225_600_000,
        }  # fmt: skip
        raw_hex = encode_raw_data(raw_data).hex()
        tx = {"visible": False, "txID": hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest(), "raw_data": raw_data,
              "raw_data_hex": raw_hex}  # fmt: skip
        return json.dumps(tx, separators=(",", ":"))

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from coincurve import PublicKey
        from eth_utils import keccak

        tx = json.loads(tx_data)
        txid = bytes.fromhex(tx["txID"])
        if hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).digest() != txid:
            raise ValueError("txID is not the SHA-256 of raw_data_hex")
        signature = bytes.fromhex(tx["signature"][0])
        recoverable = signature[:64] + bytes([signature[64] - 27])
        public_key = PublicKey.from_signature_and_message(recoverable, txid, hasher=None)
        signer = "41" + keccak(public_key.format(compressed=False)[1:])[-20:].hex()
        if signer != _tron_hex(address):
            raise ValueError(f"recovered {signer}, expected {_tron_hex(address)}")
        return f"signer {address} recovered from the signature over the txID (coincurve)"


def _tron_hex(address: str) -> str:
    from bip_utils import Base58Decoder

    return Base58Decoder.CheckDecode(address).hex()


class SolDemo:
    """A transfer of 0.001 SOL from the wallet (a web3.js-shaped legacy message with the placeholder blockhash)."""

    PLACEHOLDER_BLOCKHASH = "7WyEshBZcZwEbJsvSeGgCkSNMxxxFAym3x7Cuj6UjAUE"

    def __init__(self) -> None:
        self._messages: dict[str, bytes] = {}

    def demo_pending(self, address: str, testnet: bool) -> str:
        from solders.hash import Hash
        from solders.keypair import Keypair
        from solders.message import Message
        from solders.pubkey import Pubkey
        from solders.system_program import TransferParams, transfer

        payer = Pubkey.from_string(address)
        instruction = transfer(TransferParams(from_pubkey=payer, to_pubkey=Keypair().pubkey(), lamports=1_000_000))
        message = bytes(Message.new_with_blockhash([instruction], payer, Hash.from_string(self.PLACEHOLDER_BLOCKHASH)))
        self._messages[address] = message
        return json.dumps({"txData": message.hex()})

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from solders.hash import Hash
        from solders.message import Message
        from solders.pubkey import Pubkey
        from solders.signature import Signature

        from kms.sandbox.solana import DEFAULT_BLOCKHASH

        built = Message.from_bytes(self._messages[address])
        sent = Message.new_with_compiled_instructions(
            built.header.num_required_signatures,
            built.header.num_readonly_signed_accounts,
            built.header.num_readonly_unsigned_accounts,
            list(built.account_keys),
            Hash.from_string(DEFAULT_BLOCKHASH),
            list(built.instructions),
        )
        if not Signature.from_string(tx_data).verify(Pubkey.from_string(address), bytes(sent)):
            raise ValueError("the transaction id is not the wallet's signature over the message")
        return "transaction id verified as the wallet's ed25519 signature over the sent message (solders)"


class XlmDemo:
    """A payment of 1.5 XLM from the wallet, as a base64 XDR envelope without signatures."""

    def demo_pending(self, address: str, testnet: bool) -> str:
        from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

        builder = TransactionBuilder(Account(address, 4242), _passphrase(testnet), base_fee=100)
        builder.append_payment_op(Keypair.random().public_key, Asset.native(), "1.5")
        return builder.set_timeout(300).build().to_xdr()

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from stellar_sdk import Keypair, TransactionEnvelope

        envelope = TransactionEnvelope.from_xdr(tx_data, _passphrase(testnet))
        if len(envelope.signatures) != 1 or envelope.transaction.source.account_id != address:
            raise ValueError("expected one signature on a transaction from the wallet")
        Keypair.from_public_key(address).verify(envelope.hash(), envelope.signatures[0].signature)
        return "envelope signature verified for the network passphrase (stellar-sdk)"


def _passphrase(testnet: bool) -> str:
    from stellar_sdk import Network

    return Network.TESTNET_NETWORK_PASSPHRASE if testnet else Network.PUBLIC_NETWORK_PASSPHRASE


class XrpDemo:
    """A payment of 1 XRP from the wallet, autofilled as upstream stores it."""

    DESTINATION = "rGuN53T7cUp6Ec5L2tX9H7oJ7vQzVy6Cvq"

    def demo_pending(self, address: str, testnet: bool) -> str:
        tx = {"Account": address, "Amount": "1000000", "Destination": self.DESTINATION, "TransactionType": "Payment",
              "Sequence": 7, "LastLedgerSequence": 90_000_500, "Fee": "12", "Flags": 0}  # fmt: skip
        return json.dumps(tx)

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from xrpl.core.binarycodec import decode, encode_for_signing
        from xrpl.core.keypairs import derive_classic_address, is_valid_message

        decoded = decode(tx_data)
        unsigned = {k: v for k, v in decoded.items() if k != "TxnSignature"}
        public_key = decoded["SigningPubKey"]
        signature = bytes.fromhex(decoded["TxnSignature"])
        valid = is_valid_message(bytes.fromhex(encode_for_signing(unsigned)), signature, public_key)
        if not valid or decoded["Account"] != address or derive_classic_address(public_key) != address:
            raise ValueError("TxnSignature does not verify for the wallet's Account")
        return "blob decoded, TxnSignature verified, SigningPubKey is the Account (xrpl-py)"


def family_demos() -> tuple[tuple[type, type], ...]:
    """(chain class, demo builder) for the chains above, matched by class as ``kms.demo`` matches families."""
    from kms.chains.sol import SolChain
    from kms.chains.tron import TronChain
    from kms.chains.xlm import XlmChain
    from kms.chains.xrp import XrpChain

    return ((TronChain, TronDemo), (SolChain, SolDemo), (XlmChain, XlmDemo), (XrpChain, XrpDemo))
