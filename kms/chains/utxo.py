"""UTXO chains: BTC, LTC, DOGE, BCH, with everything their signers need to know (``SigningNetwork``).

Keys are compressed WIFs with the network's version byte (a mainnet WIF is refused on testnet and the other way
round). Receive addresses: BTC bech32 P2WPKH, LTC and DOGE base58 P2PKH, BCH cashaddr P2PKH. ``validate_address``
also accepts the network's other standard forms (P2SH, and for BTC/LTC native segwit v0/v1) of that network only.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bip_utils import (
    Base58Decoder,
    BchP2PKHAddrDecoder,
    BchP2PKHAddrEncoder,
    BchP2SHAddrDecoder,
    Bip32KeyNetVersions,
    P2PKHAddrDecoder,
    P2PKHAddrEncoder,
    P2SHAddrDecoder,
    P2WPKHAddrEncoder,
    Secp256k1PublicKey,
    SegwitBech32Decoder,
    WifDecoder,
    WifEncoder,
    WifPubKeyModes,
)
from bip_utils.utils.crypto import DoubleSha256

from kms.api import PendingTransaction
from kms.chains.base import KIND_MNEMONIC, LazySigner, Signer
from kms.chains.bip44 import TPUB, XPUB, Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, network_name, secp256k1_scalar_ok, succeeds
from kms.errors import InvalidKeyError, SigningError
from kms.hygiene import SecretBuffer

RAW_KEY_LENGTH = 33
"""A UTXO raw signing key (``kms.keys``): the 32-byte scalar, then 1 when its WIF asks for the compressed public key
(every key kms makes or derives) or 0 for an old uncompressed WIF."""


@dataclass(frozen=True)
class UtxoNetwork(Bip44Network):
    wif: bytes = b"\x80"
    p2pkh: bytes = b"\x00"
    p2sh: tuple[bytes, ...] = (b"\x05",)
    segwit_hrp: str | None = None
    cashaddr_hrp: str | None = None


@dataclass(frozen=True)
class SigningNetwork:
    """What the UTXO signers need to know about a chain. The transaction format itself is the same on all four."""

    name: str
    signer: str = "bitcore"
    """``bitcore`` (bitcore Transaction JSON, ECDSA: BTC, LTC, DOGE) or ``bch`` (hex + amounts, Schnorr FORKID)."""
    segwit: bool = False
    """Whether the chain's bitcore library signs P2WPKH and P2SH-P2WPKH inputs (bitcore-lib and bitcore-lib-ltc do,
    bitcore-lib-doge does not)."""
    checked_serialization: bool = False
    """Whether upstream serializes with bitcore's checks on (DOGE on-chain): dust outputs and fees far from the
    library's own estimate are refused."""
    dust_amount: int = 0
    fee_per_kb: int = 0
    code: str = ""
    """Upstream chain code, also checked against ``pending.chain`` (filled in by the chain)."""
    wif_version_mainnet: int = 0x80
    wif_version_testnet: int = 0xEF
    """From the chain's UtxoNetwork records (filled in by the chain)."""

    def wif_version(self, testnet: bool) -> int:
        return self.wif_version_testnet if testnet else self.wif_version_mainnet

    def label(self, testnet: bool) -> str:
        return f"{self.name} {'testnet' if testnet else 'mainnet'}"


_SEGWIT_PROGRAM_LENGTHS = {0: (20, 32), 1: (32,)}


class UtxoChain(Secp256k1Bip44Chain):
    offchain_withdrawals = True

    def __init__(
        self,
        code: str,
        broadcast_route: str,
        address_kind: str,
        mainnet: UtxoNetwork,
        testnet: UtxoNetwork,
        signing: SigningNetwork,
    ) -> None:
        if address_kind not in ("p2wpkh", "p2pkh", "cashaddr"):
            raise ValueError(address_kind)
        super().__init__(code, broadcast_route, mainnet, testnet)
        self.address_kind = address_kind
        self._utxo = {False: mainnet, True: testnet}
        self.signing = replace(
            signing, code=code, wif_version_mainnet=mainnet.wif[0], wif_version_testnet=testnet.wif[0]
        )
        self.signer = LazySigner("kms.chains.utxo:build_signer", self.signing)

    def raw_signing_key(self, secret: SecretBuffer, kind: str, index: int | None, testnet: bool) -> SecretBuffer:
        """``RAW_KEY_LENGTH`` bytes: the scalar derived from the mnemonic (compressed), or the WIF's scalar and flag."""
        if kind == KIND_MNEMONIC:
            return _raw_key(self.derived_scalar(secret, index, testnet), compressed=True)
        return self._raw_from_wif(secret, testnet)

    def _raw_from_wif(self, secret: SecretBuffer, testnet: bool) -> SecretBuffer:
        # base58 decoding goes through bip-utils, which takes str and returns bytes (see SECURITY.md).
        text = secret.text()
        if not text.isascii() or not text.strip():
            raise SigningError("the key is not a WIF private key")
        try:
            decoded = Base58Decoder.Decode(text.strip())
        except Exception:
            decoded = None
        if decoded is None:
            raise SigningError("the key is not a WIF private key")
        with SecretBuffer(decoded) as data:
            del decoded
            view = data.view()
            if len(view) < 5 or not hmac.compare_digest(
                DoubleSha256.QuickDigest(bytes(view[:-4]))[:4], bytes(view[-4:])
            ):
                raise SigningError("the key is not a WIF private key (bad checksum)")
            payload = view[:-4]
            if len(payload) == 34 and payload[33] == 0x01:
                compressed = True
            elif len(payload) == 33:
                compressed = False
            else:
                raise SigningError("the key is not a WIF private key")
            if payload[0] != self.signing.wif_version(testnet):
                raise SigningError(f"the key is not a WIF for {self.signing.label(testnet)}")
            try:
                return _raw_key(payload[1:33], compressed)
            finally:
                del view, payload

    def offchain_key_indexes(self, pending: PendingTransaction) -> Sequence[int] | None:
        """Offchain withdrawals are signed with one key per input, derived from the mnemonic wallet at the indexes
        the withdrawal names (upstream's signXxxOffchainKMSTransaction); None for ordinary pending transactions."""
        if not pending.withdrawal_id:
            return None
        from kms.signing.utxo_common import offchain_derivation_indexes

        return offchain_derivation_indexes(pending)

    def encode_address(self, public_key: Secp256k1PublicKey, testnet: bool) -> str:
        net = self._utxo[testnet]
        if self.address_kind == "p2wpkh":
            assert net.segwit_hrp is not None
            return P2WPKHAddrEncoder.EncodeKey(public_key, hrp=net.segwit_hrp, wit_ver=0)
        if self.address_kind == "cashaddr":
            assert net.cashaddr_hrp is not None
            return BchP2PKHAddrEncoder.EncodeKey(public_key, hrp=net.cashaddr_hrp, net_ver=b"\x00")
        return P2PKHAddrEncoder.EncodeKey(public_key, net_ver=net.p2pkh)

    def encode_private_key(self, raw: bytes, testnet: bool) -> str:
        return WifEncoder.Encode(raw, net_ver=self._utxo[testnet].wif, pub_key_mode=WifPubKeyModes.COMPRESSED)

    def decode_private_key(self, text: str, testnet: bool) -> bytes:
        message = f"invalid {self.code} private key: expected a compressed WIF for {network_name(testnet)}"
        if not isinstance(text, str) or not text:
            raise InvalidKeyError(message)
        raw, mode = attempt(message, lambda: WifDecoder.Decode(text, net_ver=self._utxo[testnet].wif))
        if mode != WifPubKeyModes.COMPRESSED:
            raise InvalidKeyError(f"invalid {self.code} private key: uncompressed WIF keys are not supported")
        return raw

    def validate_address(self, address: str, testnet: bool) -> None:
        if not isinstance(address, str) or not address or not self._address_ok(address, self._utxo[testnet]):
            raise InvalidKeyError(f"invalid {self.code} {network_name(testnet)} address")

    def _address_ok(self, address: str, net: UtxoNetwork) -> bool:
        if net.cashaddr_hrp is not None:
            return self._cashaddr_ok(address, net.cashaddr_hrp)
        if net.segwit_hrp is not None and address.lower().startswith(net.segwit_hrp + "1"):
            return self._segwit_ok(address, net.segwit_hrp)
        return succeeds(lambda: P2PKHAddrDecoder.DecodeAddr(address, net_ver=net.p2pkh)) or any(
            succeeds(lambda v=version: P2SHAddrDecoder.DecodeAddr(address, net_ver=v)) for version in net.p2sh
        )

    @staticmethod
    def _segwit_ok(address: str, hrp: str) -> bool:
        try:
            version, program = SegwitBech32Decoder.Decode(hrp, address)
        except Exception:
            return False
        return len(program) in _SEGWIT_PROGRAM_LENGTHS.get(version, ())

    @staticmethod
    def _cashaddr_ok(address: str, hrp: str) -> bool:
        candidate = address.lower()
        if ":" not in candidate:
            candidate = f"{hrp}:{candidate}"
        if address != address.lower() and address != address.upper():
            return False  # cashaddr forbids mixed case
        return succeeds(lambda: BchP2PKHAddrDecoder.DecodeAddr(candidate, hrp=hrp, net_ver=b"\x00")) or succeeds(
            lambda: BchP2SHAddrDecoder.DecodeAddr(candidate, hrp=hrp, net_ver=b"\x08")
        )


# Version bytes from the SDK's constants (LTC_NETWORK, DOGE_NETWORK, ...) and bitcoinjs networks.
BTC = UtxoChain(
    "BTC",
    "bitcoin",
    "p2wpkh",
    UtxoNetwork(0, XPUB, wif=b"\x80", p2pkh=b"\x00", p2sh=(b"\x05",), segwit_hrp="bc"),
    UtxoNetwork(1, TPUB, wif=b"\xef", p2pkh=b"\x6f", p2sh=(b"\xc4",), segwit_hrp="tb"),
    SigningNetwork("Bitcoin", segwit=True),
)
LTC = UtxoChain(
    "LTC",
    "litecoin",
    "p2pkh",
    UtxoNetwork(
        2,
        Bip32KeyNetVersions(bytes.fromhex("019da462"), bytes.fromhex("019d9cfe")),  # Ltub / Ltpv
        wif=b"\xb0",
        p2pkh=b"\x30",
        p2sh=(b"\x32", b"\x05"),
        segwit_hrp="ltc",
    ),
    UtxoNetwork(
        1,
        Bip32KeyNetVersions(bytes.fromhex("0436f6e1"), bytes.fromhex("0436ef7d")),  # ttub / ttpv
        wif=b"\xef",
        p2pkh=b"\x6f",
        p2sh=(b"\x3a", b"\xc4"),
        segwit_hrp="tltc",
    ),
    SigningNetwork("Litecoin", segwit=True),
)
DOGE = UtxoChain(
    "DOGE",
    "dogecoin",
    "p2pkh",
    UtxoNetwork(3, XPUB, wif=b"\x9e", p2pkh=b"\x1e", p2sh=(b"\x16",)),
    UtxoNetwork(1, TPUB, wif=b"\xf1", p2pkh=b"\x71", p2sh=(b"\xc4",)),
    SigningNetwork(
        "Dogecoin",
        checked_serialization=True,
        dust_amount=100_000_000,  # bitcore-lib-doge Transaction.DUST_AMOUNT: 1 DOGE
        fee_per_kb=100_000_000,  # bitcore-lib-doge Transaction.FEE_PER_KB: 1 DOGE
    ),
)
# BCH keeps coin type 145 on testnet too (upstream: "historically uses mainnet derivation path").
BCH = UtxoChain(
    "BCH",
    "bcash",
    "cashaddr",
    UtxoNetwork(145, XPUB, wif=b"\x80", cashaddr_hrp="bitcoincash"),
    UtxoNetwork(145, TPUB, wif=b"\xef", cashaddr_hrp="bchtest"),
    SigningNetwork("Bitcoin Cash", signer="bch"),
)

CHAINS = (BTC, LTC, DOGE, BCH)
BITCOIN, LITECOIN, DOGECOIN, BITCOIN_CASH = (chain.signing for chain in CHAINS)


def _raw_key(scalar: bytes | memoryview, compressed: bool) -> SecretBuffer:
    if not secp256k1_scalar_ok(memoryview(scalar)):
        raise SigningError("the key is out of the secp256k1 key range")
    raw = SecretBuffer(bytearray(RAW_KEY_LENGTH))
    raw.raw()[:32] = scalar
    raw.raw()[32] = 1 if compressed else 0
    return raw


def build_signer(network: SigningNetwork) -> Signer:
    """The signer a chain's ``SigningNetwork`` asks for; the signing libraries load on first use."""
    if network.signer == "bch":
        from kms.signing.bch import BchSigner

        return BchSigner(network)
    from kms.signing.utxo import UtxoSigner

    return UtxoSigner(network)
