"""Which keys sign a pending transaction: the wallets it names, resolved from the store into key handles.

``hashes`` name wallets directly: a private-key (or secret) wallet gives its key; a mnemonic wallet gives the key at
the pending transaction's top-level ``index``. ``signatures: [{id, index}]`` name mnemonic wallets and the index to
derive for each (as upstream, a key wallet named there gives its key). Every key is made by the pending
transaction's chain (``Chain.raw_signing_key``) from the stored secret, which travels from the store's plaintext to
the chain in a wipeable buffer; nothing here knows any chain, and no key or mnemonic is ever a ``str`` here.

Refused, with upstream's own messages (tatum-kms signatures.ts, validatePrivateKeyWasFound / getPrivateKeys): a
mnemonic wallet without an index, and a key wallet given a top-level index (upstream silently ignores that index and
signs with the key; here it is an error, since the caller asked for a derived address the key does not have).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kms.api import PendingTransaction
from kms.chains.base import KIND_MNEMONIC, Chain
from kms.errors import SigningError, WalletNotFoundError
from kms.hygiene import SecretBuffer
from kms.keys import KeyHandle
from kms.store.model import StoredWallet

DOCS = "(see docs: https://apidoc.tatum.io/)"


class WalletSource(Protocol):
    def get(self, signature_id: str) -> StoredWallet: ...


def signature_ids_log(pending: PendingTransaction) -> str:
    return ",".join([*pending.hashes, *(ref.id for ref in pending.signatures)])


def mnemonic_without_index(pending: PendingTransaction) -> str:
    return (
        f"Private key was not found. Wallet {signature_ids_log(pending)} is mnemonic based, but KMS transaction "
        f"{pending.id} requires private key based, since tx was requested without index param. Please use another "
        "private key based wallet id or specify 'index' parameter for this mnemonic based wallet during request call "
        f"{DOCS}"
    )


def key_wallet_with_index(pending: PendingTransaction) -> str:
    return (
        f"Private key was not found. Wallet {signature_ids_log(pending)} is private key based, but KMS transaction "
        f"{pending.id} requires mnemonic based, since tx was requested with index param. Please use mnemonic based "
        f"wallet and signatureId {DOCS}"
    )


NO_KEYS = (
    "Wallets with requested private keys were not found. Most likely mnemonic-based wallet was used without index "
    f"parameter {DOCS}"
)


class KeyResolutionError(SigningError):
    """The pending transaction's wallets cannot give the keys it asks for; nothing was signed."""


def _secret_of(wallet: StoredWallet) -> tuple[str, SecretBuffer]:
    """(kind, the wallet's secret in a wipeable buffer)."""
    kind = wallet.meta.kind
    if kind == KIND_MNEMONIC:
        return kind, wallet.secret_field("mnemonic")
    # Random key-pair chains keep "secret" (XRP, XLM, ALGO) or "privateKey"; upstream takes secret first.
    secret = wallet.secret_field("secret")
    if secret:
        return kind, secret
    secret.wipe()
    return kind, wallet.secret_field("privateKey")


def _stored_secret(
    store: WalletSource, signature_id: str, testnet: bool, pending: PendingTransaction
) -> tuple[str, SecretBuffer]:
    """The wallet's kind and secret; WalletNotFoundError when the store has no such wallet."""
    with store.get(signature_id) as wallet:
        _check_network(wallet, testnet, pending)
        return _secret_of(wallet)


def _check_network(wallet: StoredWallet, testnet: bool, pending: PendingTransaction) -> None:
    if wallet.meta.chain != pending.chain:
        # A key of one chain never signs for another (upstream would derive an ETH key from a BTC mnemonic).
        raise KeyResolutionError(
            f"Wallet {wallet.meta.signature_id} is a {wallet.meta.chain} wallet but KMS transaction {pending.id} is "
            f"a {pending.chain} transaction"
        )
    if wallet.meta.testnet != testnet:
        have = "testnet" if wallet.meta.testnet else "mainnet"
        want = "testnet" if testnet else "mainnet"
        raise KeyResolutionError(
            f"Wallet {wallet.meta.signature_id} is a {have} wallet but KMS transaction {pending.id} is signed on {want}"
        )


def offchain_keys(
    pending: PendingTransaction, chain: Chain, store: WalletSource, testnet: bool, indexes: Sequence[int]
) -> list[KeyHandle]:
    """An offchain withdrawal (UTXO chains): upstream derives one key per withdrawal input, from the mnemonic wallet
    named first (``hashes[0]``), at the indexes the chain reads from the withdrawal; in that order, repeats kept."""
    if not pending.hashes:
        raise KeyResolutionError(f"offchain withdrawal {pending.id} names no wallet in 'hashes'")
    signature_id = pending.hashes[0]
    try:
        kind, secret = _stored_secret(store, signature_id, testnet, pending)
    except WalletNotFoundError:
        raise KeyResolutionError(f"No such wallet for signatureId '{signature_id}'.") from None
    with secret:
        if kind != KIND_MNEMONIC:
            raise KeyResolutionError(
                f"offchain withdrawal {pending.id} needs a mnemonic based wallet; {signature_id} is private key based"
            )
        keys: list[KeyHandle] = []
        try:
            for index in indexes:
                keys.append(KeyHandle(signature_id, chain.raw_signing_key(secret, kind, index, testnet), index))
        except BaseException:
            wipe_all(keys)
            raise
        return keys


def resolve_keys(
    pending: PendingTransaction,
    chain: Chain,
    store: WalletSource,
    testnet: bool,
    offchain_indexes: Sequence[int] | None = None,
) -> list[KeyHandle]:
    """The signing keys, in the order the pending transaction names its wallets (hashes, then signatures).
    Wallets missing from the store are skipped as upstream does; none found at all is an error. An offchain
    withdrawal whose chain names the derivation indexes it needs goes to offchain_keys instead; one whose chain signs
    withdrawals from ``signatures[]`` only (``offchain_keys_from_signatures``, ADA) ignores ``hashes`` and takes
    mnemonic wallets only. The caller wipes the
    handles (``wipe_all``) when signing is done."""
    if pending.withdrawal_id and offchain_indexes is not None:
        return offchain_keys(pending, chain, store, testnet, offchain_indexes)
    from_signatures_only = bool(pending.withdrawal_id) and chain.offchain_keys_from_signatures
    keys: list[KeyHandle] = []
    missing: list[str] = []
    wanted: list[tuple[str, int | None, bool]] = (
        [] if from_signatures_only else [(sid, pending.index, False) for sid in pending.hashes]
    )
    wanted += [(ref.id, ref.index, True) for ref in pending.signatures]
    try:
        for signature_id, index, from_signatures in wanted:
            try:
                kind, secret = _stored_secret(store, signature_id, testnet, pending)
            except WalletNotFoundError:
                missing.append(signature_id)
                continue
            with secret:
                if from_signatures_only and kind != KIND_MNEMONIC:
                    raise KeyResolutionError(
                        f"offchain withdrawal {pending.id} signs with mnemonic based wallets in 'signatures'; "
                        f"{signature_id} is private key based"
                    )
                keys.append(_key_of(pending, chain, testnet, signature_id, kind, secret, index, from_signatures))
    except BaseException:
        wipe_all(keys)
        raise
    if not keys:
        if missing:
            raise KeyResolutionError(f"No such wallet for signatureId '{missing[0]}'.")
        raise KeyResolutionError(NO_KEYS)
    return _unique(keys)


def _key_of(
    pending: PendingTransaction,
    chain: Chain,
    testnet: bool,
    signature_id: str,
    kind: str,
    secret: SecretBuffer,
    index: int | None,
    from_signatures: bool,
) -> KeyHandle:
    if not secret:
        raise KeyResolutionError(f"Wallet {signature_id} holds no key material")
    if kind == KIND_MNEMONIC:
        if index is None:
            raise KeyResolutionError(mnemonic_without_index(pending))
        return KeyHandle(signature_id, chain.raw_signing_key(secret, kind, index, testnet), index)
    if index is not None and not from_signatures:
        raise KeyResolutionError(key_wallet_with_index(pending))
    return KeyHandle(signature_id, chain.raw_signing_key(secret, kind, None, testnet), None)


def _unique(keys: Sequence[KeyHandle]) -> list[KeyHandle]:
    # Upstream: [...new Set(keys)] — the same key named twice signs once.
    result: list[KeyHandle] = []
    for key in keys:
        if any(key.same_key(kept) for kept in result):
            key.wipe()
        else:
            result.append(key)
    return result


def wipe_all(keys: Sequence[KeyHandle]) -> None:
    for key in keys:
        key.wipe()
