# Vault policy "kms-store-password": read the one KV v2 secret that holds the store password. No list, no metadata,
# no write, nothing else. (For a KV v1 mount the path is "secret/kms/store-password".)
path "secret/data/kms/store-password" {
  capabilities = ["read"]
}
