"""UTXO chains: BTC, LTC, DOGE, BCH.

Keys are compressed WIFs with the network's version byte (a mainnet WIF is refused on testnet and the other way
round). Receive addresses: BTC bech32 P2WPKH, LTC and DOGE base58 P2PKH, BCH cashaddr P2PKH. ``validate_address``
also accepts the network's other standard forms (P2SH, and for BTC/LTC native segwit v0/v1) of that network only.
"""

from __future__ import annotations

from dataclasses import dataclass

from bip_utils import (
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

from kms.chains.base import LazySigner, Signer
from kms.chains.bip44 import TPUB, XPUB, Bip44Network, Secp256k1Bip44Chain
from kms.chains.common import attempt, network_name, succeeds
from kms.errors import InvalidKeyError


@dataclass(frozen=True)
class UtxoNetwork(Bip44Network):
    wif: bytes = b"\x80"
    p2pkh: bytes = b"\x00"
    p2sh: tuple[bytes, ...] = (b"\x05",)
    segwit_hrp: str | None = None
    cashaddr_hrp: str | None = None


_SEGWIT_PROGRAM_LENGTHS = {0: (20, 32), 1: (32,)}


class UtxoChain(Secp256k1Bip44Chain):
    def __init__(
        self, code: str, broadcast_route: str, address_kind: str, mainnet: UtxoNetwork, testnet: UtxoNetwork
    ) -> None:
        if address_kind not in ("p2wpkh", "p2pkh", "cashaddr"):
            raise ValueError(address_kind)
        super().__init__(code, broadcast_route, mainnet, testnet)
        self.address_kind = address_kind
        self._utxo = {False: mainnet, True: testnet}

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
)
DOGE = UtxoChain(
    "DOGE",
    "dogecoin",
    "p2pkh",
    UtxoNetwork(3, XPUB, wif=b"\x9e", p2pkh=b"\x1e", p2sh=(b"\x16",)),
    UtxoNetwork(1, TPUB, wif=b"\xf1", p2pkh=b"\x71", p2sh=(b"\xc4",)),
)
# BCH keeps coin type 145 on testnet too (upstream: "historically uses mainnet derivation path").
BCH = UtxoChain(
    "BCH",
    "bcash",
    "cashaddr",
    UtxoNetwork(145, XPUB, wif=b"\x80", cashaddr_hrp="bitcoincash"),
    UtxoNetwork(145, TPUB, wif=b"\xef", cashaddr_hrp="bchtest"),
)

CHAINS = (BTC, LTC, DOGE, BCH)


def build_signer(code: str) -> Signer:
    """Signing libraries load on first use; BCH signs differently (Schnorr, SIGHASH_FORKID, hex + amounts)."""
    from kms.signing.bch import BchSigner
    from kms.signing.utxo import UtxoSigner
    from kms.signing.utxo_common import BITCOIN, DOGECOIN, LITECOIN

    if code == BCH.code:
        return BchSigner()
    return UtxoSigner({BTC.code: BITCOIN, LTC.code: LITECOIN, DOGE.code: DOGECOIN}[code])


for _chain in CHAINS:
    _chain.signer = LazySigner("kms.chains.utxo:build_signer", _chain.code)
