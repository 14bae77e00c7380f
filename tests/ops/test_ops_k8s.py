"""The Kubernetes manifests under ops/k8s: every overlay renders to valid, locked-down objects.

The overlays are rendered by a small Kustomize subset written here (resources, namespace, strategic-merge and
JSON 6902 patches, patch targets), so the suite runs where no kustomize binary exists; where `kubectl` is installed,
its own `kubectl kustomize` output must equal ours, which keeps the subset honest. Where kubernetes-validate is
installed, every object is also checked against the Kubernetes OpenAPI schema in strict mode (no unknown fields: a
misspelt `readOnlyRootFileSystem` would otherwise be a silently ignored setting).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "ops" / "k8s"
OVERLAYS = ("aws", "azure", "vault")
NAMESPACE = "kms"
METRICS_PORT = 9464
STORE_MOUNT = "/var/lib/kms"
POD_LABELS = {"app.kubernetes.io/name": "kms"}
DAEMON_LABELS = {"app.kubernetes.io/name": "kms", "app.kubernetes.io/component": "daemon"}
# Kubernetes versions the manifests must validate against: the oldest with ReadWriteOncePod GA, and a current one.
SCHEMA_VERSIONS = ("1.29.0", "1.33.0")

Obj = dict[str, Any]

# ------------------------------------------------------------------------------------------- Kustomize subset ---

# Strategic-merge keys of the list fields our patches touch (from the Kubernetes API's patchMergeKey markers).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
_KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "patches"}


class UnsupportedKustomization(Exception):
    pass


def _load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _strategic_merge(target: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            raise UnsupportedKustomization(f"patch directive {key}")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _strategic_merge(target[key], value)
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(target.get(key), list):
            target[key] = _merge_keyed_list(target[key], value, _MERGE_KEYS[key])
        else:
            target[key] = copy.deepcopy(value)


def _merge_keyed_list(base: list[Obj], patch: list[Obj], merge_key: str) -> list[Obj]:
    # As kustomize (kyaml) orders it: the patch's items first, in patch order, merged into their base item where one
    # has the same key; then the remaining base items in base order.
    by_key = {item[merge_key]: item for item in base}
    merged: list[Obj] = []
    for item in patch:
        if item[merge_key] in by_key:
            combined = copy.deepcopy(by_key.pop(item[merge_key]))
            _strategic_merge(combined, item)
            merged.append(combined)
        else:
            merged.append(copy.deepcopy(item))
    return merged + [item for item in base if item[merge_key] in by_key]


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json6902(target: Obj, operations: list[Obj]) -> None:
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = target
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        elif op["op"] == "replace":
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise UnsupportedKustomization(f"JSON patch op {op['op']}")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _matches(obj: Obj, target: Obj) -> bool:
    unsupported = set(target) - {"group", "version", "kind", "name"}
    if unsupported:
        raise UnsupportedKustomization(f"patch target fields {sorted(unsupported)}")
    api_version = obj["apiVersion"]
    return (
        target.get("kind", obj["kind"]) == obj["kind"]
        and target.get("name", obj["metadata"]["name"]) == obj["metadata"]["name"]
        and target.get("group", _group(api_version)) == _group(api_version)
        and target.get("version", api_version.rpartition("/")[2]) == api_version.rpartition("/")[2]
    )


def _apply_patch(objects: list[Obj], entry: Obj, directory: Path) -> None:
    if set(entry) - {"path", "target"}:
        raise UnsupportedKustomization(f"patch fields {sorted(entry)}")
    docs = yaml.safe_load((directory / entry["path"]).read_text())
    if "target" in entry:
        targets = [obj for obj in objects if _matches(obj, entry["target"])]
    else:
        # A strategic-merge patch without a target names its object itself.
        ident = {"kind": docs["kind"], "name": docs["metadata"]["name"]}
        targets = [obj for obj in objects if _matches(obj, ident)]
    assert targets, f"patch {entry['path']} in {directory} matches nothing"
    for obj in targets:
        if isinstance(docs, list):
            _json6902(obj, docs)
        else:
            # With a target, the patch's own name does not matter: it applies to every object the target selects.
            patch = copy.deepcopy(docs)
            patch.get("metadata", {}).pop("name", None)
            for key in ("apiVersion", "kind"):
                patch.pop(key, None)
            _strategic_merge(obj, patch)


def render(directory: Path) -> list[Obj]:
    """The objects `kubectl kustomize DIRECTORY` produces, for the subset of Kustomize these manifests use."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(spec) - _KUSTOMIZATION_FIELDS
    if unsupported:
        raise UnsupportedKustomization(f"kustomization fields {sorted(unsupported)} in {directory}")
    objects: list[Obj] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else _load_all(path)
    for entry in spec.get("patches", []):
        _apply_patch(objects, entry, directory)
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def by_id(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    keyed = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(keyed) == len(objects), "two objects share a kind and name"
    return keyed


# ------------------------------------------------------------------------------------------------- helpers ---


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, dict[tuple[str, str], Obj]]:
    return request.param, by_id(render(K8S / "overlays" / request.param))


def deployments(objects: dict[tuple[str, str], Obj]) -> list[Obj]:
    return [obj for (kind, _), obj in objects.items() if kind == "Deployment"]


def kms_container(deployment: Obj) -> Obj:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "kms"]
    return container


def env_names(container: Obj) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


def config_data(objects: dict[tuple[str, str], Obj], container: Obj) -> dict[str, str]:
    data: dict[str, str] = {}
    for source in container.get("envFrom", []):
        data.update(objects[("ConfigMap", source["configMapRef"]["name"])].get("data", {}))
    return data


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def all_manifest_files() -> Iterator[Path]:
    yield from sorted(K8S.rglob("*.yaml"))


# ------------------------------------------------------------------------------------------------ renderer ---


def test_every_manifest_file_parses_and_every_object_is_named() -> None:
    files = list(all_manifest_files())
    assert len(files) >= 20
    for path in files:
        docs = yaml.safe_load_all(path.read_text())
        for doc in docs:
            assert doc is not None, f"empty document in {path}"
            if isinstance(doc, list):  # a JSON 6902 patch
                assert all({"op", "path"} <= set(op) for op in doc), path
                continue
            assert doc.get("apiVersion") and doc.get("kind"), path
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), path


def test_renderer_applies_strategic_merge_as_kustomize_orders_it() -> None:
    base = {"spec": {"volumes": [{"name": "a"}, {"name": "b", "x": 1}], "keep": True}}
    _strategic_merge(base, {"spec": {"volumes": [{"name": "c"}, {"name": "b", "y": 2}]}})
    assert base == {"spec": {"volumes": [{"name": "c"}, {"name": "b", "x": 1, "y": 2}, {"name": "a"}], "keep": True}}


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(UnsupportedKustomization):
        render(tmp_path)


@pytest.mark.parametrize("name", OVERLAYS)
def test_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python renderer alone checks the overlays")
    version = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60, check=False
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    major = re.match(r"v(\d+)\.", kustomize)
    if major is None or int(major.group(1)) < 4:
        # Older kubectl builds (Debian's kubernetes-client 1.20: kustomize v2) predate the `patches` field.
        pytest.skip(f"kubectl's built-in kustomize ({kustomize or 'unknown'}) is older than v4")
    run = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    theirs = by_id([doc for doc in yaml.safe_load_all(run.stdout) if doc])
    ours = by_id(render(K8S / "overlays" / name))
    assert theirs == ours


def test_objects_validate_against_the_kubernetes_schema_strictly(
    overlay: tuple[str, dict[tuple[str, str], Obj]],
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    _, objects = overlay
    setup = [doc for path in sorted((K8S / "setup").glob("*.yaml")) for doc in _load_all(path)]
    for obj in [*objects.values(), *setup]:
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_schema_validation_catches_a_misspelt_hardening_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    deployment = by_id(render(K8S / "overlays" / "aws"))[("Deployment", "kms")]
    broken = copy.deepcopy(deployment)
    context = kms_container(broken)["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------------------------------------- the objects ---


def test_overlay_has_the_expected_objects_in_one_namespace(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    assert set(objects) == {
        ("ServiceAccount", "kms"),
        ("ConfigMap", "kms-config"),
        ("ConfigMap", "kms-backend"),
        ("Deployment", "kms"),
        ("Deployment", "kms-admin"),
        ("Service", "kms-metrics"),
        ("NetworkPolicy", "kms"),
        ("PodDisruptionBudget", "kms"),
    }
    assert {obj["metadata"]["namespace"] for obj in objects.values()} == {NAMESPACE}
    # The store and the namespace live outside the kustomizations, so `kubectl delete -k` cannot remove them.
    assert not {kind for kind, _ in objects} & {"PersistentVolumeClaim", "Namespace", "Secret"}


def test_single_daemon_with_recreate(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    daemon = objects[("Deployment", "kms")]
    assert daemon["spec"]["replicas"] == 1
    assert daemon["spec"]["strategy"] == {"type": "Recreate"}
    admin = objects[("Deployment", "kms-admin")]
    assert admin["spec"]["replicas"] == 0
    assert admin["spec"]["strategy"] == {"type": "Recreate"}
    text = (K8S / "base" / "deployment.yaml").read_text()
    assert "race" in text and "Recreate" in text, "the reason for one replica and Recreate must stay written down"


def test_every_pod_is_locked_down(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    for deployment in deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "kms"
        assert pod["enableServiceLinks"] is False
        assert not {"hostNetwork", "hostPID", "hostIPC"} & {key for key, value in pod.items() if value}
        pod_context = pod["securityContext"]
        assert pod_context["runAsNonRoot"] is True
        assert pod_context["runAsUser"] == pod_context["runAsGroup"] == pod_context["fsGroup"] == 10001
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert [c["name"] for c in pod["containers"]] == ["kms"]
        assert "initContainers" not in pod
        container = kms_container(deployment)
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
        assert not container["image"].endswith(":latest") and ":" in container["image"]


def test_store_on_the_pvc_and_temp_in_memory(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    for deployment in deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in kms_container(deployment)["volumeMounts"]}
        assert volumes[mounts[STORE_MOUNT]]["persistentVolumeClaim"] == {"claimName": "kms-store"}
        assert volumes[mounts["/tmp"]]["emptyDir"]["medium"] == "Memory"
        assert {"name": "TMPDIR", "value": "/tmp"} in kms_container(deployment)["env"]
        assert not any("hostPath" in volume for volume in volumes.values())
    pvc = _load_all(K8S / "setup" / "pvc.yaml")[0]
    assert pvc["metadata"] == {**pvc["metadata"], "name": "kms-store", "namespace": NAMESPACE}
    assert pvc["spec"]["accessModes"] == ["ReadWriteOncePod"]


def test_daemon_arguments_and_probes(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    name, objects = overlay
    container = kms_container(objects[("Deployment", "kms")])
    args = container["args"]
    assert "command" not in container  # the image's ENTRYPOINT ["kms"]
    assert args[0] == "daemon"
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--backend"] == name and args.count("--backend") == 1
    assert pairs["--path"] == f"{STORE_MOUNT}/wallet.dat"
    assert pairs["--audit-log"].startswith(STORE_MOUNT + "/")
    assert pairs["--log-format"] == "json"
    assert pairs["--metrics-port"] == str(METRICS_PORT)
    assert pairs["--externalUrl"] == "$(KMS_EXTERNAL_URL)"
    assert "--apiKey" not in args and "--api-key" not in args
    # Every $(VAR) in the arguments is defined, or Kubernetes would pass it through literally.
    data = config_data(objects, container)
    for arg in args:
        if arg.startswith("$("):
            assert arg[2:-1] in data, arg
    assert data["KMS_EXTERNAL_URL"].startswith("https://")
    assert container["ports"] == [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}


def test_api_key_from_a_secret_and_no_secret_in_plain_config(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    forbidden = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "TATUM_KMS_AWS_ACCESS_KEY_ID",
        "TATUM_KMS_AWS_SECRET_ACCESS_KEY",
        "TATUM_KMS_AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "TATUM_KMS_PASSWORD",
        "TATUM_KMS_VAULT_TOKEN",
        "VAULT_TOKEN",
        "TATUM_KMS_VAULT_SECRET_ID",
        "TATUM_KMS_VGS_PASSWORD",
    }
    for deployment in deployments(objects):
        container = kms_container(deployment)
        plain = {item["name"] for item in container["env"] if "value" in item} | set(config_data(objects, container))
        assert not plain & (forbidden | {"TATUM_API_KEY", "TATUM_KMS_AUDIT_HMAC_KEY"})
        assert not env_names(container) & forbidden
    daemon = kms_container(objects[("Deployment", "kms")])
    (api_key,) = [item for item in daemon["env"] if item["name"] == "TATUM_API_KEY"]
    assert api_key["valueFrom"]["secretKeyRef"] == {"name": "kms-secrets", "key": "TATUM_API_KEY"}


def test_backend_identity_wiring(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    name, objects = overlay
    account = objects[("ServiceAccount", "kms")]
    assert account["automountServiceAccountToken"] is False
    annotations = account["metadata"].get("annotations", {})
    pods = [deployment["spec"]["template"] for deployment in deployments(objects)]
    backend = objects[("ConfigMap", "kms-backend")]["data"]
    if name == "aws":
        assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
        assert {"TATUM_KMS_AWS_REGION", "TATUM_KMS_AWS_SECRET_NAME"} <= set(backend)
    else:
        assert not any(key.startswith("eks.amazonaws.com/") for key in annotations)
    if name == "azure":
        assert annotations["azure.workload.identity/client-id"]
        assert all(pod["metadata"]["labels"]["azure.workload.identity/use"] == "true" for pod in pods)
        assert {"TATUM_KMS_AZURE_VAULTURL", "TATUM_KMS_AZURE_SECRETNAME"} <= set(backend)
    else:
        assert not any("azure.workload.identity/use" in pod["metadata"]["labels"] for pod in pods)
    if name == "vault":
        assert {"TATUM_KMS_VAULT_ADDR", "TATUM_KMS_VAULT_K8S_ROLE", "TATUM_KMS_VAULT_PATH"} <= set(backend)
        for deployment in deployments(objects):
            # A projected token for Vault's audience only, not the Kubernetes API token.
            volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
            (source,) = volumes["vault-token"]["projected"]["sources"]
            token = source["serviceAccountToken"]
            assert token["audience"] == "vault" and token["expirationSeconds"] <= 3600
            mounts = {m["name"]: m for m in kms_container(deployment)["volumeMounts"]}
            assert mounts["vault-token"]["readOnly"] is True
            assert backend["TATUM_KMS_VAULT_K8S_JWT_PATH"] == f"{mounts['vault-token']['mountPath']}/{token['path']}"
    else:
        assert not any(key.startswith("TATUM_KMS_VAULT") for key in backend)


def test_network_policy_denies_all_but_metrics_in_and_dns_https_out(
    overlay: tuple[str, dict[tuple[str, str], Obj]],
) -> None:
    name, objects = overlay
    policy = objects[("NetworkPolicy", "kms")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"] == {"matchLabels": POD_LABELS}
    for deployment in deployments(objects):
        assert selects(POD_LABELS, deployment["spec"]["template"]["metadata"]["labels"])
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": METRICS_PORT}]
    allowed = set()
    for rule in policy["egress"]:
        assert "to" not in rule or all("ipBlock" in peer for peer in rule["to"])
        allowed |= {(port["protocol"], port["port"]) for port in rule["ports"]}
    expected = {("UDP", 53), ("TCP", 53), ("TCP", 443)} | ({("TCP", 8200)} if name == "vault" else set())
    expected |= {("TCP", 80)} if name == "aws" else set()
    assert allowed == expected


def test_eks_pod_identity_agent_is_reachable_and_nothing_else_on_port_80(
    overlay: tuple[str, dict[tuple[str, str], Obj]],
) -> None:
    name, objects = overlay
    egress = objects[("NetworkPolicy", "kms")]["spec"]["egress"]
    on_port_80 = [rule for rule in egress if any(port["port"] == 80 for port in rule["ports"])]
    if name != "aws":
        assert on_port_80 == []
        return
    (rule,) = on_port_80
    assert rule["ports"] == [{"protocol": "TCP", "port": 80}]
    # Only the Pod Identity Agent (IPv4 and IPv6): never the instance metadata service or anything else.
    assert rule["to"] == [{"ipBlock": {"cidr": "169.254.170.23/32"}}, {"ipBlock": {"cidr": "fd00:ec2::23/128"}}]


def test_service_and_disruption_budget_select_only_the_daemon(overlay: tuple[str, dict[tuple[str, str], Obj]]) -> None:
    _, objects = overlay
    daemon_labels = objects[("Deployment", "kms")]["spec"]["template"]["metadata"]["labels"]
    admin_labels = objects[("Deployment", "kms-admin")]["spec"]["template"]["metadata"]["labels"]
    service = objects[("Service", "kms-metrics")]["spec"]
    budget = objects[("PodDisruptionBudget", "kms")]["spec"]
    for selector in (service["selector"], budget["selector"]["matchLabels"]):
        assert selector == DAEMON_LABELS
        assert selects(selector, daemon_labels) and not selects(selector, admin_labels)
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]
    assert budget["maxUnavailable"] == 1


def test_namespace_enforces_the_restricted_pod_security_profile() -> None:
    (namespace,) = _load_all(K8S / "setup" / "namespace.yaml")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
