"""DaemonMetrics: every family exported, values recorded, labels that cannot carry identifiers or secrets."""

from __future__ import annotations

import inspect

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kms.metrics import METRIC_NAMES, OTHER, DaemonMetrics, NullMetrics

SIGNATURE_ID = "2f6e0c8a-1b2c-4d5e-8f90-123456789abc"
PRIVATE_KEY = "0x" + "4c" * 32


def samples(metrics: DaemonMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_metric_family_is_exported_even_before_any_event() -> None:
    text = generate_latest(DaemonMetrics().registry).decode()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert "process_resident_memory_bytes" in text


def test_events_are_counted_per_chain_and_kind() -> None:
    m = DaemonMetrics(CollectorRegistry())
    m.cycle_started()
    m.cycle_started()
    m.observe_cycle(0.3)
    m.pending_seen("eth", 3)
    m.pending_seen("BTC", 0)
    m.signed("ETH")
    m.broadcast("ETH")
    m.four_eye_rejected("BTC")
    m.error("tatum_api", "ETH")
    m.error("Store")
    m.set_wallet_counts({"ETH": 4, "BTC": 1})
    m.set_wallet_counts({"ETH": 5})
    m.set_sealed(True)
    s = samples(m)
    assert s[("kms_cycles_total", ())] == 2
    assert s[("kms_pending_seen_total", (("chain", "ETH"),))] == 3
    assert ("kms_pending_seen_total", (("chain", "BTC"),)) not in s
    assert s[("kms_signed_total", (("chain", "ETH"),))] == 1
    assert s[("kms_broadcast_total", (("chain", "ETH"),))] == 1
    assert s[("kms_four_eye_rejections_total", (("chain", "BTC"),))] == 1
    assert s[("kms_errors_total", (("chain", "ETH"), ("kind", "tatum_api")))] == 1
    assert s[("kms_errors_total", (("chain", "none"), ("kind", "store")))] == 1
    assert s[("kms_cycle_duration_seconds_count", ())] == 1
    assert s[("kms_cycle_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert s[("kms_cycle_duration_seconds_bucket", (("le", "0.25"),))] == 0
    assert s[("kms_last_cycle_timestamp_seconds", ())] > 0
    assert s[("kms_wallets", (("chain", "ETH"),))] == 5
    assert s[("kms_wallets", (("chain", "BTC"),))] == 0, "a chain that left the store drops to 0"
    assert s[("kms_sealed", ())] == 1
    assert s[("kms_up", ())] == 1
    m.set_sealed(False)
    m.set_up(False)
    s = samples(m)
    assert (s[("kms_sealed", ())], s[("kms_up", ())]) == (0, 0)


def test_identifiers_and_secrets_never_become_label_values() -> None:
    m = DaemonMetrics()
    for hostile in (SIGNATURE_ID, PRIVATE_KEY, "4c" * 32, "abandon abandon about", "ETH\n# HELP x", ""):
        m.signed(hostile)
        m.error(hostile, hostile)
        m.error("signing", hostile)
    m.set_wallet_counts({SIGNATURE_ID: 3})
    text = generate_latest(m.registry).decode()
    assert SIGNATURE_ID not in text and "4c4c4c" not in text and "abandon" not in text
    assert f'kms_signed_total{{chain="{OTHER}"}}' in text
    assert 'kms_errors_total{chain="other",kind="other"}' in text


def test_label_values_are_capped_in_number() -> None:
    m = DaemonMetrics()
    for i in range(200):
        m.signed(f"C{i}")
    chains = {labels for (name, labels) in samples(m) if name == "kms_signed_total"}
    assert len(chains) <= 65
    assert (("chain", OTHER),) in chains


def test_null_metrics_has_every_method_and_does_nothing() -> None:
    public = {n for n, v in inspect.getmembers(DaemonMetrics, inspect.isfunction) if not n.startswith("_")}
    null = NullMetrics()
    for name in public:
        params = list(inspect.signature(getattr(DaemonMetrics, name)).parameters)
        assert params == list(inspect.signature(getattr(NullMetrics, name)).parameters), name
    null.cycle_started()
    null.observe_cycle(1.0)
    null.pending_seen("ETH", 2)
    null.signed("ETH")
    null.broadcast("ETH")
    null.four_eye_rejected("ETH")
    null.error("x", "ETH")
    null.set_wallet_counts({"ETH": 1})
    null.set_sealed(True)
    null.set_up(True)
    assert null.registry is None


def test_two_instances_do_not_collide() -> None:
    a, b = DaemonMetrics(), DaemonMetrics()
    a.signed("ETH")
    assert ("kms_signed_total", (("chain", "ETH"),)) not in samples(b)
