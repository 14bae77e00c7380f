"""Byte-for-byte references computed on this project's machine by the signing libraries upstream runs.

- web3-eth-accounts 1.10.4 (what @tatumio/tatum 1.37.68's ``web3 ^1.7.0`` resolves to): ``signTransaction(tx, key)``
  with no signing options and a stub provider answering ``net_version`` / ``eth_chainId`` with the tx's chain id,
  exactly the call ``signEthKMSTransaction`` and its BSC/MATIC/XDC/ONE/KCS siblings make once fields are filled.
- @celo-tools/celo-ethers-wrapper 0.1.1 with ethers 5.7.2 (what @tatumio/celo 2.2.100 resolves to): the body of
  ``CeloWallet.signTransaction`` on an already populated request: ``serializeCeloTransaction(tx,
  signingKey.signDigest(keccak256(serializeCeloTransaction(tx))))``.
KLAY's caver-js 1.8.2 could not be installed (it depends on a withdrawn npm package); its LEGACY encoding is the same
EIP-155 layout (caver ``rlpEncodeForLegacyTransaction`` / ``makeRawTransaction``), covered by the other tests.
"""

from __future__ import annotations

import pytest

from kms.chains.evm import evm_signer
from tests.signing.test_sign_evm import key, pending_for

PK = "0xdae259f7edf7c4b7370e5041a330638bd03d2ea87ef49cb175f88f8c41c3292b"
TRANSFER_DATA = (
    "0xa9059cbb00000000000000000000000022d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
)

WEB3_REFERENCES = [
    (
        "BSC",
        False,
        {
            "to": "0x1111111111111111111111111111111111111111",
            "data": TRANSFER_DATA,
            "gas": 60000,
            "gasPrice": "10000000000",
            "nonce": 3,
            "chainId": 56,
            "from": 0,
        },
        "0xf8aa038502540be40082ea6094111111111111111111111111111111111111111180b844a9059cbb00000000000000000000000022d44d"
        "45fb79e5cdfbd2881cc3992a5ac53d2c4d0000000000000000000000000000000000000000000000000de0b6b3a76400008193a024327741"
        "eb85f9d0de71219786f208a4f685485c47be0a56177bd0a061324c8da00b10ced9943a42af3d9d554000af118ae69b5fd0cdd6d4e3e7797e"
        "e8aad7c9b0",
    ),
    (
        "ONE",
        False,
        {
            "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
            "value": "1000000000000000000",
            "gas": "21000",
            "gasPrice": "100000000000",
            "nonce": 0,
            "chainId": 1666600000,
        },
        "0xf8708085174876e8008252089422d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d880de0b6b3a76400008084c6ac98a3a0bc7fba1db55c"
        "b2052c2101c889bac526567cecb8cd50d52c0b34eeedfd8c9265a00c54459fe9bdddd7477f973af0ce68726869f8839922e66cbb613d5107"
        "6fbdcc",
    ),
    (
        "KCS",
        False,
        {
            "data": "0x6007600c60003960076000f360043560005500",
            "gas": 100000,
            "gasPrice": "1000000000",
            "nonce": 11,
            "chainId": 321,
            "value": "0x0",
        },
        "0xf8650b843b9aca00830186a08080936007600c60003960076000f3600435600055008202a5a0c49ac7395f7bfe409168262a0f18724971"
        "66ab9dc7a184c8c1f201a7aeb2398ea07032a52d3ca9f5b975ae5e0738d36c599ea815fb44f9e5942eb79831fd039332",
    ),
    (
        "XDC",
        True,
        {
            "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
            "value": "9",
            "gas": 21000,
            "nonce": 4,
            "chainId": 51,
            "maxFeePerGas": "0x77359400",
            "maxPriorityFeePerGas": "1000000000",
        },
        "0x02f86a3304843b9aca0084773594008252089422d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d0980c080a02bb40290540b1b19d2d116"
        "4c1c07e697d78fd6e7399c366c7089fb87016a12fda06e5002783b190bd77420b9d04014c88ef28d0ec2967c695e5d17e22577c4b5e9",
    ),
    (
        "MATIC",
        True,
        {
            "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
            "value": "0xffffffffffffffffffff",
            "gas": "0x5208",
            "gasPrice": "0x6fc23ac00",
            "nonce": 123456789,
            "chainId": 80002,
        },
        "0xf87584075bcd158506fc23ac008252089422d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d8affffffffffffffffffff8083027127a03e"
        "28fdc8cbdba940c0571eb3a477eb8bdb36a68ec340c5ea164acab1ff3eb416a007a0ff26ac1e552fdb9dd39a01bba45546373aee986bcd47"
        "cd02ec968f74a4d8",
    ),
]

CELO_REFERENCES = [
    (
        True,
        {
            "chainId": 44787,
            "nonce": 2,
            "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
            "gasLimit": "0x5208",
            "gasPrice": "0x3b9aca00",
            "value": "0xde0b6b3a7640000",
        },
        "0xf87102843b9aca008252088080809422d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d880de0b6b3a76400008083015e0aa02616b91116"
        "a34ad77eebbf1894acbac13c186bdad7f4089cb10b1ad327d1ad8da002198206054d2fc69584b54e5b5f1b9990a5ad3e3fba4ff6fd5b9c44"
        "1903be46",
    ),
    (
        False,
        {
            "chainId": 42220,
            "feeCurrency": "0x765de816845861e75a25fca122bb6898b8b1282a",
            "gatewayFeeRecipient": "0x1111111111111111111111111111111111111111",
            "gatewayFee": "0x10",
            "nonce": 0,
            "to": "0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d",
            "data": TRANSFER_DATA,
            "gasLimit": "0x186a0",
            "gasPrice": "0x3b9aca00",
        },
        "0xf8d780843b9aca00830186a094765de816845861e75a25fca122bb6898b8b1282a941111111111111111111111111111111111111111"
        "109422d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d80b844a9059cbb00000000000000000000000022d44d45fb79e5cdfbd2881cc399"
        "2a5ac53d2c4d0000000000000000000000000000000000000000000000000de0b6b3a7640000830149fba0846fe16fdc042b9189f02220d0"
        "06df07006ca456792d74681f165d460ca66cb6a0057e103f69cb638a86a94cd83844d8b3f904ab854cc7245caa905e0200c1a91b",
    ),
    (
        True,
        {
            "chainId": 44787,
            "nonce": 9,
            "data": "0x6007600c60003960076000f360043560005500",
            "gasLimit": "0x30d40",
            "gasPrice": "0x5d21dba00",
            "value": "0x0",
        },
        "0xf86a098505d21dba0083030d408080808080936007600c60003960076000f36004356000550083015e0aa0ed22c3795dcb06c6ca9535b2"
        "c9ec190c96a8598bce1b95cc00ccf05621308a45a01095eb680406158c7101692c38f1ce9c4abbd8188a50daa338d667cd8e2e927e",
    ),
]


@pytest.mark.parametrize(("chain", "testnet", "tx", "expected"), WEB3_REFERENCES, ids=[r[0] for r in WEB3_REFERENCES])
def test_matches_web3_eth_accounts(chain: str, testnet: bool, tx: dict[str, object], expected: str) -> None:
    assert evm_signer(chain).sign(pending_for(chain, tx), key(PK), testnet).payload == expected


@pytest.mark.parametrize(("testnet", "tx", "expected"), CELO_REFERENCES, ids=["plain", "fee-currency", "deploy"])
def test_matches_celo_ethers_wrapper(testnet: bool, tx: dict[str, object], expected: str) -> None:
    assert evm_signer("CELO").sign(pending_for("CELO", tx), key(PK), testnet).payload == expected
