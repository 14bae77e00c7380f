#!/usr/bin/env bash
# Vault side of ops/k8s/overlays/vault: the policy above, and a Kubernetes-auth role bound to the one service account
# kms/kms that accepts only tokens for the audience "vault" (the overlay's projected token). Run with a Vault token
# allowed to manage policies and auth roles; the Kubernetes auth method must already be enabled and configured
# (vault auth enable kubernetes; vault write auth/kubernetes/config kubernetes_host=...).
set -euo pipefail
cd "$(dirname "$0")"

vault policy write kms-store-password vault-policy.hcl

# Short-lived tokens: kms logs in, reads the password once and revokes its token (revoke-self, which the
# "default" policy allows; keep token_no_default_policy=false).
vault write auth/kubernetes/role/kms \
    bound_service_account_names=kms \
    bound_service_account_namespaces=kms \
    audience=vault \
    token_policies=kms-store-password \
    token_ttl=5m \
    token_max_ttl=10m

# The password itself (read with no echo; never on a command line):
#   read -rs KMS_STORE_PASSWORD && printf '%s' "$KMS_STORE_PASSWORD" | vault kv put secret/kms/store-password password=-
