"""XLM: sign a pending transaction as upstream (``@tatumio/xlm`` 2.x = v1 ``signXlmKMSTransaction``, stellar-sdk) does.

``serializedTransaction`` is a base64 XDR ``TransactionEnvelope`` (ENVELOPE_TYPE_TX, no signatures). The network
passphrase follows the daemon's ``--testnet`` flag, as upstream; the ed25519 signature over the transaction hash for
that network is appended and the envelope, base64 XDR, is what upstream posts to the chain's broadcast route. Beyond
upstream: an envelope that already carries a signature, or whose source account is not the wallet's, is refused.

The raw key of an XLM wallet is the 32-byte ed25519 seed inside its ``S...`` secret (decoded by ``kms.chains.xlm``,
which gives the chain code and the network passphrases through the constructor).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import check_chain, single_key


def parse_envelope(pending: PendingTransaction, passphrase: str, code: str) -> Any:
    """The pending transaction's ``TransactionEnvelope`` for ``passphrase``, checked as the signer checks it (also the
    intent decoder's reading, kms.approval.xlm_intent)."""
    from stellar_sdk import TransactionEnvelope
    from stellar_sdk import xdr as stellar_xdr

    text = pending.serialized_transaction
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{code} serializedTransaction is not base64") from None
    try:
        envelope_type = stellar_xdr.TransactionEnvelope.from_xdr_bytes(raw).type
    except Exception:
        raise SigningError(f"{code} serializedTransaction is not a Stellar transaction envelope (XDR)") from None
    if envelope_type != stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX:
        raise SigningError(f"{code} envelope type {envelope_type.name} is not signed here (expected ENVELOPE_TYPE_TX)")
    try:
        return TransactionEnvelope.from_xdr(text, passphrase)
    except Exception:
        raise SigningError(f"{code} serializedTransaction is not a Stellar transaction envelope (XDR)") from None


class XlmSigner:
    """Signs XLM pending transactions with one wallet; no network call. ``passphrases`` maps the daemon's
    ``--testnet`` flag to the network passphrase the signature commits to."""

    def __init__(self, code: str, passphrases: Mapping[bool, str]) -> None:
        self.code = code
        self.passphrases = {False: passphrases[False], True: passphrases[True]}

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        from stellar_sdk import Keypair

        check_chain(pending, self.code)
        key = single_key(self.code, keys)
        envelope = parse_envelope(pending, self.passphrases[bool(testnet)], self.code)
        if envelope.signatures:
            raise SigningError("XLM envelope already carries a signature")
        with key.raw() as seed:
            if len(seed) != 32:
                raise SigningError(f"the key for signatureId {key.signature_id!r} is not a 32-byte ed25519 seed")
            keypair = Keypair.from_raw_ed25519_seed(bytes(seed))
        try:
            if envelope.transaction.source.account_id != keypair.public_key:
                raise SigningError("the XLM transaction's source account is not the address of the signing key")
            envelope.sign(keypair)
            return SignedTransaction(envelope.to_xdr())
        finally:
            del keypair


def sign_rate(
    signer: XlmSigner, pending: PendingTransaction, key: KeyHandle, rounds: int, testnet: bool = True
) -> None:
    """Sign ``pending`` ``rounds`` times (for bench/sign.py)."""
    for _ in range(rounds):
        signer.sign(pending, [key], testnet, None)
