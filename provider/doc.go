// Package provider is the request path: it serves Swarm's secretprovider
// interface, turning the labels of a driver secret into a validated plan,
// reading Vault with a token minted for the task, and answering the engine
// with the value or with one sentence saying what to fix.
//
// A request goes through the files in this order, coming back to
// provider.go, which holds the value of each vault.type, between steps:
//
//   - server.go: the plugin socket and the engine's JSON (Server, Listen).
//   - provider.go: GetSecret, the one place where an error becomes
//     Response.Err, and the one log entry per request outcome.
//   - plan.go: the secret's labels to a Plan (pure parsing).
//   - policy.go: POLICY_TEMPLATE to the task's policies.
//   - reuse.go: a vault.reuse=true value still kept is given at once;
//     sources.go: so is the answer another secret of the task from the same
//     source was served from (one credential for several files).
//   - track.go: the re-fetch guard and the record of what was issued (the
//     Tracker interface, implemented by package lifecycle).
//   - token.go: minting task, read and vault.type=token tokens;
//     ownpolicies.go refuses a policy the plugin's own token holds.
//   - kv.go: KV v1/v2 reads (through internal/vaultkv).
//   - format.go: rendering a value; wrap.go: response-wrapping at the
//     source.
//   - text.go: keeping label text in errors short and on one line;
//     outcome.go: the outcome of each request, for metrics.
//
// singleflight.go shares one call among concurrent requests (kept values,
// the plugin's own policies), and expiring.go is the bounded map of what is
// kept a while (read tokens, a task's source answers). verify.go answers swarmvault check --vault,
// and version.go tells the rotator the current version of a secret.
// Nothing here logs a value or a token.
package provider
