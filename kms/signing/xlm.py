"""XLM: sign a pending transaction as upstream (``@tatumio/xlm`` 2.x = v1 ``signXlmKMSTransaction``, stellar-sdk) does.

``serializedTransaction`` is a base64 XDR ``TransactionEnvelope`` (ENVELOPE_TYPE_TX, no signatures). The network
passphrase follows the daemon's ``--testnet`` flag, as upstream; the ed25519 signature over the transaction hash for
that network is appended and the envelope, base64 XDR, is what upstream posts to ``/v3/xlm/broadcast``. Beyond
upstream: an envelope that already carries a signature, or whose source account is not the wallet's, is refused.

The raw key of an XLM wallet is the 32-byte ed25519 seed inside its ``S...`` secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from kms.api import NodeGateway, PendingTransaction
from kms.errors import SigningError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.signing.base import SignedTransaction
from kms.signing.pending import check_chain, single_key

CODE = "XLM"
BROADCAST_PATH = "/v3/xlm/broadcast"
TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name
MAINNET_PASSPHRASE = "Public Global Stellar Network ; September 2015"  # noqa: S105 - a public network name
_INVALID_SEED = "invalid XLM secret: expected a Stellar secret seed (S...)"


def network_passphrase(testnet: bool) -> str:
    return TESTNET_PASSPHRASE if testnet else MAINNET_PASSPHRASE


def xlm_raw_key(secret: str) -> SecretBuffer:
    """The stored XLM secret (``S...``) as the raw key the signer takes: the 32-byte ed25519 seed."""
    from stellar_sdk import StrKey

    if not isinstance(secret, str) or not secret.startswith("S") or not secret.isalnum():
        raise SigningError(_INVALID_SEED)
    try:
        seed = StrKey.decode_ed25519_secret_seed(secret)
    except Exception:  # the library's message may quote the secret
        raise SigningError(_INVALID_SEED) from None
    return SecretBuffer(bytearray(seed))


def _envelope(pending: PendingTransaction, passphrase: str) -> Any:
    from stellar_sdk import TransactionEnvelope
    from stellar_sdk import xdr as stellar_xdr

    text = pending.serialized_transaction
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError("XLM serializedTransaction is not base64") from None
    try:
        envelope_type = stellar_xdr.TransactionEnvelope.from_xdr_bytes(raw).type
    except Exception:
        raise SigningError("XLM serializedTransaction is not a Stellar transaction envelope (XDR)") from None
    if envelope_type != stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX:
        raise SigningError(f"XLM envelope type {envelope_type.name} is not signed here (expected ENVELOPE_TYPE_TX)")
    try:
        return TransactionEnvelope.from_xdr(text, passphrase)
    except Exception:
        raise SigningError("XLM serializedTransaction is not a Stellar transaction envelope (XDR)") from None


class XlmSigner:
    """Signs XLM pending transactions with one wallet; no network call."""

    code = CODE
    broadcast_path = BROADCAST_PATH

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
    ) -> SignedTransaction:
        from stellar_sdk import Keypair

        check_chain(pending, CODE)
        key = single_key(CODE, keys)
        envelope = _envelope(pending, network_passphrase(bool(testnet)))
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


def sign_rate(pending: PendingTransaction, key: KeyHandle, rounds: int, testnet: bool = True) -> None:
    """Sign ``pending`` ``rounds`` times (for bench/sign.py)."""
    signer = XlmSigner()
    for _ in range(rounds):
        signer.sign(pending, [key], testnet, None)
