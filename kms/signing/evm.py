"""EVM signing for ETH, BSC, MATIC, KLAY, XDC, ONE, KCS and CELO pending transactions.

Upstream (tatum-kms 8.0.1 with @tatumio/tatum 1.37.68, @tatumio/celo 2.2.x and the KCS SDK) signs every one of these
as a legacy EIP-155 transaction: web3 / caver for the first seven, ethers with Celo's own RLP layout for CELO. The
chains differ only in data (chain ids, address prefix, how a missing field is filled), kept in ``EvmQuirks``; CELO's
encoding is the one small override (``CeloSigner``).

Secrets: the private key is parsed into a SecretBuffer and wiped when signing ends; eth-keys keeps its own immutable
copy for the duration of the call, which Python cannot wipe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

import rlp

from kms.recursion import imports_keeping_recursion_limit

with imports_keeping_recursion_limit():  # eth_account imports py_ecc, which raises the limit to 100,000
    from eth_account import Account
    from eth_keys import keys as eth_keys
    from eth_keys.backends import CoinCurveECCBackend
    from eth_keys.exceptions import ValidationError as EthKeysValidationError
    from eth_utils import keccak, to_checksum_address

from kms.api import PendingTransaction
from kms.chains.base import ChainLookups, SigningKey
from kms.errors import KmsError, SigningError
from kms.hygiene import SecretBuffer
from kms.signing.evm_tx import (
    EIP1559,
    NONCE_MAX,
    UINT64_MAX,
    UINT256_MAX,
    EvmTxFields,
    ParseRules,
    intrinsic_gas,
    parse_evm_transaction,
)

T = TypeVar("T")

_SECP256K1 = CoinCurveECCBackend()
"""libsecp256k1 through coincurve, named explicitly so eth-keys never falls back to its pure-Python curve."""
_PRIVATE_KEY = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_CHAIN_ID_MAX = 2**53 - 1

ESTIMATE_FULL = ("from", "to", "value", "data", "gasPrice")
"""web3 ``estimateGas(transactionConfig)`` (ETH, BSC, XDC): the whole request as known before signing."""
ESTIMATE_CALL = ("from", "to", "data")
"""web3/caver ``estimateGas({to, data})`` (MATIC, KLAY, ONE, KCS): web3 adds the default account as ``from``."""


@dataclass(frozen=True)
class EvmQuirks:
    """How upstream treats one chain's pending transactions, beyond its chain ids."""

    address_prefixes: tuple[str, ...] = ("0x",)
    eip1559: bool = False
    """Whether upstream can sign a type-2 transaction here (only where its SDK does not force a gasPrice: XDC)."""
    legacy_type_names: frozenset[str] = frozenset()
    estimate_fields: tuple[str, ...] = ESTIMATE_FULL
    always_estimate_gas: bool = False
    """XDC: upstream re-estimates the gas limit even when the pending transaction carries one."""
    estimate_gas_for_withdrawals: bool = False
    """ETH: upstream's offchain-withdrawal path (pending has withdrawalId) always re-estimates the gas limit."""
    gas_limit_margin: int = 0
    """CELO: upstream adds 100000 to the node's estimate."""
    fee_currency_price_floors: Mapping[bytes, tuple[int, int]] = field(default_factory=dict)
    """CELO: fee currency -> (threshold, floor): a looked-up price at or below threshold is raised to floor."""


@dataclass(frozen=True)
class _Resolved:
    fields: EvmTxFields
    nonce: int
    gas: int
    chain_id: int


class EvmSigner:
    """Signs one chain's pending transactions. ``chain_ids`` maps testnet (bool) to the accepted chain id or ids; the
    first one is used when the transaction names none and there is no look-up service to ask."""

    def __init__(
        self,
        code: str,
        chain_ids: Mapping[bool, int | Sequence[int]],
        quirks: EvmQuirks | None = None,
    ) -> None:
        self.code = code.upper()
        self.quirks = quirks or EvmQuirks()
        self.chain_ids: Mapping[bool, tuple[int, ...]] = MappingProxyType(
            {net: _id_tuple(ids) for net, ids in chain_ids.items()}
        )
        if set(self.chain_ids) != {False, True}:
            raise ValueError("chain_ids needs an entry for mainnet (False) and testnet (True)")
        self._rules = ParseRules(
            code=self.code,
            address_prefixes=self.quirks.address_prefixes,
            eip1559=self.quirks.eip1559,
            celo_fields=self._celo_fields,
            legacy_type_names=self.quirks.legacy_type_names,
        )

    _celo_fields = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, chain_ids={dict(self.chain_ids)!r})"

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[SigningKey],
        testnet: bool,
        lookups: ChainLookups | None = None,
    ) -> str:
        if not isinstance(pending.chain, str) or pending.chain.strip().upper() != self.code:
            raise SigningError(f"pending transaction {pending.id!r} is not a {self.code} transaction")
        key = self._single_key(pending, keys)
        fields = parse_evm_transaction(pending.serialized_transaction, self._rules)
        with _key_buffer(key) as secret:
            try:
                private_key = eth_keys.PrivateKey(secret.bytes(), backend=_SECP256K1)
            except EthKeysValidationError:
                raise SigningError(
                    f"the key for signatureId {key.signature_id!r} is not a valid secp256k1 private key"
                ) from None
            try:
                address = private_key.public_key.to_canonical_address()
                if fields.sender is not None and fields.sender != address:
                    raise SigningError("the transaction's 'from' is not the address of the signing key")
                resolved = self._resolve(fields, address, pending, bool(testnet), lookups)
                return self._encode_signed(resolved, private_key)
            finally:
                del private_key

    # -- key -------------------------------------------------------------------------------------------------------

    def _single_key(self, pending: PendingTransaction, keys: Sequence[SigningKey]) -> SigningKey:
        if len(keys) != 1:
            raise SigningError(f"{self.code} transactions are signed with exactly one key, got {len(keys)}")
        key = keys[0]
        if key.index is not None and pending.index is not None and key.index != pending.index:
            raise SigningError("the signing key was derived at another index than the pending transaction names")
        return key

    # -- filling what upstream fills -------------------------------------------------------------------------------

    def _resolve(
        self,
        fields: EvmTxFields,
        address: bytes,
        pending: PendingTransaction,
        testnet: bool,
        lookups: ChainLookups | None,
    ) -> _Resolved:
        sender = to_checksum_address(address)
        nonce = fields.nonce
        if nonce is None:
            nonce = self._lookup(
                lookups, "nonce", lambda look: look.transaction_count(self.code, sender, testnet), 0, NONCE_MAX
            )
        if fields.tx_type != EIP1559 and fields.gas_price is None:
            fields = replace(fields, gas_price=self._gas_price(fields, testnet, lookups))
        chain_id = self._chain_id(fields.chain_id, testnet, lookups)
        gas = fields.gas
        force_estimate = self.quirks.always_estimate_gas or (
            self.quirks.estimate_gas_for_withdrawals and pending.withdrawal_id is not None
        )
        if gas is None or (force_estimate and lookups is not None):
            request = self._estimate_request(fields, sender, nonce)
            estimate = self._lookup(
                lookups, "gas limit", lambda look: look.estimate_gas(self.code, request, testnet), 1, UINT64_MAX
            )
            gas = estimate + self.quirks.gas_limit_margin
        resolved = _Resolved(fields=fields, nonce=nonce, gas=gas, chain_id=chain_id)
        self._check_costs(resolved)
        return resolved

    def _gas_price(self, fields: EvmTxFields, testnet: bool, lookups: ChainLookups | None) -> int:
        return self._lookup(lookups, "gas price", lambda look: look.gas_price(self.code, testnet), 1, UINT256_MAX)

    def _chain_id(self, given: int | None, testnet: bool, lookups: ChainLookups | None) -> int:
        allowed = self.chain_ids[testnet]
        network = "testnet" if testnet else "mainnet"
        if given is not None:
            if given not in allowed:
                raise SigningError(
                    f"chainId {given} does not belong to {self.code} {network} (expected {_one_of(allowed)})"
                )
            return given
        if lookups is None:
            return allowed[0]
        reported = self._lookup(lookups, "chain id", lambda look: look.chain_id(self.code, testnet), 1, _CHAIN_ID_MAX)
        if reported not in allowed:
            raise SigningError(
                f"the node reports chainId {reported}, which is not {self.code} {network} (expected {_one_of(allowed)})"
            )
        return reported

    def _estimate_request(self, fields: EvmTxFields, sender: str, nonce: int) -> dict[str, str]:
        known: dict[str, str | None] = {
            "nonce": hex(nonce),
            "from": sender,
            "to": to_checksum_address(fields.to) if fields.to is not None else None,
            "value": hex(fields.value),
            "data": "0x" + fields.data.hex(),
            "gasPrice": hex(fields.gas_price) if fields.gas_price is not None else None,
        }
        return {name: value for name in self.quirks.estimate_fields if (value := known.get(name)) is not None}

    def _lookup(
        self,
        lookups: ChainLookups | None,
        what: str,
        call: Callable[[ChainLookups], object],
        minimum: int,
        maximum: int,
    ) -> int:
        if lookups is None:
            raise SigningError(f"the {what} is missing from the {self.code} transaction and no look-up service is set")
        try:
            answer = call(lookups)
        except KmsError:
            raise
        except Exception as exc:
            raise SigningError(f"could not look up the {self.code} {what} ({type(exc).__name__})") from None
        if isinstance(answer, bool) or not isinstance(answer, int) or not minimum <= answer <= maximum:
            raise SigningError(f"the look-up service returned an unusable {self.code} {what}")
        return answer

    def _check_costs(self, resolved: _Resolved) -> None:
        fields = resolved.fields
        floor = intrinsic_gas(fields.data, fields.to is None)
        if resolved.gas < floor:
            raise SigningError(f"gas limit {resolved.gas} is below the intrinsic gas of this transaction ({floor})")
        price = fields.max_fee_per_gas if fields.tx_type == EIP1559 else fields.gas_price
        if price is not None and resolved.gas * price > UINT256_MAX:
            raise SigningError("gas limit times gas price overflows uint256")

    # -- encoding and signing --------------------------------------------------------------------------------------

    def _encode_signed(self, resolved: _Resolved, private_key: eth_keys.PrivateKey) -> str:
        fields = resolved.fields
        tx: dict[str, Any] = {
            "nonce": resolved.nonce,
            "gas": resolved.gas,
            "value": fields.value,
            "data": fields.data,
            "chainId": resolved.chain_id,
        }
        if fields.to is not None:
            tx["to"] = fields.to
        if fields.tx_type == EIP1559:
            tx.update(
                type=EIP1559,
                maxFeePerGas=fields.max_fee_per_gas,
                maxPriorityFeePerGas=fields.max_priority_fee_per_gas,
                accessList=[],
            )
        else:
            tx["gasPrice"] = fields.gas_price
        try:
            signed = Account.sign_transaction(tx, private_key)
        except (TypeError, ValueError) as exc:
            raise SigningError(f"the {self.code} transaction could not be encoded ({type(exc).__name__})") from None
        return "0x" + bytes(signed.raw_transaction).hex()


class CeloSigner(EvmSigner):
    """CELO: Celo's pre-L2 transaction layout (ethers + celo-ethers-wrapper, as @tatumio/celo signs it):
    RLP(nonce, gasPrice, gas, feeCurrency, gatewayFeeRecipient, gatewayFee, to, value, data, v, r, s), EIP-155 v."""

    _celo_fields = True

    def _gas_price(self, fields: EvmTxFields, testnet: bool, lookups: ChainLookups | None) -> int:
        if fields.fee_currency is None:
            return super()._gas_price(fields, testnet, lookups)
        currency = to_checksum_address(fields.fee_currency)
        price_in = getattr(lookups, "fee_currency_gas_price", None) if lookups is not None else None
        if price_in is None:
            raise SigningError(
                "the CELO transaction pays fees in a token and has no gasPrice, and the look-up service cannot price it"
            )
        price = self._lookup(lookups, "gas price", lambda look: price_in(self.code, currency, testnet), 1, UINT256_MAX)
        threshold_floor = self.quirks.fee_currency_price_floors.get(fields.fee_currency)
        if threshold_floor is not None and price <= threshold_floor[0]:
            price = threshold_floor[1]
        return price

    def _encode_signed(self, resolved: _Resolved, private_key: eth_keys.PrivateKey) -> str:
        fields = resolved.fields
        assert fields.gas_price is not None
        body = [
            resolved.nonce,
            fields.gas_price,
            resolved.gas,
            fields.fee_currency or b"",
            fields.gateway_fee_recipient or b"",
            fields.gateway_fee,
            fields.to or b"",
            fields.value,
            fields.data,
        ]
        digest = keccak(rlp.encode([*body, resolved.chain_id, 0, 0]))
        signature = private_key.sign_msg_hash(digest)
        v = resolved.chain_id * 2 + 35 + signature.v
        return "0x" + rlp.encode([*body, v, signature.r, signature.s]).hex()


def _key_buffer(key: SigningKey) -> SecretBuffer:
    text = key.private_key
    if not isinstance(text, str) or not _PRIVATE_KEY.fullmatch(text):
        raise SigningError(f"the key for signatureId {key.signature_id!r} is not a 32-byte hex private key")
    raw = bytearray.fromhex(text[-64:])
    return SecretBuffer(raw)  # takes over `raw` and zeroes it


def _id_tuple(ids: int | Sequence[int]) -> tuple[int, ...]:
    out = (ids,) if isinstance(ids, int) else tuple(ids)
    if not out or any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in out):
        raise ValueError("chain ids must be positive integers")
    return out


def _one_of(ids: tuple[int, ...]) -> str:
    return str(ids[0]) if len(ids) == 1 else "one of " + ", ".join(map(str, ids))


# -- the chains ---------------------------------------------------------------------------------------------------

CUSD_MAINNET = bytes.fromhex("765de816845861e75a25fca122bb6898b8b1282a")
CUSD_TESTNET = bytes.fromhex("874069fa1eb16d44d622f2e0ca25eea172369bc1")
_CUSD_FLOOR = (0x1DCD6500, 0x3B9ACA00)  # @tatumio/celo: a cUSD price at or below 0.5 gwei is raised to 1 gwei


@dataclass(frozen=True)
class EvmChainSpec:
    chain_ids: Mapping[bool, tuple[int, ...]]
    quirks: EvmQuirks = field(default_factory=EvmQuirks)
    signer_class: type[EvmSigner] = EvmSigner


EVM_CHAINS: Mapping[str, EvmChainSpec] = MappingProxyType(
    {
        "ETH": EvmChainSpec({False: (1,), True: (11155111, 17000)}, EvmQuirks(estimate_gas_for_withdrawals=True)),
        "BSC": EvmChainSpec({False: (56,), True: (97,)}),
        "MATIC": EvmChainSpec({False: (137,), True: (80002,)}, EvmQuirks(estimate_fields=ESTIMATE_CALL)),
        "KLAY": EvmChainSpec(
            {False: (8217,), True: (1001,)},
            EvmQuirks(estimate_fields=ESTIMATE_CALL, legacy_type_names=frozenset({"LEGACY"})),
        ),
        "XDC": EvmChainSpec(
            {False: (50,), True: (51,)},
            EvmQuirks(address_prefixes=("0x", "xdc"), eip1559=True, always_estimate_gas=True),
        ),
        "ONE": EvmChainSpec({False: (1666600000,), True: (1666700000,)}, EvmQuirks(estimate_fields=ESTIMATE_CALL)),
        "KCS": EvmChainSpec({False: (321,), True: (322,)}, EvmQuirks(estimate_fields=ESTIMATE_CALL)),
        "CELO": EvmChainSpec(
            {False: (42220,), True: (44787, 11142220)},
            EvmQuirks(
                estimate_fields=(*ESTIMATE_FULL, "nonce"),
                gas_limit_margin=100_000,
                fee_currency_price_floors={CUSD_MAINNET: _CUSD_FLOOR, CUSD_TESTNET: _CUSD_FLOOR},
            ),
            CeloSigner,
        ),
    }
)


def evm_signer(code: str) -> EvmSigner:
    """The signer for one of upstream's EVM chains, with the chain ids and quirks upstream uses."""
    spec = EVM_CHAINS.get(code.strip().upper())
    if spec is None:
        raise KeyError(code)
    return spec.signer_class(code, spec.chain_ids, spec.quirks)


__all__ = [
    "ESTIMATE_CALL",
    "ESTIMATE_FULL",
    "EVM_CHAINS",
    "CeloSigner",
    "EvmChainSpec",
    "EvmQuirks",
    "EvmSigner",
    "evm_signer",
]
