"""``kms demo``: the whole job, offline, in one command.

A temporary store (real Argon2id KDF, a random password nobody sees), a fresh key wallet per chain that kms can sign,
one pending transaction each on an embedded sandbox of the Tatum API, one daemon cycle with four-eye approval on
(one extra transaction is deliberately refused), then a report of what was signed, independently verified (sender
recovered, input scripts evaluated, with the chain libraries) and refused. Nothing leaves 127.0.0.1: the node
look-ups of EGLD, VET, FLOW and ADA are answered in-process by ``kms.sandbox.nodes`` (ADA through the Cardano Rosetta
double); the temporary directory and every key are gone when it returns.

Chains are found through the registry (every chain whose ``signer`` is not None). The example transaction and the
check for a chain come from the builders below, in ``kms.demo_tron_sol_xlm_xrp`` and in ``kms.demo_chains``, chosen
by chain family (``EvmChain``; ``UtxoChain`` by the signer its ``SigningNetwork`` names; the chain class otherwise),
never by chain code; a family without a builder is listed as such. Look-ups are answered by the sandbox (SOL) and by
the in-process node doubles of ``kms.sandbox.nodes`` (EGLD, VET, FLOW, ADA).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sys
import tempfile
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kms.chains import get_chain, supported_codes
from kms.chains.ada import AdaChain
from kms.chains.algo import AlgoChain
from kms.chains.base import Chain
from kms.chains.egld import EgldChain
from kms.chains.evm import EvmChain
from kms.chains.flow import FlowChain
from kms.chains.utxo import UtxoChain
from kms.chains.vet import VetChain
from kms.daemon.four_eye import FourEye
from kms.daemon.loop import Daemon, DaemonConfig
from kms.demo_chains import AdaDemo, AlgoDemo, EgldDemo, FlowDemo, VetDemo
from kms.demo_tron_sol_xlm_xrp import family_demos
from kms.hygiene import SecretBuffer, harden_process
from kms.sandbox import Sandbox, SandboxAdmin
from kms.sandbox.nodes import DemoNodes
from kms.store import WalletStore
from kms.tatum import TatumClient

DEMO_API_KEY = "demo-api-key"
REFUSED_ID = "demo-refused-by-four-eye"


class DemoSupport(Protocol):
    def demo_pending(self, address: str, testnet: bool) -> str:
        """A valid serializedTransaction spending from ``address``."""
        ...

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        """Check ``tx_data`` independently of the signer; return a one-line proof, raise on failure."""
        ...


# -- family builders (used when a chain has no demo hooks of its own) ------------------------------------------------


class EvmDemo:
    """Legacy EIP-155 transfer; verified by recovering the sender from the signature (eth-keys)."""

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id

    def demo_pending(self, address: str, testnet: bool) -> str:
        recipient = "0x" + hashlib.sha256(address.encode()).hexdigest()[:40]
        tx = {"to": recipient, "value": "1000000000000000", "gasPrice": "20000000000", "gas": "21000",
              "nonce": 0, "chainId": self.chain_id, "data": "0x"}  # fmt: skip
        return json.dumps(tx)

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        import rlp
        from eth_keys import keys
        from eth_utils import keccak

        fields = rlp.decode(bytes.fromhex(tx_data.removeprefix("0x")))
        *unsigned, v_raw, r_raw, s_raw = fields
        v = int.from_bytes(v_raw, "big")
        chain_id = (v - 35) // 2
        digest = keccak(rlp.encode([*unsigned, chain_id, b"", b""]))
        signature = keys.Signature(
            vrs=(v - 35 - 2 * chain_id, int.from_bytes(r_raw, "big"), int.from_bytes(s_raw, "big"))
        )
        sender = signature.recover_public_key_from_msg_hash(digest).to_address().lower()
        wanted = "0x" + address[-40:].lower()
        if sender != wanted or chain_id != self.chain_id:
            raise ValueError(f"recovered {sender} on chain id {chain_id}, expected {wanted} on {self.chain_id}")
        return f"sender {sender} recovered from the signature (chain id {chain_id})"


def _pubkey_hash(address: str) -> tuple[str, bytes]:
    """("p2wpkh" | "p2pkh", hash160) of a wallet address: bech32, cashaddr or base58check."""
    from bip_utils import Base58Decoder, BchP2PKHAddrDecoder, SegwitBech32Decoder

    if ":" in address:
        hrp = address.split(":", 1)[0]
        return "p2pkh", bytes(BchP2PKHAddrDecoder.DecodeAddr(address, hrp=hrp, net_ver=b"\x00"))
    separator = address.rfind("1")
    if separator > 0:
        try:
            version, program = SegwitBech32Decoder.Decode(address[:separator], address)
        except ValueError:  # not bech32 (a base58 address may contain a "1" too)
            pass
        else:
            if version == 0 and len(program) == 20:
                return "p2wpkh", bytes(program)
    return "p2pkh", bytes(Base58Decoder.CheckDecode(address))[-20:]


def _script(kind: str, pubkey_hash: bytes) -> bytes:
    if kind == "p2wpkh":
        return b"\x00\x14" + pubkey_hash
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def _load_secp256k1_for_bitcointx() -> None:
    """python-bitcointx's interpreter checks signatures through a libsecp256k1 it loads with ctypes: the system's
    when installed, otherwise the copy bundled inside coincurve (so the demo needs nothing beyond kms's packages)."""
    import ctypes.util

    import bitcointx

    if ctypes.util.find_library("secp256k1") is None:
        import coincurve

        try:
            bitcointx.set_custom_secp256k1_path(coincurve._libsecp256k1.__file__)
        except ValueError:
            pass  # already loaded


class BitcoreDemo:
    """A bitcore Transaction JSON spending one output of the wallet's own address; verified by running the input
    script through python-bitcointx's interpreter."""

    SPENT = 5_000_000_000
    SEND = 2_500_000_000
    CHANGE = 2_400_000_000

    def __init__(self) -> None:
        self._spent: dict[str, bytes] = {}

    def demo_pending(self, address: str, testnet: bool) -> str:
        kind, pkh = _pubkey_hash(address)
        script = _script(kind, pkh)
        recipient = _script(kind, hashlib.sha256(address.encode()).digest()[:20])
        tx = {
            "version": 1,
            "inputs": [{"prevTxId": secrets.token_hex(32), "outputIndex": 0, "sequenceNumber": 0xFFFFFFFF,
                        "script": "", "scriptString": "", "output": {"satoshis": self.SPENT, "script": script.hex()}}],
            "outputs": [{"satoshis": self.SEND, "script": recipient.hex()},
                        {"satoshis": self.CHANGE, "script": script.hex()}],
            "nLockTime": 0,
        }  # fmt: skip
        return json.dumps(tx)

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        _load_secp256k1_for_bitcointx()
        from bitcointx.core import CTransaction
        from bitcointx.core.script import CScript, CScriptWitness
        from bitcointx.core.scripteval import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS, VerifyScript

        kind, pkh = _pubkey_hash(address)
        tx = CTransaction.deserialize(bytes.fromhex(tx_data))
        witness = tx.wit.vtxinwit[0].scriptWitness if len(tx.wit.vtxinwit) else CScriptWitness()
        VerifyScript(
            tx.vin[0].scriptSig,
            CScript(_script(kind, pkh)),
            tx,
            0,
            flags={SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS},
            amount=self.SPENT,
            witness=witness,
        )
        return f"input 0 ({kind.upper()}) verified by the script interpreter"


class BchDemo:
    """``<unsigned hex>:<amounts>``; verified by checking the Schnorr signature over the SIGHASH_ALL|FORKID digest."""

    SPENT = 50_000

    def demo_pending(self, address: str, testnet: bool) -> str:
        from bitcointx.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint
        from bitcointx.core.script import CScript

        _, pkh = _pubkey_hash(address)
        own = CScript(_script("p2pkh", pkh))
        tx = CMutableTransaction(
            [CMutableTxIn(COutPoint(secrets.token_bytes(32), 0), nSequence=0xFFFFFFFF)],
            [CMutableTxOut(25_000, CScript(_script("p2pkh", hashlib.sha256(pkh).digest()[:20]))),
             CMutableTxOut(23_500, own)],
            nLockTime=0,
            nVersion=2,
        )  # fmt: skip
        return f"{tx.serialize().hex()}:[{self.SPENT}]"

    def demo_verify(self, tx_data: str, address: str, testnet: bool) -> str:
        from bitcointx.core import CTransaction, Hash160
        from bitcointx.core.script import SIGVERSION_WITNESS_V0, CScript, SignatureHash

        from kms.signing.bch_schnorr import schnorr_verify

        _, pkh = _pubkey_hash(address)
        tx = CTransaction.deserialize(bytes.fromhex(tx_data))
        signature, pubkey = list(tx.vin[0].scriptSig)
        if Hash160(pubkey) != pkh or signature[-1] != 0x41 or len(signature) != 65:
            raise ValueError("input 0 is not a P2PKH Schnorr signature of this wallet")
        digest = SignatureHash(CScript(_script("p2pkh", pkh)), tx, 0, 0x41, self.SPENT, SIGVERSION_WITNESS_V0)
        if not schnorr_verify(bytes(pubkey), digest, bytes(signature[:-1])):
            raise ValueError("the Schnorr signature does not verify")
        return "input 0 Schnorr signature verified over the SIGHASH_ALL|FORKID digest"


def _demo_support(chain: Chain, testnet: bool, nodes: DemoNodes) -> DemoSupport | None:
    if chain.signer is None:
        return None
    if isinstance(chain, EvmChain):
        return EvmDemo(chain.facts.ids(testnet)[0])
    if isinstance(chain, UtxoChain):
        return BchDemo() if chain.signing.signer == "bch" else BitcoreDemo()
    for family, builder in family_demos():
        if isinstance(chain, family):
            return builder()
    keypair_and_node_chains: dict[type, Callable[[], DemoSupport]] = {
        AlgoChain: AlgoDemo, EgldChain: EgldDemo, VetChain: VetDemo, AdaChain: AdaDemo,
        FlowChain: lambda: FlowDemo(nodes),
    }  # fmt: skip
    builder = keypair_and_node_chains.get(type(chain))
    return builder() if builder is not None else None


# -- the run ------------------------------------------------------------------------------------------------------


@dataclass
class DemoLine:
    chain: str
    pending_id: str
    outcome: str
    detail: str
    ok: bool


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_demo(say: Callable[[str], None] = _say, testnet: bool = True) -> list[DemoLine]:
    # The demo's own report is the output; the daemon's log lines would only interleave with it.
    kms_logger = logging.getLogger("kms")
    previous_level = kms_logger.level
    kms_logger.setLevel(logging.ERROR)
    try:
        return _run_demo(say, testnet)
    finally:
        kms_logger.setLevel(previous_level)


def _run_demo(say: Callable[[str], None], testnet: bool) -> list[DemoLine]:
    harden_process()
    chains = [get_chain(code) for code in supported_codes()]
    nodes = DemoNodes(testnet)
    signable = [(c, s) for c in chains if (s := _demo_support(c, testnet, nodes)) is not None]
    unsupported = [f"{c.code} ({c.retired})" if c.retired else c.code for c in chains if c.signer is None]
    no_builder = [c.code for c in chains if c.signer is not None and all(c is not sc for sc, _ in signable)]
    network = "testnet" if testnet else "mainnet"
    say(f"kms demo: {len(signable)} chains can sign here ({network}); everything stays on 127.0.0.1.")
    with tempfile.TemporaryDirectory(prefix="kms-demo-") as tmp, Sandbox() as sandbox:
        os.chmod(tmp, 0o700)
        password = SecretBuffer(secrets.token_urlsafe(24))
        say("1. A temporary wallet store, sealed with a random password under the real Argon2id KDF.")
        store = WalletStore.open(Path(tmp) / "wallet.db", password, create=True)
        password.wipe()
        try:
            addresses: dict[str, tuple[str, str]] = {}
            pendings = []
            for chain, support in signable:
                generated = chain.generate_private_key(testnet)
                secret_field = "secret" if "secret" in generated else "privateKey"
                sid = store.add(chain.code, testnet, {secret_field: generated[secret_field]})
                pending_id = f"demo-{chain.code.lower()}"
                addresses[pending_id] = (chain.code, generated["address"])
                serialized = support.demo_pending(generated["address"], testnet)
                pendings.append(
                    {"id": pending_id, "chain": chain.code, "hashes": [sid], "serializedTransaction": serialized}
                )
                if chain is signable[0][0]:
                    pendings.append({**pendings[-1], "id": REFUSED_ID})
            say(f"2. {len(signable)} fresh key wallets stored; {len(pendings)} pending transactions queued on the "
                f"embedded Tatum API sandbox at {sandbox.url}.")  # fmt: skip
            with SandboxAdmin(sandbox.url) as admin:
                admin.enqueue(pendings)
                admin.configure(approval={"default": "approve", "ids": {REFUSED_ID: "deny"}})
            say(f"3. One daemon cycle, four-eye approval on ({sandbox.approval_url}/{{id}}); "
                f"{REFUSED_ID} is refused there.")  # fmt: skip
            with TatumClient(sandbox.url, DEMO_API_KEY) as client:
                four_eye = FourEye(sandbox.approval_url)
                nodes.fallback = client.gateway(testnet)  # the sandbox answers what the node doubles do not
                daemon = Daemon(
                    DaemonConfig(chains=tuple(c.code for c, _ in signable), testnet=testnet, run_once=True),
                    store,
                    client,
                    four_eye=four_eye,
                    gateway=nodes,
                )
                try:
                    report = daemon.run_cycle()
                finally:
                    daemon.close()
                    four_eye.close()
            lines = _results(sandbox, signable, addresses, testnet)
        finally:
            store.close()
    _print(say, lines, report.summary(), unsupported, no_builder)
    return lines


def _results(
    sandbox: Sandbox, signable: list[tuple[Chain, DemoSupport]], addresses: dict[str, tuple[str, str]], testnet: bool
) -> list[DemoLine]:
    state = sandbox.state.snapshot()
    support = {chain.code: s for chain, s in signable}
    lines: list[DemoLine] = []
    broadcast = {b["signatureId"]: b for b in state["broadcasts"]}
    errors = {e["signatureId"]: e["error"] for e in state["errors"]}
    for pending_id, (code, address) in addresses.items():
        if pending_id in broadcast:
            try:
                proof = support[code].demo_verify(broadcast[pending_id]["txData"], address, testnet)
                lines.append(DemoLine(code, pending_id, "signed+verified", proof, True))
            except Exception as exc:
                lines.append(DemoLine(code, pending_id, "VERIFY FAILED", f"{type(exc).__name__}: {exc}", False))
        else:
            lines.append(DemoLine(code, pending_id, "NOT SIGNED", errors.get(pending_id, "no broadcast"), False))
    refused_ok = REFUSED_ID in errors and REFUSED_ID not in broadcast
    lines.append(
        DemoLine(
            signable[0][0].code if signable else "-",
            REFUSED_ID,
            "refused" if refused_ok else "NOT REFUSED",
            errors.get(REFUSED_ID, "it was broadcast") if refused_ok else "the four-eye refusal was not honoured",
            refused_ok,
        )
    )
    return lines


def _print(
    say: Callable[[str], None],
    lines: list[DemoLine],
    summary: dict[str, object],
    unsupported: list[str],
    no_builder: list[str],
) -> None:
    say("")
    say(f"{'chain':<6} {'pending id':<26} {'result':<16} detail")
    for line in lines:
        say(f"{line.chain:<6} {line.pending_id:<26} {line.outcome:<16} {line.detail}")
    say("")
    say(f"cycle: {json.dumps(summary)}")
    if unsupported:
        say(f"not signed (pending transactions get an error report): {', '.join(unsupported)}")
    if no_builder:
        say(f"signable, but no demo transaction builder: {', '.join(no_builder)}")
    verdict = "all good" if all(line.ok for line in lines) else "SOMETHING IS WRONG (see above)"
    say(f"demo finished: {verdict}; the temporary store and every key are gone.")


def run(args: Namespace) -> int:
    lines = run_demo()
    return 0 if lines and all(line.ok for line in lines) else 1
