#!/usr/bin/env bash
# Azure side of ops/k8s/overlays/azure: a user-assigned managed identity, federated with the service account kms/kms
# of your AKS cluster (workload identity), holding "Key Vault Secrets User" on the ONE password secret only (a scope
# of a single secret needs the vault's Azure RBAC permission model). Fill in the variables, then run it.
set -euo pipefail

: "${RESOURCE_GROUP:?the resource group of the identity and the vault}"
: "${AKS_CLUSTER:?the AKS cluster name}"
: "${KEY_VAULT:?the Key Vault name}"
SECRET_NAME="${SECRET_NAME:-kms-store-password}"
IDENTITY="${IDENTITY:-kms-store-password-reader}"

az identity create --resource-group "$RESOURCE_GROUP" --name "$IDENTITY" --output none
CLIENT_ID="$(az identity show --resource-group "$RESOURCE_GROUP" --name "$IDENTITY" --query clientId --output tsv)"
PRINCIPAL_ID="$(az identity show --resource-group "$RESOURCE_GROUP" --name "$IDENTITY" --query principalId --output tsv)"
ISSUER="$(az aks show --resource-group "$RESOURCE_GROUP" --name "$AKS_CLUSTER" --query oidcIssuerProfile.issuerUrl --output tsv)"

az identity federated-credential create --resource-group "$RESOURCE_GROUP" --identity-name "$IDENTITY" \
    --name kms --issuer "$ISSUER" --subject system:serviceaccount:kms:kms --audiences api://AzureADTokenExchange \
    --output none

VAULT_ID="$(az keyvault show --resource-group "$RESOURCE_GROUP" --name "$KEY_VAULT" --query id --output tsv)"
az role assignment create --role "Key Vault Secrets User" \
    --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
    --scope "$VAULT_ID/secrets/$SECRET_NAME" --output none

# A vault on the older access-policy model cannot scope to one secret: the narrowest there is "get" on secrets,
#   az keyvault set-policy --name "$KEY_VAULT" --object-id "$PRINCIPAL_ID" --secret-permissions get
# which then covers every secret in that vault; keep the password in a vault of its own.

echo "Put this client ID into ops/k8s/overlays/azure/serviceaccount-workload-identity.yaml: $CLIENT_ID"
