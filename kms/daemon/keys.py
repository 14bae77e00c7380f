"""Which keys sign a pending transaction: the wallets it names, resolved from the store.

``hashes`` name wallets directly: a private-key (or secret) wallet gives its key; a mnemonic wallet gives the key at
the pending transaction's top-level ``index``. ``signatures: [{id, index}]`` name mnemonic wallets and the index to
derive for each (as upstream, a key wallet named there gives its key). Every key is derived by the pending
transaction's chain (``Chain.private_key_at``), so nothing here knows any chain.

Refused, with upstream's own messages (tatum-kms signatures.ts, validatePrivateKeyWasFound / getPrivateKeys): a
mnemonic wallet without an index, and a key wallet given a top-level index (upstream silently ignores that index and
signs with the key; here it is an error, since the caller asked for a derived address the key does not have).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kms.api import PendingTransaction
from kms.chains.base import Chain, SigningKey
from kms.errors import SigningError, WalletNotFoundError
from kms.hygiene import SecretBuffer
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
    fields = wallet.fields()
    kind = wallet.meta.kind
    if kind == "mnemonic":
        return kind, SecretBuffer(fields.get("mnemonic", ""))
    # Random key-pair chains keep "secret" (XRP, XLM, ALGO) or "privateKey"; upstream takes secret first.
    value = fields.get("secret") or fields.get("privateKey") or ""
    return kind, SecretBuffer(value)


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
) -> list[SigningKey]:
    """An offchain withdrawal (UTXO chains): upstream derives one key per withdrawal input, from the mnemonic wallet
    named first (``hashes[0]``), at the indexes the signer reads from the withdrawal; in that order, repeats kept."""
    if not pending.hashes:
        raise KeyResolutionError(f"offchain withdrawal {pending.id} names no wallet in 'hashes'")
    signature_id = pending.hashes[0]
    try:
        wallet = store.get(signature_id)
    except WalletNotFoundError:
        raise KeyResolutionError(f"No such wallet for signatureId '{signature_id}'.") from None
    with wallet:
        _check_network(wallet, testnet, pending)
        kind, secret = _secret_of(wallet)
    with secret:
        if kind != "mnemonic":
            raise KeyResolutionError(
                f"offchain withdrawal {pending.id} needs a mnemonic based wallet; {signature_id} is private key based"
            )
        return [
            SigningKey(signature_id=signature_id, private_key=chain.private_key_at(secret.text(), i, testnet), index=i)
            for i in indexes
        ]


def resolve_keys(
    pending: PendingTransaction,
    chain: Chain,
    store: WalletSource,
    testnet: bool,
    offchain_indexes: Sequence[int] | None = None,
) -> list[SigningKey]:
    """The signing keys, in the order the pending transaction names its wallets (hashes, then signatures).
    Wallets missing from the store are skipped as upstream does; none found at all is an error. An offchain
    withdrawal whose signer names the derivation indexes it needs goes to offchain_keys instead."""
    if pending.withdrawal_id and offchain_indexes is not None:
        return offchain_keys(pending, chain, store, testnet, offchain_indexes)
    keys: list[SigningKey] = []
    missing: list[str] = []
    wanted: list[tuple[str, int | None, bool]] = [(sid, pending.index, False) for sid in pending.hashes]
    wanted += [(ref.id, ref.index, True) for ref in pending.signatures]
    for signature_id, index, from_signatures in wanted:
        try:
            wallet = store.get(signature_id)
        except WalletNotFoundError:
            missing.append(signature_id)
            continue
        with wallet:
            _check_network(wallet, testnet, pending)
            kind, secret = _secret_of(wallet)
        with secret:
            if not secret:
                raise KeyResolutionError(f"Wallet {signature_id} holds no key material")
            if kind == "mnemonic":
                if index is None:
                    raise KeyResolutionError(mnemonic_without_index(pending))
                private_key = chain.private_key_at(secret.text(), index, testnet)
                keys.append(SigningKey(signature_id=signature_id, private_key=private_key, index=index))
            else:
                if index is not None and not from_signatures:
                    raise KeyResolutionError(key_wallet_with_index(pending))
                keys.append(SigningKey(signature_id=signature_id, private_key=secret.text(), index=None))
    if not keys:
        if missing:
            raise KeyResolutionError(f"No such wallet for signatureId '{missing[0]}'.")
        raise KeyResolutionError(NO_KEYS)
    return _unique(keys)


def _unique(keys: Sequence[SigningKey]) -> list[SigningKey]:
    # Upstream: [...new Set(keys)] — the same key named twice signs once.
    seen: set[str] = set()
    result = []
    for key in keys:
        if key.private_key not in seen:
            seen.add(key.private_key)
            result.append(key)
    return result


def offchain_indexes(signer: Any, pending: PendingTransaction) -> list[int] | None:
    """The derivation indexes an offchain withdrawal is signed at, when its signer derives per input (UTXO chains):
    the signer's ``offchain_key_indexes(pending)``. None when the keys come from the usual hashes / index /
    signatures (every other chain, where an offchain withdrawal is signed like any pending transaction)."""
    if not pending.withdrawal_id:
        return None
    real = signer.load() if hasattr(signer, "load") else signer
    hook = getattr(real, "offchain_key_indexes", None)
    if callable(hook):
        result = hook(pending)
        return None if result is None else [int(i) for i in result]
    return None
