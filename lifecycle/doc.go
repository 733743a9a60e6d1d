// Package lifecycle is the leader side: it gives a task's credentials the
// task's life, and rolls the services of rotating secrets.
//
// The engine calls the plugin only when a task is assigned, so the plugin
// learns the rest from the Docker API of its own manager (package swarm).
// It records what it issued — token accessors and lease IDs, never a token
// or value — in Vault under STATE_PATH (Store), so that whichever manager
// leads next can carry on. The request path tells it what it issued
// through provider.Tracker (Tracker).
//
// On the manager that leads, one Watcher runs a term: the Loop renews the
// credentials of running tasks and revokes those of ended ones, and the
// Rotator rolls the services that use a vault.rotate secret whose value
// changed. Both roll services through one Rollouts guard. They depend on
// small interfaces defined here (Leadership, TaskLister, Credentials,
// Records, Forcer), so that they are tested with fakes and a fake clock.
//
// A round of the Loop goes through leader.go (the term), loop.go (Run,
// Round), tracker.go (what is held, read from STATE_PATH by state.go),
// then back in loop.go for each credential: renewed or revoked through
// vault.go, its record deleted through state.go, and the services whose
// credentials near their max TTL rolled through roll.go. A Rotator round
// goes through rotate.go, provider's version.go, unversioned.go (KV v1
// and static reads, with hashes kept by state.go) and roll.go. Each line
// they log carries component=lifecycle (the Loop, the Tracker, the
// Watcher) or component=rotation (the Rotator and rollouts).
package lifecycle
