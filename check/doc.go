// Package check is the swarmvault check command: it reads compose files as
// docker stack deploy would and tells, before a deploy, whether each of
// their swarmvault secrets would be served. Offline it runs each secret's
// labels and each service's POLICY_TEMPLATE through the plugin's own code;
// with --vault it also asks Vault, minting tokens as the plugin would.
//
// The plugin settings it shares (pluginSettings: POLICY_TEMPLATE,
// TOKEN_ROLE, ALLOWED_TYPES, TOKEN_TTL, TOKEN_MAX_TTL, WRAP_MAX_TTL,
// VAULT_CLIENT_TIMEOUT) go through the plugin's own table,
// internal/settings: a flag, else the environment, else the default. The
// output says each one's value and where it came from (the table's first
// line; settings in JSON), so that a stray variable of the environment
// never changes a result unseen. No token is ever shown.
//
// Each problem is the sentence the plugin would log for that task, and a
// row (one service's use of one secret) has every problem the plugin's
// decision would meet, stage by stage (run.go's use): a secret with vault.*
// labels but another driver, its labels, the service's POLICY_TEMPLATE
// (with a hint when a label it needs is among the service's container
// labels), then what the plugin decides before its first Vault call
// (vault.token.policies within the template's policies, through Verify and
// a Vault client that reaches no Vault). Nothing read from Vault is
// printed.
//
// Exit codes, highest precedence first:
//
//   - 2 (ExitError): the check could not run, and judged nothing: a
//     compose file that does not load (with a hint when its version: is
//     older than 3.8, the first with driver: secrets), a bad flag or
//     setting, or with --vault no VAULT_ADDR, no token, Vault out of reach,
//     or a token without the plugin's rights.
//   - 1 (ExitProblem): a row has a problem.
//   - 3 (ExitUnchecked): no problem, but a row the check could not judge:
//     a POLICY_TEMPLATE whose policies depend on a service, task or node ID
//     (Swarm makes them at the deploy; for a global service .TaskName holds
//     the node ID); with --vault, Vault that did not answer in time or at
//     all for that row, or a fault of the check; offline, VAULT_* settings
//     of the environment the Vault API cannot read, for a secret with
//     vault.token.policies.
//   - 0 (ExitOK): every row is ok, or skipped (an external secret).
//
// A problem wins over unchecked because it is certain whatever the
// unchecked rows turn out to be: a pipeline that lets 3 pass (a template
// with .TaskID is unchecked at every run) must still stop on a 1.
package check
