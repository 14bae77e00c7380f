"""EVM chains: ETH, BSC, MATIC, CELO, KLAY, XDC, ONE, KCS, one ``EvmFacts`` record each.

All derive ``m/44'/COIN'/0'/0`` (testnet: coin 1), print addresses as lower-case hex (XDC with an ``xdc`` prefix
instead of ``0x``) and keys as ``0x`` + 64 hex digits. Everything upstream does differently per chain is data in its
record: chain ids, the quirks of how upstream's SDK fills and signs a transaction, and the Tatum routes the look-ups
take (``EvmRoute``). The signing machinery (``kms.signing.evm``) reads these records and holds no chain table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from bip_utils import EthAddrDecoder, EthAddrEncoder, OneAddrDecoder, Secp256k1PublicKey

from kms.chains.base import KIND_MNEMONIC, LazySigner
from kms.chains.bip44 import Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, hex_secret, is_hex, network_name, parse_hex, secp256k1_scalar_ok
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

if TYPE_CHECKING:
    from kms.signing.evm import EvmSigner

TESTNET_COIN = 1
GWEI = 10**9
POLYGON_GAS_STATION = "https://gasstation.polygon.technology/v2"

ESTIMATE_FULL = ("from", "to", "value", "data", "gasPrice")
"""web3 ``estimateGas(transactionConfig)`` (ETH, BSC, XDC): the whole request as known before signing."""
ESTIMATE_CALL = ("from", "to", "data")
"""web3/caver ``estimateGas({to, data})`` (MATIC, KLAY, ONE, KCS): web3 adds the default account as ``from``."""


# -- where a missing gas price comes from --------------------------------------------------------------------------


@dataclass(frozen=True)
class TatumFee:
    """``GET /v3/blockchain/fee/{currency}``, field ``medium`` (wei)."""

    currency: str


@dataclass(frozen=True)
class FixedPrice:
    """A price upstream's SDK hard-codes."""

    wei: int


@dataclass(frozen=True)
class NodePrice:
    """``{namespace}_gasPrice`` on the chain's node gateway."""


@dataclass(frozen=True)
class PolygonGasStation:
    """``fast.maxFee`` (gwei) from the Polygon gas station, at least ``minimum_gwei``, rounded up to whole gwei; the
    node's price when ``url`` is None."""

    url: str | None = POLYGON_GAS_STATION
    minimum_gwei: int = 30


GasPriceSource = TatumFee | FixedPrice | NodePrice | PolygonGasStation


@dataclass(frozen=True)
class EvmRoute:
    """How upstream's SDK reaches one chain through the Tatum API."""

    rest: str
    """Path segment of the chain's Tatum REST routes (``/v3/{rest}/transaction/count/{address}``)."""
    rpc: str
    """Path of the JSON-RPC node gateway; ``{apiKey}`` stands for the API key."""
    gas_price: GasPriceSource
    nonce_via_rest: bool = False
    namespace: str = "eth"
    chain_id_method: str = "eth_chainId"


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
    celo_layout: bool = False
    """CELO: Celo's pre-L2 12-field transaction layout (fee currency and gateway fee), signed by ``CeloSigner``."""


@dataclass(frozen=True)
class EvmFacts:
    """One EVM chain as upstream has it. ``chain_ids`` maps testnet (bool) to the accepted chain ids; the first is
    used when the transaction names none and there is no gateway to ask. ``route`` None: no look-ups (not signed)."""

    code: str
    broadcast_route: str
    coin: int
    chain_ids: Mapping[bool, Sequence[int] | int]
    route: EvmRoute | None = None
    quirks: EvmQuirks = field(default_factory=EvmQuirks)
    address_prefix: str = "0x"

    def __post_init__(self) -> None:
        if set(self.chain_ids) != {False, True}:
            raise ValueError("chain_ids needs an entry for mainnet (False) and testnet (True)")
        normal = {net: _id_tuple(ids) for net, ids in self.chain_ids.items()}
        object.__setattr__(self, "chain_ids", MappingProxyType(normal))

    def ids(self, testnet: bool) -> tuple[int, ...]:
        return tuple(self.chain_ids[testnet])  # type: ignore[arg-type]


def _id_tuple(ids: int | Sequence[int]) -> tuple[int, ...]:
    out = (ids,) if isinstance(ids, int) else tuple(ids)
    if not out or any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in out):
        raise ValueError("chain ids must be positive integers")
    return out


# -- the chain family ----------------------------------------------------------------------------------------------


class EthereumKeyChain(Secp256k1Bip44Chain):
    """Ethereum's keys and addresses on m/44'/COIN'/0'/0 (testnet coin 1): the EVM chains, and VET (whose
    transactions are not Ethereum's, see ``kms.chains.vet``)."""

    record_order = ("xpub", "mnemonic")
    address_prefix = "0x"

    def __init__(self, code: str, broadcast_route: str, coin: int, address_prefix: str = "0x") -> None:
        super().__init__(code, broadcast_route, Bip44Network(coin), Bip44Network(TESTNET_COIN))
        self.address_prefix = address_prefix

    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        hex_address = EthAddrEncoder.EncodeKey(public_key, skip_chksum_enc=True)  # "0x" + 40 lower-case hex
        return self.address_prefix + hex_address[2:].lower()

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return "0x" + raw.hex()

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        return parse_hex(
            text, nbytes=32, prefix="0x", message=f"invalid {self.code} private key: expected 0x followed by 64 hex"
        )

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """The 32-byte scalar. Key text is 64 hex digits, ``0x`` optional (upstream's signer takes both), decoded
        without a ``str`` copy."""
        if kind == KIND_MNEMONIC:
            return super().raw_signing_key(secret, kind, index, testnet)
        raw = hex_secret(secret, 32)
        if raw is None:
            raise SigningError(f"the {self.code} key is not a 32-byte hex private key")
        if not secp256k1_scalar_ok(raw.view()):
            raw.wipe()
            raise SigningError(f"the {self.code} key is not a valid secp256k1 private key")
        return raw

    def validate_address(self, address: str, testnet: bool) -> None:
        message = f"invalid {self.code} {network_name(testnet)} address: expected {self.address_prefix} + 40 hex"
        if not isinstance(address, str) or not address.startswith(self.address_prefix):
            raise InvalidKeyError(message)
        digits = address[len(self.address_prefix) :]
        if len(digits) != 40 or not is_hex(digits):
            raise InvalidKeyError(message)
        if digits != digits.lower() and digits != digits.upper():
            # Mixed case is an EIP-55 checksum, and then it must be right.
            attempt(
                f"invalid {self.code} address: the EIP-55 checksum (mixed case) does not match",
                lambda: EthAddrDecoder.DecodeAddr("0x" + digits),
            )


class EvmChain(EthereumKeyChain):
    offchain_withdrawals = True

    def __init__(self, facts: EvmFacts) -> None:
        super().__init__(facts.code, facts.broadcast_route, facts.coin, facts.address_prefix)
        self.facts = facts
        self.signer = LazySigner("kms.signing.evm:signer_for", facts)


class HarmonyChain(EvmChain):
    """ONE: upstream prints the 0x form; Harmony's own bech32 ``one1...`` form names the same account."""

    def validate_address(self, address: str, testnet: bool) -> None:
        if isinstance(address, str) and address.startswith("one1"):
            attempt(
                f"invalid {self.code} address: bad one1 bech32 encoding", lambda: OneAddrDecoder.DecodeAddr(address)
            )
            return
        super().validate_address(address, testnet)


# -- the chains ----------------------------------------------------------------------------------------------------
# Coin types from the SDK's constants (ETH_DERIVATION_PATH, ...); KCS from the SDK's shared DERIVATION_PATH table.
# Routes follow the SDK upstream runs: a Tatum REST call where it makes one (ETH, BSC, XDC nonces; the ETH fee
# estimate), otherwise JSON-RPC through Tatum's node gateway, and the prices the SDK hard-codes (BSC, KCS).

CUSD_MAINNET = bytes.fromhex("765de816845861e75a25fca122bb6898b8b1282a")
CUSD_TESTNET = bytes.fromhex("874069fa1eb16d44d622f2e0ca25eea172369bc1")
_CUSD_FLOOR = (0x1DCD6500, 0x3B9ACA00)  # @tatumio/celo: a cUSD price at or below 0.5 gwei is raised to 1 gwei
_WEB3 = "/v3/{}/web3/{{apiKey}}"
_NODE = "/v3/blockchain/node/{}/{{apiKey}}"

ETH = EvmChain(
    EvmFacts(
        "ETH", "ethereum", 60, {False: 1, True: (11155111, 17000)},
        EvmRoute("ethereum", _WEB3.format("ethereum"), TatumFee("ETH"), nonce_via_rest=True),
        EvmQuirks(estimate_gas_for_withdrawals=True),
    )
)  # fmt: skip
BSC = EvmChain(
    EvmFacts(
        "BSC", "bsc", 60, {False: 56, True: 97},
        EvmRoute("bsc", _WEB3.format("bsc"), FixedPrice(10 * GWEI), nonce_via_rest=True),
    )
)  # fmt: skip
MATIC = EvmChain(
    EvmFacts(
        "MATIC", "polygon", 966, {False: 137, True: 80002},
        EvmRoute("polygon", _WEB3.format("polygon"), PolygonGasStation()),
        EvmQuirks(estimate_fields=ESTIMATE_CALL),
    )
)  # fmt: skip
CELO = EvmChain(
    EvmFacts(
        "CELO", "celo", 52752, {False: 42220, True: (44787, 11142220)},
        EvmRoute("celo", _NODE.format("CELO"), NodePrice()),
        EvmQuirks(
            estimate_fields=(*ESTIMATE_FULL, "nonce"),
            gas_limit_margin=100_000,
            fee_currency_price_floors={CUSD_MAINNET: _CUSD_FLOOR, CUSD_TESTNET: _CUSD_FLOOR},
            celo_layout=True,
        ),
    )
)  # fmt: skip
KLAY = EvmChain(
    EvmFacts(
        "KLAY", "klaytn", 8217, {False: 8217, True: 1001},
        EvmRoute("klaytn", _NODE.format("KLAY"), NodePrice(), namespace="klay", chain_id_method="klay_chainID"),
        EvmQuirks(estimate_fields=ESTIMATE_CALL, legacy_type_names=frozenset({"LEGACY"})),
    )
)  # fmt: skip
XDC = EvmChain(
    EvmFacts(
        "XDC", "xdc", 550, {False: 50, True: 51},
        EvmRoute("xdc", _WEB3.format("xdc"), NodePrice(), nonce_via_rest=True),
        EvmQuirks(address_prefixes=("0x", "xdc"), eip1559=True, always_estimate_gas=True),
        address_prefix="xdc",
    )
)  # fmt: skip
ONE = HarmonyChain(
    EvmFacts(
        "ONE", "one", 1023, {False: 1666600000, True: 1666700000},
        EvmRoute("one", _WEB3.format("one"), NodePrice()),
        EvmQuirks(estimate_fields=ESTIMATE_CALL),
    )
)  # fmt: skip
KCS = EvmChain(
    EvmFacts(
        "KCS", "kcs", 60, {False: 321, True: 322},
        EvmRoute("kcs", _NODE.format("KCS"), FixedPrice(1 * GWEI)),
        EvmQuirks(estimate_fields=ESTIMATE_CALL),
    )
)  # fmt: skip

CHAINS = (ETH, BSC, MATIC, CELO, KLAY, XDC, ONE, KCS)
EVM_FACTS: Mapping[str, EvmFacts] = MappingProxyType({chain.code: chain.facts for chain in CHAINS})


def evm_signer(code: str) -> EvmSigner:
    """The signer for one of upstream's EVM chains, built from its record (tests and benchmarks use it directly)."""
    from kms.signing.evm import signer_for

    facts = EVM_FACTS.get(code.strip().upper())
    if facts is None:
        raise KeyError(code)
    return signer_for(facts)
