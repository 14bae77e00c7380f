"""ops/policies: each backend's grant is the one read it needs, bound to the one service account the manifests use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "ops" / "policies"
OVERLAYS = REPO / "ops" / "k8s" / "overlays"
SUBJECT = "system:serviceaccount:kms:kms"  # namespace kms, service account kms, as in ops/k8s


def _statements(name: str) -> list[dict[str, object]]:
    statements = json.loads((POLICIES / name).read_text())["Statement"]
    assert isinstance(statements, list)
    return statements


def test_iam_policy_reads_one_secret_and_decrypts_only_through_secrets_manager() -> None:
    read, decrypt = _statements("aws-iam-policy.json")
    assert read == {**read, "Effect": "Allow", "Action": "secretsmanager:GetSecretValue"}
    resource = str(read["Resource"])
    assert re.fullmatch(r"arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-\?{6}", resource)
    assert decrypt["Action"] == "kms:Decrypt"
    assert "*" not in str(decrypt["Resource"])
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    # The secret name matches what the aws overlay asks for.
    (config,) = yaml.safe_load_all((OVERLAYS / "aws" / "backend-config.yaml").read_text())
    assert f":secret:{config['data']['TATUM_KMS_AWS_SECRET_NAME']}-" in resource


def test_irsa_trust_policy_admits_only_the_kms_service_account() -> None:
    (statement,) = _statements("aws-irsa-trust-policy.json")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]
    assert isinstance(conditions, dict) and list(conditions) == ["StringEquals"]
    claims = conditions["StringEquals"]
    assert {key.rsplit(":", 1)[1]: value for key, value in claims.items()} == {
        "sub": SUBJECT,
        "aud": "sts.amazonaws.com",
    }
    (irsa,) = yaml.safe_load_all((OVERLAYS / "aws" / "serviceaccount-irsa.yaml").read_text())
    role = irsa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.split(":")[4] == str(statement["Principal"]["Federated"]).split(":")[4]  # same account


def test_vault_policy_is_read_only_on_the_one_path_the_overlay_reads() -> None:
    text = (POLICIES / "vault-policy.hcl").read_text()
    rules = re.findall(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}', text)
    (config,) = yaml.safe_load_all((OVERLAYS / "vault" / "backend-config.yaml").read_text())
    data = config["data"]
    assert rules == [(f"{data['TATUM_KMS_VAULT_MOUNT']}/data/{data['TATUM_KMS_VAULT_PATH']}", '"read"')]


def test_vault_role_binds_the_service_account_and_the_overlays_audience() -> None:
    script = (POLICIES / "vault-setup.sh").read_text()
    assert "bound_service_account_names=kms" in script
    assert "bound_service_account_namespaces=kms" in script
    assert "audience=vault" in script
    (config,) = yaml.safe_load_all((OVERLAYS / "vault" / "backend-config.yaml").read_text())
    assert f"auth/kubernetes/role/{config['data']['TATUM_KMS_VAULT_K8S_ROLE']}" in script


def test_azure_grant_is_secrets_user_on_one_secret_for_the_federated_service_account() -> None:
    script = (POLICIES / "azure-role-assignment.sh").read_text()
    assert '--role "Key Vault Secrets User"' in script
    assert '--scope "$VAULT_ID/secrets/$SECRET_NAME"' in script
    assert f"--subject {SUBJECT}" in script


@pytest.mark.parametrize("name", ["vault-setup.sh", "azure-role-assignment.sh"])
def test_scripts_are_valid_bash_and_stop_on_errors(name: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    path = POLICIES / name
    assert "set -euo pipefail" in path.read_text()
    run = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stderr
