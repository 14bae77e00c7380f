"""EVM signing machinery for ETH, BSC, MATIC, KLAY, XDC, ONE, KCS and CELO pending transactions.

Upstream (tatum-kms 8.0.1 with @tatumio/tatum 1.37.68, @tatumio/celo 2.2.x and the KCS SDK) signs every one of these
as a legacy EIP-155 transaction: web3 / caver for the first seven, ethers with Celo's own RLP layout for CELO. The
chains differ only in data (``kms.chains.evm.EvmFacts``: chain ids, quirks, routes); CELO's encoding is the one small
override (``CeloSigner``). Missing fields are looked up through the NodeGateway (``kms.signing.evm_lookups``).

Encoding and signing are ``kms.signing.evm_encode`` (rlp, pycryptodome Keccak, coincurve). Secrets: the key handle's
32 raw bytes are read inside its ``with`` block only; coincurve keeps its own immutable copy for the duration of the
call, which Python cannot wipe (see SECURITY.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from coincurve import PrivateKey
from eth_utils import to_checksum_address

from kms.api import NodeGateway, PendingTransaction
from kms.chains.evm import EvmFacts, EvmQuirks
from kms.errors import KmsError, SigningError
from kms.keys import KeyHandle
from kms.signing.base import NonceSource, SignedTransaction
from kms.signing.evm_encode import RlpItem, address_of, load_key, sign_eip1559, sign_legacy
from kms.signing.evm_lookups import EvmNodeLookups
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

_CHAIN_ID_MAX = 2**53 - 1


@dataclass(frozen=True)
class _Resolved:
    fields: EvmTxFields
    nonce: int
    gas: int
    chain_id: int


class EvmSigner:
    """Signs one chain's pending transactions, as its ``EvmFacts`` record says."""

    def __init__(self, facts: EvmFacts) -> None:
        self.facts = facts
        self.code = facts.code
        self.quirks: EvmQuirks = facts.quirks
        self.chain_ids = facts.chain_ids
        self._rules = ParseRules(
            code=self.code,
            address_prefixes=self.quirks.address_prefixes,
            eip1559=self.quirks.eip1559,
            celo_fields=self.quirks.celo_layout,
            legacy_type_names=self.quirks.legacy_type_names,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, chain_ids={dict(self.chain_ids)!r})"

    def sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None = None,
    ) -> SignedTransaction:
        return self._sign(pending, keys, testnet, gateway, None)

    def sign_with_nonces(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
        nonces: NonceSource,
    ) -> SignedTransaction:
        """As ``sign``, but a missing nonce comes from ``nonces`` (the daemon's per-sender allocator)."""
        return self._sign(pending, keys, testnet, gateway, nonces)

    def carries_nonce(self, pending: PendingTransaction) -> bool:
        """Whether the pending transaction names its nonce. One that cannot be read counts as carrying it: it is
        refused when signed, and needs no place in a sender's order."""
        try:
            return parse_evm_transaction(pending.serialized_transaction, self._rules).nonce is not None
        except KmsError:
            return True

    def _sign(
        self,
        pending: PendingTransaction,
        keys: Sequence[KeyHandle],
        testnet: bool,
        gateway: NodeGateway | None,
        nonces: NonceSource | None,
    ) -> SignedTransaction:
        if not isinstance(pending.chain, str) or pending.chain.strip().upper() != self.code:
            raise SigningError(f"pending transaction {pending.id!r} is not a {self.code} transaction")
        key = self._single_key(pending, keys)
        fields = parse_evm_transaction(pending.serialized_transaction, self._rules)
        lookups = self._lookups(gateway, bool(testnet))
        with key.raw() as raw:
            try:
                private_key = load_key(raw)
            except SigningError:
                raise SigningError(
                    f"the key for signatureId {key.signature_id!r} is not a valid secp256k1 private key"
                ) from None
            try:
                address = address_of(private_key)
                if fields.sender is not None and fields.sender != address:
                    raise SigningError("the transaction's 'from' is not the address of the signing key")
                resolved = self._resolve(fields, address, pending, bool(testnet), lookups, nonces)
                meta = {"from": "0x" + address.hex(), "nonce": resolved.nonce, "assigned": fields.nonce is None}
                return SignedTransaction(self._encode_signed(resolved, private_key), meta)
            finally:
                del private_key

    # -- key and gateway -------------------------------------------------------------------------------------------

    def _single_key(self, pending: PendingTransaction, keys: Sequence[KeyHandle]) -> KeyHandle:
        if len(keys) != 1:
            raise SigningError(f"{self.code} transactions are signed with exactly one key, got {len(keys)}")
        key = keys[0]
        if key.index is not None and pending.index is not None and key.index != pending.index:
            raise SigningError("the signing key was derived at another index than the pending transaction names")
        return key

    def _lookups(self, gateway: NodeGateway | None, testnet: bool) -> EvmNodeLookups | None:
        if gateway is None:
            return None
        if bool(gateway.testnet) != testnet:
            raise SigningError(f"the look-up gateway serves another network than this {self.code} transaction")
        return EvmNodeLookups(gateway, self.code, self.facts.route)

    # -- filling what upstream fills -------------------------------------------------------------------------------

    def _resolve(
        self,
        fields: EvmTxFields,
        address: bytes,
        pending: PendingTransaction,
        testnet: bool,
        lookups: EvmNodeLookups | None,
        nonces: NonceSource | None = None,
    ) -> _Resolved:
        # The checksummed form is what the look-ups send; computed only when one is made (it costs a third of a
        # signature).
        def sender() -> str:
            return to_checksum_address(address)

        nonce = fields.nonce
        if nonce is None and nonces is None:  # upstream's order: the nonce first
            nonce = self._lookup(lookups, "nonce", lambda look: look.transaction_count(sender()), 0, NONCE_MAX)
        if fields.tx_type != EIP1559 and fields.gas_price is None:
            fields = replace(fields, gas_price=self._gas_price(fields, lookups))
        chain_id = self._chain_id(fields.chain_id, testnet, lookups)
        if nonce is None and nonces is not None:
            # From the daemon's allocator: after the look-ups that do not need it, so that a failed look-up never
            # holds a nonce.

            def look_up() -> int:
                return self._lookup(lookups, "nonce", lambda look: look.transaction_count(sender()), 0, NONCE_MAX)

            nonce = self._checked_nonce(nonces.nonce_for("0x" + address.hex(), look_up))
        assert nonce is not None
        gas = fields.gas
        force_estimate = self.quirks.always_estimate_gas or (
            self.quirks.estimate_gas_for_withdrawals and pending.withdrawal_id is not None
        )
        if gas is None or (force_estimate and lookups is not None):
            request = self._estimate_request(fields, sender(), nonce)
            estimate = self._lookup(lookups, "gas limit", lambda look: look.estimate_gas(request), 1, UINT64_MAX)
            gas = estimate + self.quirks.gas_limit_margin
        resolved = _Resolved(fields=fields, nonce=nonce, gas=gas, chain_id=chain_id)
        self._check_costs(resolved)
        return resolved

    def _checked_nonce(self, nonce: object) -> int:
        if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= NONCE_MAX:
            raise SigningError(f"the {self.code} nonce handed out for this transaction is unusable")
        return nonce

    def _gas_price(self, fields: EvmTxFields, lookups: EvmNodeLookups | None) -> int:
        return self._lookup(lookups, "gas price", lambda look: look.gas_price(), 1, UINT256_MAX)

    def _chain_id(self, given: int | None, testnet: bool, lookups: EvmNodeLookups | None) -> int:
        allowed = self.facts.ids(testnet)
        network = "testnet" if testnet else "mainnet"
        if given is not None:
            if given not in allowed:
                raise SigningError(
                    f"chainId {given} does not belong to {self.code} {network} (expected {_one_of(allowed)})"
                )
            return given
        if lookups is None:
            return allowed[0]
        reported = self._lookup(lookups, "chain id", lambda look: look.chain_id(), 1, _CHAIN_ID_MAX)
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
        lookups: EvmNodeLookups | None,
        what: str,
        call: Callable[[EvmNodeLookups], object],
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

    def _encode_signed(self, resolved: _Resolved, private_key: PrivateKey) -> str:
        fields = resolved.fields
        to = fields.to or b""
        if fields.tx_type == EIP1559:
            body: list[RlpItem] = [
                resolved.chain_id, resolved.nonce, fields.max_priority_fee_per_gas, fields.max_fee_per_gas,
                resolved.gas, to, fields.value, fields.data, [],
            ]  # fmt: skip
            return "0x" + sign_eip1559(body, private_key).hex()
        body = [resolved.nonce, fields.gas_price, resolved.gas, to, fields.value, fields.data]
        return "0x" + sign_legacy(body, resolved.chain_id, private_key).hex()


class CeloSigner(EvmSigner):
    """CELO: Celo's pre-L2 transaction layout (ethers + celo-ethers-wrapper, as @tatumio/celo signs it):
    RLP(nonce, gasPrice, gas, feeCurrency, gatewayFeeRecipient, gatewayFee, to, value, data, v, r, s), EIP-155 v."""

    def _gas_price(self, fields: EvmTxFields, lookups: EvmNodeLookups | None) -> int:
        if fields.fee_currency is None:
            return super()._gas_price(fields, lookups)
        currency = to_checksum_address(fields.fee_currency)
        price = self._lookup(lookups, "gas price", lambda look: look.fee_currency_gas_price(currency), 1, UINT256_MAX)
        threshold_floor = self.quirks.fee_currency_price_floors.get(fields.fee_currency)
        if threshold_floor is not None and price <= threshold_floor[0]:
            price = threshold_floor[1]
        return price

    def _encode_signed(self, resolved: _Resolved, private_key: PrivateKey) -> str:
        fields = resolved.fields
        assert fields.gas_price is not None
        body: list[RlpItem] = [
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
        return "0x" + sign_legacy(body, resolved.chain_id, private_key).hex()


def _one_of(ids: tuple[int, ...]) -> str:
    return str(ids[0]) if len(ids) == 1 else "one of " + ", ".join(map(str, ids))


def signer_for(facts: EvmFacts) -> EvmSigner:
    """The signer a chain's record asks for (what ``kms.chains.evm`` loads lazily)."""
    return CeloSigner(facts) if facts.quirks.celo_layout else EvmSigner(facts)


__all__ = ["CeloSigner", "EvmSigner", "signer_for"]
