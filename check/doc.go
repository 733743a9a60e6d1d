// Package check is the swarmvault check command: it reads compose files as
// docker stack deploy would and tells, before a deploy, whether each of
// their swarmvault secrets would be served. Offline it runs each secret's
// labels and each service's POLICY_TEMPLATE through the plugin's own code;
// with --vault it also asks Vault, minting tokens as the plugin would.
//
// The plugin settings it shares (POLICY_TEMPLATE, TOKEN_ROLE, the TTLs)
// go through the plugin's own table, internal/settings.
//
// Each problem is the sentence the plugin would log for that task. Nothing
// read from Vault is printed.
package check
