"""Registers every chain module with the registry in ``kms.chains`` (imported once, on first look-up)."""

from __future__ import annotations

from kms.chains import ada, algo, bnb, egld, evm, flow, register, sol, tron, utxo, vet, xlm, xrp

for _module in (utxo, evm, vet, tron, flow, egld, ada, algo, xlm, xrp, sol, bnb):
    for _chain in _module.CHAINS:
        register(_chain)
