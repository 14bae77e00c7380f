"""The `ha` overlay: three daemon replicas on a shared PostgreSQL store, rendered like the other overlays (the
Kustomize subset of test_ops_k8s, checked against `kubectl kustomize` and the Kubernetes schema where available)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.ops.test_ops_k8s import K8S, SCHEMA_VERSIONS, by_id, kms_container, render

HA = K8S / "overlays" / "ha"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    return by_id(render(HA))


def test_three_replicas_on_different_nodes_rolled_one_at_a_time(objects: dict) -> None:
    spec = objects[("Deployment", "kms")]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate" and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    budget = objects[("PodDisruptionBudget", "kms")]["spec"]
    assert budget == {"selector": spec["selector"], "minAvailable": 2}


def test_the_store_is_the_database_from_a_secret_with_no_volume_and_no_password_in_config(objects: dict) -> None:
    deployment = objects[("Deployment", "kms")]
    pod = deployment["spec"]["template"]["spec"]
    container = kms_container(deployment)
    assert "--path" not in container["args"] and "--store" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TATUM_KMS_STORE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "kms-database", "key": "url"}
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    config = objects[("ConfigMap", "kms-backend")]["data"]
    assert config["TATUM_KMS_STORE_PASSWORD_FILE"].startswith("/run/secrets/kms-database/")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    for setting in ("TATUM_KMS_STORE_PASSWORD_FILE", "TATUM_KMS_PASSWORD_FILE"):
        directory = config[setting].rsplit("/", 1)[0]
        assert secrets[mounts[directory]]["defaultMode"] == 0o440  # the env backend refuses a world-readable file
    assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in config)


def test_the_database_port_is_reachable_and_readiness_is_probed(objects: dict) -> None:
    egress = objects[("NetworkPolicy", "kms")]["spec"]["egress"]
    assert {"protocol": "TCP", "port": 5432} in [p for rule in egress for p in rule.get("ports", [])]
    container = kms_container(objects[("Deployment", "kms")])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_kubectl_and_the_schema_agree(objects: dict) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        done = subprocess.run([kubectl, "kustomize", str(HA)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert by_id([d for d in yaml.safe_load_all(done.stdout) if d]) == objects
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for obj in objects.values():
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
