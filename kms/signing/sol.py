"""SOL: sign and submit a pending transaction as upstream's ``@tatumio/solana`` 2.2.100 does (``@solana/web3.js`` 1.56).

``serializedTransaction`` is ``{"txData": <hex of a legacy message>, "mintPK"?: <secret>}``. Upstream fetches a
blockhash from the Tatum node gateway (``getLatestBlockhash``, commitment ``finalized``), puts it in the message,
signs with every wallet in ``hashes`` (plus ``mintPK``: an NFT mint's key carried in the pending transaction itself),
sends the transaction itself (``sendTransaction``), polls ``getTransaction`` and posts the **transaction id** to the
chain's broadcast route.

Here that is two steps, so the daemon can journal the signed bytes before anything leaves the process:
``SolSigner.sign`` fetches the blockhash and signs (``SignedTransaction.payload`` is the base64 wire transaction,
``meta`` holds ``blockhash``, ``lastValidBlockHeight`` and ``txId``); ``SolSigner.submit`` sends those bytes, polls
and returns the transaction id. Every key must sign (missing signer: upstream's "Signature verification failed") and
no key may be extra (upstream's "unknown signer: ...").

The raw key of a SOL wallet is the 32-byte ed25519 seed (the first half of Solana's 64-byte secret key, whose second
half must be the seed's public key), decoded by ``kms.chains.sol``, which also gives the chain code and the node
gateway's JSON-RPC path through the constructor.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kms.api import NodeGateway, PendingTransaction
from kms.chains.sol import seed_of_secret_key
from kms.errors import SigningError, TatumApiError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.base import LANDED, RESEND, RESIGN, Recovery, SignedTransaction
from kms.signing.pending import check_chain, parse_json_object
from kms.signing.sol_message import check_upstream_order, parse_message

CONFIRM_ATTEMPTS = 9
"""Upstream's ``sendTransactionWithConfirm``: up to 9 ``getTransaction`` polls, sleeping ``attempt`` seconds after
each unconfirmed one."""
SEND_OPTIONS = {"encoding": "base64", "preflightCommitment": "confirmed"}
_BAD_MINT = "SOL serializedTransaction has an invalid mintPK"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def parse_pending(pending: PendingTransaction, code: str) -> tuple[Any, str | None]:
    """(legacy message, mintPK or None) as the signer reads them (also the intent decoder's reading)."""
    document = parse_json_object(pending.serialized_transaction, code)
    tx_data, mint = document.get("txData"), document.get("mintPK")
    if not isinstance(tx_data, str) or not _HEX.fullmatch(tx_data):
        raise SigningError(f"{code} serializedTransaction has no txData hex")
    if mint is not None and not isinstance(mint, str):
        raise SigningError(f"{code} serializedTransaction has a mintPK that is not text")
    message = parse_message(bytes.fromhex(tx_data))
    check_upstream_order(message)
    return message, mint or None


def _keypairs(keys: Sequence[KeyHandle], mint: str | None) -> list[Any]:
    from solders.keypair import Keypair

    if not keys:
        raise SigningError("SOL transactions need at least one key")
    keypairs = []
    for key in keys:
        with key.raw() as seed:
            if len(seed) != 32:
                raise SigningError(f"the key for signatureId {key.signature_id!r} is not a 32-byte ed25519 seed")
            keypairs.append(Keypair.from_seed(bytes(seed)))
    if mint is not None:
        with (
            SecretBuffer(mint) as text,
            seed_of_secret_key(text, "SOL serializedTransaction has an invalid mintPK") as seed,
        ):
            keypairs.append(Keypair.from_seed(seed.bytes()))
    unique: dict[Any, Any] = {}
    for keypair in keypairs:  # upstream signs once per distinct key
        unique.setdefault(keypair.pubkey(), keypair)
    return list(unique.values())


def _signers_in_order(message: Any, keypairs: Sequence[Any]) -> list[Any]:
    required = list(message.account_keys[: message.header.num_required_signatures])
    by_pubkey = {keypair.pubkey(): keypair for keypair in keypairs}
    for pubkey in by_pubkey:
        if pubkey not in required:
            raise SigningError(f"unknown signer: {pubkey}")
    missing = [str(pubkey) for pubkey in required if pubkey not in by_pubkey]
    if missing:
        raise SigningError(f"Signature verification failed: no key for signer {missing[0]}")
    return [by_pubkey[pubkey] for pubkey in required]


def _latest_blockhash(gateway: NodeGateway, rpc_path: str) -> tuple[Any, int]:
    from solders.hash import Hash

    answer = gateway.node_rpc(rpc_path, "getLatestBlockhash", [{"commitment": "finalized"}], what="SOL blockhash")
    value = answer.get("value") if isinstance(answer, Mapping) else None
    blockhash = value.get("blockhash") if isinstance(value, Mapping) else None
    height = value.get("lastValidBlockHeight") if isinstance(value, Mapping) else None
    if not isinstance(blockhash, str) or not blockhash.isalnum() or len(blockhash) > 44:
        raise TatumApiError("SOL blockhash: the node gateway answered no valid blockhash")
    try:
        parsed = Hash.from_string(blockhash)
    except Exception:
        raise TatumApiError("SOL blockhash: the node gateway answered no valid blockhash") from None
    if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height < 2**64:
        raise TatumApiError("SOL blockhash: the node gateway answered no valid lastValidBlockHeight")
    return parsed, height


def _with_blockhash(message: Any, blockhash: Any) -> Any:
    from solders.message import Message

    header = message.header
    return Message.new_with_compiled_instructions(
        header.num_required_signatures,
        header.num_readonly_signed_accounts,
        header.num_readonly_unsigned_accounts,
        list(message.account_keys),
        blockhash,
        list(message.instructions),
    )


def transaction_id(payload: str) -> str:
    """The id of a signed wire transaction (base64): its first signature, base58."""
    from solders.transaction import Transaction

    try:
        return str(Transaction.from_bytes(base64.b64decode(payload, validate=True)).signatures[0])
    except Exception:
        raise SigningError("the journaled SOL transaction is not a signed Solana transaction") from None


class SolSigner:
    """Signs SOL pending transactions (one blockhash look-up), submits them as upstream does, and says what to do with
    a journaled one after a crash (``recovery_decision``)."""

    def __init__(self, code: str, rpc_path: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.code = code
        self.rpc_path = rpc_path
        self._sleep = sleep

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        from solders.transaction import Transaction

        check_chain(pending, self.code)
        message, mint = parse_pending(pending, self.code)
        signers = _signers_in_order(message, _keypairs(keys, mint))
        try:
            if gateway is None:
                raise SigningError(f"{self.code} signing needs the Tatum node gateway for a blockhash")
            blockhash, last_valid_height = _latest_blockhash(gateway, self.rpc_path)
            to_sign = _with_blockhash(message, blockhash)
            message_bytes = bytes(to_sign)
            signatures = [signer.sign_message(message_bytes) for signer in signers]
        finally:
            del signers
        transaction = Transaction.populate(to_sign, signatures)
        meta = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid_height, "txId": str(signatures[0])}
        return SignedTransaction(base64.b64encode(bytes(transaction)).decode("ascii"), meta)

    def transaction_id(self, signed: SignedTransaction) -> str:
        return transaction_id(signed.payload)

    def submit(self, signed: SignedTransaction, gateway: NodeGateway) -> str:
        """Send the signed bytes (``sendTransaction``), poll ``getTransaction`` and return the transaction id, the
        txData upstream posts to the broadcast route."""
        tx_id = transaction_id(signed.payload)
        answer = gateway.node_rpc(
            self.rpc_path, "sendTransaction", [signed.payload, dict(SEND_OPTIONS)], what="SOL send"
        )
        if answer != tx_id:
            raise TatumApiError("SOL send: the node gateway answered a transaction id that is not this transaction's")
        last: Mapping[str, Any] | None = None
        for attempt in range(1, CONFIRM_ATTEMPTS + 1):
            found = gateway.node_rpc(
                self.rpc_path, "getTransaction", [tx_id, {"commitment": "confirmed"}], what="SOL transaction status"
            )
            if found is not None and not isinstance(found, Mapping):
                raise TatumApiError("SOL transaction status: the node gateway answered no transaction")
            if found is not None:
                last = found
                error = _meta_error(found)
                if error is None:
                    return tx_id
                break  # a transaction that failed in a confirmed block stays failed
            self._sleep(attempt)
        if last is not None:
            raise TatumApiError(f"Transaction {tx_id} failed with error: {_meta_error(last)}")
        raise TatumApiError(
            f"Transaction {tx_id} has not been confirmed yet. The transaction could still be accepted by the Solana "
            "network. We advise to manually check if the transaction has been dropped or accepted before you try to "
            "send the transaction again."
        )

    def recovery_decision(self, signed: SignedTransaction, gateway: NodeGateway) -> Recovery:
        """What to do with a journaled SOL transaction after a crash: ``LANDED``, ``RESEND`` or ``RESIGN``.

        The block height is asked first: once the finalized height is past ``lastValidBlockHeight`` the transaction
        can no longer land, so a status look-up made after that (searching the whole history) that finds nothing
        proves it never did. Any doubt (no height recorded, an unreadable answer) is ``RESEND`` or an error, never
        ``RESIGN``."""
        tx_id = transaction_id(signed.payload)
        last_valid = signed.meta.get("lastValidBlockHeight")
        height = gateway.node_rpc(
            self.rpc_path, "getBlockHeight", [{"commitment": "finalized"}], what="SOL block height"
        )
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise TatumApiError("SOL block height: the node gateway answered no block height")
        statuses = gateway.node_rpc(
            self.rpc_path,
            "getSignatureStatuses",
            [[tx_id], {"searchTransactionHistory": True}],
            what="SOL signature status",
        )
        value = statuses.get("value") if isinstance(statuses, Mapping) else None
        if not isinstance(value, list) or len(value) != 1 or not (value[0] is None or isinstance(value[0], Mapping)):
            raise TatumApiError("SOL signature status: the node gateway answered no status for the signature")
        if value[0] is not None:
            return LANDED
        expired = isinstance(last_valid, int) and not isinstance(last_valid, bool) and height > last_valid
        return RESIGN if expired else RESEND


def _meta_error(found: Mapping[str, Any]) -> str | None:
    """The ``meta.err`` of a found transaction as short one-line text, or None when it succeeded."""
    import json

    meta = found.get("meta")
    error = meta.get("err") if isinstance(meta, Mapping) else None
    if not error:
        return None
    text = error if isinstance(error, str) else json.dumps(error, separators=(",", ":"), default=str)
    return " ".join(text.split())[:200]


def sign_rate(
    signer: SolSigner, pending: PendingTransaction, keys: Sequence[KeyHandle], rounds: int, gateway: NodeGateway
) -> None:
    """Sign ``pending`` ``rounds`` times (for bench/sign.py; ``gateway`` answers ``getLatestBlockhash``)."""
    for _ in range(rounds):
        signer.sign(pending, keys, True, gateway)
