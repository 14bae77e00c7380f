"""The Tatum API's data types, shared by ``kms.tatum`` (which speaks the API) and ``kms.chains`` / ``kms.signing``
(which sign what it hands out), so that neither side imports the other.

- ``PendingTransaction`` and ``SignatureRef``: what ``POST /v3/kms/pending/{chain}`` hands the daemon.
- ``NodeGateway``: the narrow look-up interface a signer is given for the Tatum API and the chain-node gateways behind
  it (nonces, fees, blockhashes, node REST and JSON-RPC). ``kms.tatum`` implements it; signers never import
  ``kms.tatum``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_INDEX = 2**31 - 1


@dataclass(frozen=True)
class SignatureRef:
    """One mnemonic wallet to sign with, derived at ``index``."""

    id: str
    index: int


@dataclass(frozen=True)
class PendingTransaction:
    """A pending transaction as the Tatum API hands it to KMS (`POST /v3/kms/pending/{chain}`)."""

    id: str
    chain: str
    serialized_transaction: str
    hashes: tuple[str, ...] = ()
    index: int | None = None
    signatures: tuple[SignatureRef, ...] = ()
    withdrawal_id: str | None = None
    tx_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class NodeGateway(Protocol):
    """Bounded access to the Tatum API and the node gateways behind it, for the signers' look-ups.

    Paths are relative to the Tatum API's base URL and may hold ``{apiKey}`` where Tatum's node gateways put the API
    key in the path (``/v3/blockchain/node/SOL/{apiKey}``); the gateway fills it and never lets the key into an
    error, a log or a repr. ``what`` names the look-up in error messages (``"SOL blockhash"``). Every call has a size
    cap on the answer, a total deadline and the one retry policy; a failure raises ``kms.errors.TatumApiError``
    (nothing is signed). The network (mainnet/testnet) is the gateway's own setting, fixed when it is made.
    """

    @property
    def testnet(self) -> bool: ...

    def tatum_get(self, path: str, *, what: str) -> Any:
        """``GET`` on the Tatum API; the decoded JSON answer."""
        ...

    def tatum_post(self, path: str, body: Any, *, what: str) -> Any:
        """``POST`` a JSON body to the Tatum API; the decoded JSON answer."""
        ...

    def node_rpc(self, path: str, method: str, params: Sequence[Any] | Mapping[str, Any], *, what: str) -> Any:
        """A JSON-RPC 2.0 call to a Tatum node gateway; its ``result`` (an ``error`` member raises)."""
        ...

    def external_get(self, url: str, *, what: str) -> Any:
        """``GET`` on a third-party node upstream calls directly (VeChain, Flow access node, Polygon gas station):
        absolute URL, no API key and no Tatum header sent."""
        ...

    def external_post(self, url: str, body: Any, *, what: str) -> Any:
        """``POST`` a JSON body to such a third-party node."""
        ...
