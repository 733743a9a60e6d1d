// Package vaultauth owns the plugin's own Vault identity: the credentials it
// starts with and the login that turns them into the token on its Vault
// client. Each auth method implements Vault's api.AuthMethod, one file a
// method (token.go, approle.go, cert.go; the helper service's is package
// bootstrap's), chosen by New from VAULT_AUTH_METHOD. manager.go holds the
// Manager, the token's one owner: it logs in, renews, logs in again when
// Vault refuses the token, and revokes it at stop. common.go has the
// primitives the methods share (reading a credential file, unwrapping
// with a check of where the wrapped value was made, the AppRole login);
// errors.go tells a login that got no answer from Vault (unreachable, or
// its TLS certificate not trusted) from one Vault refused.
package vaultauth
