"""The EVM look-ups (nonce, gas price, gas limit, chain id) made the way upstream's SDK makes them, through the
NodeGateway; which route and price source a chain uses is its ``EvmRoute`` (``kms.chains.evm``).

A gateway failure is a ``TatumApiError`` (raised by the gateway); an answer that is not a number is one too. Range
checks on the numbers are the signer's (an unusable answer signs nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from kms.api import NodeGateway
from kms.chains.evm import GWEI, EvmRoute, FixedPrice, PolygonGasStation, TatumFee
from kms.errors import TatumApiError

_MAX_GAS_STATION_GWEI = 10**12


class EvmNodeLookups:
    """One chain's look-ups over a gateway. ``route`` None (a chain upstream never looks anything up for) refuses
    every look-up."""

    def __init__(self, gateway: NodeGateway, code: str, route: EvmRoute | None) -> None:
        self._gateway = gateway
        self._code = code
        self._route = route

    def __repr__(self) -> str:
        return f"EvmNodeLookups({self._code!r})"

    def transaction_count(self, address: str) -> int:
        route = self._routes()
        if route.nonce_via_rest:
            path = f"/v3/{route.rest}/transaction/count/{quote(address, safe='')}"
            return _as_int(self._gateway.tatum_get(path, what="nonce"), f"{self._code} transaction count")
        return self._rpc_int(f"{route.namespace}_getTransactionCount", [address, "pending"])

    def gas_price(self) -> int:
        route = self._routes()
        source = route.gas_price
        if isinstance(source, FixedPrice):
            return source.wei
        if isinstance(source, TatumFee):
            answer = self._gateway.tatum_get(f"/v3/blockchain/fee/{source.currency}", what="fee estimate")
            if not isinstance(answer, dict) or "medium" not in answer:
                raise TatumApiError(f"the {self._code} fee estimate has no 'medium' field")
            price = _as_int(answer["medium"], f"{self._code} fee estimate")
            if price < 0:
                raise TatumApiError(f"the {self._code} fee estimate is negative")
            return price
        if isinstance(source, PolygonGasStation) and source.url is not None:
            return self._polygon_gas_station(source, source.url)
        return self._rpc_int(f"{route.namespace}_gasPrice", [])

    def fee_currency_gas_price(self, fee_currency: str) -> int:
        """CELO: the gas price in a fee currency (celo-ethers-wrapper's ``eth_gasPrice [feeCurrency]``)."""
        return self._rpc_int(f"{self._routes().namespace}_gasPrice", [fee_currency])

    def estimate_gas(self, tx: Mapping[str, Any]) -> int:
        return self._rpc_int(f"{self._routes().namespace}_estimateGas", [dict(tx)])

    def chain_id(self) -> int:
        return self._rpc_int(self._routes().chain_id_method, [])

    def _routes(self) -> EvmRoute:
        if self._route is None:
            raise TatumApiError(f"no Tatum look-up routes for chain {self._code!r}")
        return self._route

    def _rpc_int(self, method: str, params: list[Any]) -> int:
        answer = self._gateway.node_rpc(self._routes().rpc, method, params, what=f"{method} on the {self._code} node")
        return _as_int(answer, f"{self._code} {method} result")

    def _polygon_gas_station(self, source: PolygonGasStation, url: str) -> int:
        answer = self._gateway.external_get(url, what="Polygon gas station")
        fast = answer.get("fast") if isinstance(answer, dict) else None
        raw = fast.get("maxFee") if isinstance(fast, dict) else None
        gwei = Decimal(source.minimum_gwei)
        if raw is not None:
            try:
                gwei = max(gwei, Decimal(str(raw)))
            except InvalidOperation:
                raise TatumApiError("the Polygon gas station answered with an unreadable maxFee") from None
            if not gwei.is_finite() or gwei > _MAX_GAS_STATION_GWEI:
                raise TatumApiError("the Polygon gas station answered with an unusable maxFee")
        return math.ceil(gwei) * GWEI


def _as_int(raw: object, what: str) -> int:
    """A JSON number or a decimal / 0x-hex string as upstream's SDK reads them; the sign is checked by the caller."""
    if isinstance(raw, bool):
        raise TatumApiError(f"the {what} is not a number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and len(raw) <= 80:
        text = raw.strip()
        try:
            return int(text[2:], 16) if text[:2].lower() == "0x" else int(text, 10)
        except ValueError:
            raise TatumApiError(f"the {what} is not a number") from None
    raise TatumApiError(f"the {what} is not a number")


__all__ = ["EvmNodeLookups"]
