"""The local policy (``--policy FILE``, TOML): rules on the decoded intent, evaluated before any approval request and
any signature, in this order (the first failing rule refuses, and the refusal names it)::

    version = 1                      # required
    unlisted_chains = "deny"         # "deny" (default) or "allow": chains without a [chains.X] table
    allow_unknown = false            # unknown intents (default false); a chain may override
    allowed_types = ["native_transfer", "token_transfer", "token_transfer_from", "utxo_transfer"]  # default: all

    [chains.ETH]
    allowed_types = ["native_transfer"]          # overrides the top level
    allow_unknown = false                        # overrides the top level
    allow_destinations = ["0x22d4..."]           # when present, every payment must go to one of these
    deny_destinations = ["0xbad0..."]            # never pay these
    unlisted_assets = "allow"                    # "allow" (default) or "deny": assets without a table below
    daily_count = 100                            # transactions per wallet in any 24 hours

    [chains.ETH.assets.native]                   # "native", or a token contract address
    max_per_tx = "1000000000000000000"           # base units; a string for amounts beyond 64 bits
    daily_amount = "5000000000000000000"         # per wallet in any 24 hours

Destinations are the recipients; for a token transfer the token contract is the asset, so ``unlisted_assets =
"deny"`` with one ``assets`` table per token is how only known tokens pass. Change outputs (UTXO, back to an address
the transaction spends from) are not payments. A wallet is the set of
signatureIds the pending transaction is signed with, per chain. The 24-hour figures live in a ``VelocityLedger``;
the daemon records a transaction there once it is signed (``LocalPolicy.record``).

Verdicts: a rule on the transaction itself refuses it (``REFUSED``: it would be refused again); a 24-hour limit
holds it (``UNAVAILABLE``: asked again next cycle, it passes once the window has room).

The file's SHA-256 is taken when it is read (``LocalPolicy.sha256``) for the audit log and ``kms_policy_info``; the
daemon only reads it again at a restart or an explicit ``reload()``, which returns the old and new hash to audit.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms.api import PendingTransaction
from kms.approval.intent import KNOWN_TYPES, NATIVE, Intent
from kms.approval.velocity import WINDOW_SECONDS, VelocityLedger
from kms.bounded_file import read_bounded
from kms.daemon.four_eye import Decision, Verdict
from kms.errors import UsageError

MAX_POLICY_BYTES = 1024 * 1024
MAX_AMOUNT = 2**256 - 1
_CHAIN_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,15}")
_EVM_HEX = re.compile(r"(?:0x|xdc)([0-9a-f]{40})")
_TOP_KEYS = frozenset({"version", "unlisted_chains", "allow_unknown", "allowed_types", "chains"})
_CHAIN_KEYS = frozenset(
    {"allowed_types", "allow_unknown", "allow_destinations", "deny_destinations", "unlisted_assets", "daily_count",
     "assets"}
)  # fmt: skip
_ASSET_KEYS = frozenset({"max_per_tx", "daily_amount"})


def canonical_address(text: str) -> str:
    """One spelling per address: EVM hex as ``0x`` + lower case (XDC's ``xdc`` prefix too), bech32 and cashaddr in
    lower case (they are case-insensitive); base58 and other forms as written."""
    stripped = text.strip()
    lowered = stripped.lower()
    if _EVM_HEX.fullmatch(lowered):
        return "0x" + lowered[3:] if lowered.startswith("xdc") else lowered
    if stripped == stripped.upper() and ("1" in stripped or ":" in stripped):
        return lowered
    return stripped


def _same_address(listed: str, address: str) -> bool:
    if listed == address:
        return True
    # cashaddr may be written without its network prefix
    return ":" in address and ":" not in listed and address.split(":", 1)[1] == listed


@dataclass(frozen=True)
class AssetRules:
    max_per_tx: int | None = None
    daily_amount: int | None = None


@dataclass(frozen=True)
class ChainRules:
    allowed_types: frozenset[str] | None = None
    allow_unknown: bool | None = None
    allow_destinations: tuple[str, ...] | None = None
    deny_destinations: tuple[str, ...] = ()
    unlisted_assets: str = "allow"
    daily_count: int | None = None
    assets: Mapping[str, AssetRules] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    rule: str | None
    reason: str
    hold: bool = False
    """A 24-hour limit: not now, perhaps later."""

    def decision(self) -> Decision:
        if self.allowed:
            return Decision(Verdict.APPROVED, f"policy: {self.reason}")
        verdict = Verdict.UNAVAILABLE if self.hold else Verdict.REFUSED
        return Decision(verdict, f"policy {self.rule}: {self.reason}")

    def as_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason, "hold": self.hold}


@dataclass(frozen=True)
class Policy:
    sha256: str
    unlisted_chains: str = "deny"
    allow_unknown: bool = False
    allowed_types: frozenset[str] = KNOWN_TYPES
    chains: Mapping[str, ChainRules] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        raw = read_bounded(Path(path), MAX_POLICY_BYTES, f"policy {Path(path)}")
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"policy {path} is not valid TOML ({_one_line(exc)})") from None
        return cls.parse(document, hashlib.sha256(raw).hexdigest())

    @classmethod
    def parse(cls, document: Mapping[str, Any], sha256: str) -> Policy:
        _only(document, _TOP_KEYS, "the policy")
        if document.get("version") != 1:
            raise UsageError("policy: 'version = 1' is required")
        chains = document.get("chains", {})
        if not isinstance(chains, Mapping):
            raise UsageError("policy: 'chains' must be a table")
        parsed: dict[str, ChainRules] = {}
        for code, table in chains.items():
            normal = str(code).strip().upper()
            if not _CHAIN_CODE.fullmatch(normal) or normal in parsed:
                raise UsageError(f"policy: bad or repeated chain code {str(code)[:20]!r}")
            parsed[normal] = _chain_rules(normal, table)
        return cls(
            sha256=sha256,
            unlisted_chains=_choice(document, "unlisted_chains", ("deny", "allow"), "deny", "policy"),
            allow_unknown=_bool(document, "allow_unknown", False, "policy"),
            allowed_types=_types(document.get("allowed_types"), "allowed_types") or KNOWN_TYPES,
            chains=parsed,
        )

    def allows_unknown(self, chain: str) -> bool:
        rules = self.chains.get(chain.upper())
        return rules.allow_unknown if rules is not None and rules.allow_unknown is not None else self.allow_unknown

    def evaluate(
        self, intent: Intent, wallet: str, ledger: VelocityLedger | None = None, now: float | None = None
    ) -> PolicyDecision:
        chain = intent.chain.upper()
        rules = self.chains.get(chain)
        if rules is None:
            if self.unlisted_chains == "deny":
                return _refuse("unlisted_chains", f"{chain} has no [chains.{chain}] table")
            rules = ChainRules()
        prefix = f"chains.{chain}"
        if not intent.known:
            if not self.allows_unknown(chain):
                rule = f"{prefix}.allow_unknown" if rules.allow_unknown is not None else "allow_unknown"
                return _refuse(rule, f"unknown intent ({intent.unknown_reason or 'not decodable'})")
            return PolicyDecision(True, None, "unknown intent allowed")
        types = rules.allowed_types if rules.allowed_types is not None else self.allowed_types
        if intent.type not in types:
            rule = f"{prefix}.allowed_types" if rules.allowed_types is not None else "allowed_types"
            return _refuse(rule, f"transaction type {intent.type} is not allowed")
        refusal = _destinations(rules, intent, prefix) or _per_tx(rules, intent, prefix)
        if refusal is None and ledger is not None:
            refusal = _velocity(rules, intent, wallet, ledger, prefix, time.time() if now is None else now)
        return refusal or PolicyDecision(True, None, "every rule passed")

    def as_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "version": 1,
            "unlisted_chains": self.unlisted_chains,
            "allow_unknown": self.allow_unknown,
            "allowed_types": sorted(self.allowed_types),
            "chains": {code: _chain_json(rules) for code, rules in sorted(self.chains.items())},
        }


def _destinations(rules: ChainRules, intent: Intent, prefix: str) -> PolicyDecision | None:
    for payment in intent.payments():
        address = canonical_address(payment.address)
        if any(_same_address(listed, address) for listed in rules.deny_destinations):
            return _refuse(f"{prefix}.deny_destinations", f"{payment.address} is on the denylist")
        allowed = rules.allow_destinations
        if allowed is not None and not any(_same_address(listed, address) for listed in allowed):
            return _refuse(f"{prefix}.allow_destinations", f"{payment.address} is not on the allowlist")
    return None


def _per_tx(rules: ChainRules, intent: Intent, prefix: str) -> PolicyDecision | None:
    for asset, amount in intent.totals().items():
        asset_rules = rules.assets.get(_asset_key(asset))
        if asset_rules is None:
            if rules.unlisted_assets == "deny":
                return _refuse(f"{prefix}.unlisted_assets", f"asset {asset} has no rules")
            continue
        if asset_rules.max_per_tx is not None and amount > asset_rules.max_per_tx:
            return _refuse(
                f"{prefix}.assets.{asset}.max_per_tx", f"{amount} is over the limit of {asset_rules.max_per_tx}"
            )
    return None


def _velocity(
    rules: ChainRules, intent: Intent, wallet: str, ledger: VelocityLedger, prefix: str, now: float
) -> PolicyDecision | None:
    past, count = ledger.totals(wallet, intent.chain.upper(), now - WINDOW_SECONDS)
    if rules.daily_count is not None and count + 1 > rules.daily_count:
        return _hold(f"{prefix}.daily_count", f"{count} transactions in 24 hours already (limit {rules.daily_count})")
    for asset, amount in intent.totals().items():
        asset_rules = rules.assets.get(_asset_key(asset))
        limit = asset_rules.daily_amount if asset_rules is not None else None
        if limit is not None and past.get(_asset_key(asset), 0) + amount > limit:
            spent = past.get(_asset_key(asset), 0)
            return _hold(
                f"{prefix}.assets.{asset}.daily_amount", f"{spent} + {amount} in 24 hours is over the limit of {limit}"
            )
    return None


def _asset_key(asset: str) -> str:
    return NATIVE if asset == NATIVE else canonical_address(asset)


def _refuse(rule: str, reason: str) -> PolicyDecision:
    return PolicyDecision(False, rule, reason)


def _hold(rule: str, reason: str) -> PolicyDecision:
    return PolicyDecision(False, rule, reason, hold=True)


# -- reading the file ----------------------------------------------------------------------------------------------


def _chain_rules(code: str, table: object) -> ChainRules:
    where = f"chains.{code}"
    if not isinstance(table, Mapping):
        raise UsageError(f"policy: {where} must be a table")
    _only(table, _CHAIN_KEYS, where)
    assets = table.get("assets", {})
    if not isinstance(assets, Mapping):
        raise UsageError(f"policy: {where}.assets must be a table")
    parsed_assets: dict[str, AssetRules] = {}
    for name, asset_table in assets.items():
        key = _asset_key(str(name))
        if key in parsed_assets:
            raise UsageError(f"policy: {where}.assets names {name!r} twice")
        parsed_assets[key] = _asset_rules(f"{where}.assets.{key}", asset_table)
    allow = table.get("allow_destinations")
    return ChainRules(
        allowed_types=_types(table.get("allowed_types"), f"{where}.allowed_types"),
        allow_unknown=_bool(table, "allow_unknown", None, where),
        allow_destinations=None if allow is None else _addresses(allow, f"{where}.allow_destinations"),
        deny_destinations=_addresses(table.get("deny_destinations", []), f"{where}.deny_destinations"),
        unlisted_assets=_choice(table, "unlisted_assets", ("allow", "deny"), "allow", where),
        daily_count=_amount(table.get("daily_count"), f"{where}.daily_count"),
        assets=parsed_assets,
    )


def _asset_rules(where: str, table: object) -> AssetRules:
    if not isinstance(table, Mapping):
        raise UsageError(f"policy: {where} must be a table")
    _only(table, _ASSET_KEYS, where)
    return AssetRules(
        max_per_tx=_amount(table.get("max_per_tx"), f"{where}.max_per_tx"),
        daily_amount=_amount(table.get("daily_amount"), f"{where}.daily_amount"),
    )


def _only(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in table if key not in allowed)
    if unknown:
        raise UsageError(f"policy: {where} has an unknown key {unknown[0][:40]!r}")


def _bool(table: Mapping[str, Any], key: str, default: bool | None, where: str) -> Any:
    value = table.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise UsageError(f"policy: {where}.{key} must be true or false")
    return value


def _choice(table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise UsageError(f"policy: {where}.{key} must be one of {', '.join(choices)}")
    return str(value)


def _types(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"policy: {where} must be a list of transaction types")
    unknown = sorted(set(value) - KNOWN_TYPES)
    if unknown:
        raise UsageError(
            f"policy: {where} names an unknown type {unknown[0][:40]!r} ({', '.join(sorted(KNOWN_TYPES))})"
        )
    return frozenset(value)


def _addresses(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"policy: {where} must be a list of addresses")
    return tuple(dict.fromkeys(canonical_address(v) for v in value))


def _amount(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise UsageError(f"policy: {where} must be a whole number of base units (a string for large amounts)")
    return value


def _chain_json(rules: ChainRules) -> dict[str, Any]:
    return {
        "allowed_types": None if rules.allowed_types is None else sorted(rules.allowed_types),
        "allow_unknown": rules.allow_unknown,
        "allow_destinations": None if rules.allow_destinations is None else list(rules.allow_destinations),
        "deny_destinations": list(rules.deny_destinations),
        "unlisted_assets": rules.unlisted_assets,
        "daily_count": rules.daily_count,
        "assets": {
            name: {"max_per_tx": _text(a.max_per_tx), "daily_amount": _text(a.daily_amount)}
            for name, a in sorted(rules.assets.items())
        },
    }


def _text(amount: int | None) -> str | None:
    return None if amount is None else str(amount)


def _one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


# -- the daemon's handle -------------------------------------------------------------------------------------------


def wallet_of(pending: PendingTransaction) -> str:
    """The wallet a pending transaction spends from, for the 24-hour limits: its signatureIds."""
    ids = list(pending.hashes) or [ref.id for ref in pending.signatures]
    return "+".join(sorted(ids)) or f"pending:{pending.id}"


class LocalPolicy:
    """The policy in force for a daemon: ``check`` before asking anyone, ``record`` once signed, ``reload`` when the
    operator asks (audit its old and new hash). Thread-safe."""

    def __init__(self, path: str | Path, ledger: VelocityLedger | None = None) -> None:
        self.path = Path(path)
        self.ledger = ledger
        self._policy = Policy.load(self.path)
        self._lock = threading.Lock()

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def sha256(self) -> str:
        return self._policy.sha256

    def check(self, pending: PendingTransaction, intent: Intent, now: float | None = None) -> Decision:
        return self.evaluate(pending, intent, now).decision()

    def evaluate(self, pending: PendingTransaction, intent: Intent, now: float | None = None) -> PolicyDecision:
        return self._policy.evaluate(intent, wallet_of(pending), self.ledger, now)

    def record(self, pending: PendingTransaction, intent: Intent, now: float | None = None) -> None:
        """Count a signed transaction against its wallet's 24-hour limits (once per pending id)."""
        if self.ledger is not None:
            amounts = {_asset_key(asset): amount for asset, amount in intent.totals().items()}
            self.ledger.record(pending.id, wallet_of(pending), intent.chain.upper(), amounts, now)

    def allows_unknown(self, chain: str) -> bool:
        return self._policy.allows_unknown(chain)

    def reload(self) -> tuple[str, str]:
        """Read the file again; (old sha256, new sha256). A bad file raises UsageError and the old policy stays."""
        with self._lock:
            fresh = Policy.load(self.path)
            old, self._policy = self._policy.sha256, fresh
            return old, fresh.sha256


__all__ = ["ChainRules", "LocalPolicy", "Policy", "PolicyDecision", "canonical_address", "wallet_of"]
