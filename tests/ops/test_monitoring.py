"""ops/monitoring: the alerting rules pass `promtool check rules` and their unit tests (`promtool test rules`: every
alert fires on the series that should fire it and stays quiet otherwise), the PrometheusRule manifest carries the same
rules in a kustomize Component, every alert links a runbook entry that exists, the dashboard takes its data source as
a variable, and the metrics the alerts need are recorded by kms.metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from kms.metrics import DaemonMetrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "ops" / "monitoring"
RULES = MONITORING / "kms-alerts.rules.yaml"
RULE_TESTS = MONITORING / "tests" / "alerts.test.yaml"
DASHBOARD = MONITORING / "kms-dashboard.json"
RUNBOOK = REPO / "ops" / "README.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)

# Added by the unlock-failure work (issue 17 item 3) in its own change; the rules reference it by this exact name.
EXPECTED_ELSEWHERE = frozenset({"kms_unlock_failures_total"})
_METRIC = re.compile(r"\bkms_[a-z_]+[a-z]\b")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel.get("targets", [])]


def metric_names(exprs: list[str]) -> set[str]:
    """Metric families named in PromQL expressions (histogram series names reduced to their family)."""
    names = set()
    for expr in exprs:
        for name in _METRIC.findall(expr):
            for suffix in _HISTOGRAM_SUFFIXES:
                if name.endswith("_seconds" + suffix):
                    name = name.removesuffix(suffix)
            names.add(name)
    return names


def referenced_metrics() -> set[str]:
    return metric_names([rule["expr"] for rule in alert_rules()] + dashboard_exprs())


def exported_families(exposition: str) -> set[str]:
    """Every family in a /metrics text: TYPE lines (families without samples yet) and sample names."""
    names = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M))
    return names


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the headings of ops/README.md."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M):
        anchors.add(re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


# -- the rules ---------------------------------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    proc = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_of_every_alert_pass() -> None:
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120, cwd=MONITORING
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_a_rule_is_broken(tmp_path: Path) -> None:
    """The unit tests can fail: with one threshold moved, promtool reports the alert that no longer fires."""
    (tmp_path / "tests").mkdir()
    broken = RULES.read_text().replace("kms_sealed == 1", "kms_sealed == 2")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name)], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "KmsSealed" in proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [f"../{RULES.name}"]
    cases: dict[str, list[list[Any]]] = {}
    for group in tests["tests"]:
        for case in group["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append(case["exp_alerts"])
    for rule in alert_rules():
        outcomes = cases.get(rule["alert"], [])
        assert any(outcomes), f"{rule['alert']}: no case where it fires"
        assert any(not expected for expected in outcomes), f"{rule['alert']}: no case where it stays quiet"


def test_every_alert_is_annotated_and_links_an_existing_runbook_entry() -> None:
    anchors = runbook_anchors()
    rules = alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        url = annotations["runbook_url"]
        assert url.startswith("ops/README.md#"), url
        anchor = url.split("#", 1)[1]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"no runbook entry for {rule['alert']}"


def test_the_alerts_cover_what_must_wake_someone() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    wanted = {
        "KmsSealed": "kms_sealed",
        "KmsNoSuccessfulCycle": "kms_last_successful_cycle_timestamp_seconds",
        "KmsTatumApiUnreachable": "kms_tatum_api_reachable",
        "KmsFourEyeFailing": "four_eye_unavailable",
        "KmsSigningOrBroadcastErrors": "broadcast",
        "KmsJournalConflict": 'kind="journal"',
        "KmsJournalStuckSigned": 'state="signed"',
        "KmsAuditLogBroken": "kms_audit_log_broken",
        "KmsChainNearWalletLimit": "kms_wallet_limit",
        "KmsUnlockFailures": "kms_unlock_failures_total",
    }
    for alert, needle in wanted.items():
        assert needle in exprs[alert], alert


def test_the_prometheus_rule_manifest_carries_the_same_rules_in_a_component() -> None:
    manifest = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert kustomization["resources"] == ["prometheusrule.yaml"]


def test_kubectl_kustomize_renders_the_component_into_an_overlay(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    # kustomize takes components by relative path only: an overlay next to a copy, as in a deployment repository.
    shutil.copytree(MONITORING, tmp_path / "monitoring")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kms\n"
        "components:\n  - ../monitoring\n"
    )
    proc = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "unknown field" in proc.stderr and "components" in proc.stderr:
        pytest.skip("this kubectl's kustomize predates components")
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    assert (rendered["kind"], rendered["metadata"]["namespace"]) == ("PrometheusRule", "kms")
    assert rendered["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


# -- the dashboard -----------------------------------------------------------------------------------------------------


def test_the_dashboard_takes_its_data_source_as_a_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    names = metric_names(dashboard_exprs())
    for family in (
        "kms_cycles_total",
        "kms_cycle_duration_seconds",
        "kms_pending_seen_total",
        "kms_signed_total",
        "kms_four_eye_rejections_total",
        "kms_errors_total",
        "kms_four_eye_request_duration_seconds",
        "kms_four_eye_verdicts_total",
        "kms_tatum_request_duration_seconds",
        "kms_tatum_retries_total",
        "kms_sealed",
        "kms_journal_entries",
        "kms_wallets",
        "kms_wallet_limit",
    ):
        assert family in names, family


def test_every_metric_named_in_rules_and_dashboard_is_exported() -> None:
    """The fast check; tests/test_monitoring_prometheus.py does the same against a running daemon's /metrics."""
    from prometheus_client import generate_latest

    exported = exported_families(generate_latest(DaemonMetrics().registry).decode())
    missing = referenced_metrics() - exported
    assert missing <= EXPECTED_ELSEWHERE, sorted(missing)
    assert metric_names(["rate(kms_renamed_total[5m])"]) - exported, "the check can fail"


# -- the metrics behind them -------------------------------------------------------------------------------------------


def value(metrics: DaemonMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_tatum_api_reachability_follows_the_cycle_polls() -> None:
    m = DaemonMetrics(CollectorRegistry())
    assert value(m, "kms_last_successful_cycle_timestamp_seconds") == 0
    m.cycle_started()
    m.pending_seen("ETH", 0)  # a poll answered with nothing pending
    m.error("poll", "BTC")
    m.observe_cycle(0.1)
    assert value(m, "kms_tatum_api_reachable") == 1
    first_success = value(m, "kms_last_successful_cycle_timestamp_seconds")
    assert first_success is not None and first_success > 0
    m.cycle_started()
    m.error("poll", "ETH")
    m.error("poll", "BTC")
    m.observe_cycle(0.1)
    assert value(m, "kms_tatum_api_reachable") == 0
    assert value(m, "kms_last_successful_cycle_timestamp_seconds") == first_success
    m.cycle_started()  # no wallets: nothing to poll, nothing failed
    m.observe_cycle(0.1)
    assert value(m, "kms_tatum_api_reachable") == 1


def test_audit_journal_four_eye_and_tatum_metrics() -> None:
    m = DaemonMetrics(CollectorRegistry())
    assert value(m, "kms_audit_log_broken") == 0
    assert value(m, "kms_wallet_limit") == 25_000
    m.error("audit", "ETH")
    assert value(m, "kms_audit_log_broken") == 1
    m.audit_write_failed()
    assert value(m, "kms_audit_write_failures_total") == 1
    m.set_journal_counts({"signed": 2, "broadcast": 7, "bogus": 3})
    assert value(m, "kms_journal_entries", {"state": "signed"}) == 2
    assert value(m, "kms_journal_entries", {"state": "refused"}) == 0
    assert value(m, "kms_journal_entries", {"state": "bogus"}) is None
    m.four_eye_checked("approved", 0.02)
    m.four_eye_checked("0x" + "ab" * 32, 0.5)
    assert value(m, "kms_four_eye_verdicts_total", {"verdict": "approved"}) == 1
    assert value(m, "kms_four_eye_verdicts_total", {"verdict": "refused"}) == 0
    assert value(m, "kms_four_eye_verdicts_total", {"verdict": "other"}) == 1
    assert value(m, "kms_four_eye_request_duration_seconds_count") == 2
    m.tatum_request("pending", 0.2)
    m.tatum_retry("broadcast")
    m.tatum_retry("2f6e0c8a-1b2c-4d5e")
    assert value(m, "kms_tatum_request_duration_seconds_count", {"operation": "pending"}) == 1
    assert value(m, "kms_tatum_retries_total", {"operation": "broadcast"}) == 1
    assert value(m, "kms_tatum_retries_total", {"operation": "other"}) == 1
