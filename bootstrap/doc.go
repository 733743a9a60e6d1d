// Package bootstrap owns the plugin's secret zero for VAULT_AUTH_METHOD=helper.
// A managed plugin cannot be given swarm secrets of its own, so an operator
// runs a small helper service (global, on the managers) that holds the
// bootstrap credential as an ordinary swarm secret. At each login the
// plugin finds the helper's running task on its own node, reads
// /run/secrets/<HELPER_SECRET> from that container (through package swarm,
// which makes every Docker API call), checks and unwraps what it read, and
// logs in with it: a Vault token or a wrapped one, or, with
// VAULT_ROLE_ID_FILE set, an AppRole secret-id, wrapped or not.
//
// The login is a Vault api.AuthMethod that vaultauth's Manager runs like
// any other method; the Vault calls are vaultauth's primitives.
package bootstrap
