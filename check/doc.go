// Package check is the swarmvault check command: it reads compose files as
// docker stack deploy would and tells, before a deploy, whether each of
// their swarmvault secrets would be served. Offline it runs each secret's
// labels and each service's POLICY_TEMPLATE through the plugin's own code;
// with --vault it also asks Vault, minting tokens as the plugin would.
//
// The plugin settings it shares (pluginSettings: POLICY_TEMPLATE,
// TOKEN_ROLE, ALLOWED_TYPES, TOKEN_TTL, TOKEN_MAX_TTL, WRAP_MAX_TTL,
// VAULT_CLIENT_TIMEOUT) go through the plugin's own table,
// internal/settings.
//
// Each problem is the sentence the plugin would log for that task. Nothing
// read from Vault is printed.
package check
