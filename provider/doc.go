// Package provider is the request path: it serves Swarm's secretprovider
// interface, turning the labels of a driver secret into a validated plan,
// reading Vault with a token minted for the task, and answering the engine
// with the value or with one sentence saying what to fix.
//
// A request reads forward through the files:
//
//   - server.go: the plugin socket and the engine's JSON (Server, Listen).
//   - provider.go: GetSecret, the one place where an error becomes
//     Response.Err, and the one log entry per request outcome.
//   - plan.go: the secret's labels to a Plan (pure parsing).
//   - policy.go: POLICY_TEMPLATE to the task's policies; ownpolicies.go
//     refuses a policy the plugin's own token holds.
//   - track.go: the re-fetch guard and the record of what was issued (the
//     Tracker interface, implemented by package lifecycle).
//   - token.go: minting task, read and vault.type=token tokens.
//   - kv.go: KV v1/v2 reads (through internal/vaultkv); reuse.go keeps the
//     values of vault.reuse=true secrets.
//   - format.go: rendering a value; wrap.go: response-wrapping at the
//     source.
//   - text.go: keeping label text in errors short and on one line;
//     outcome.go: the outcome of each request, for metrics.
//
// verify.go answers swarmvault check --vault, and version.go tells the
// rotator the current version of a secret. Nothing here logs a value or a
// token.
package provider
