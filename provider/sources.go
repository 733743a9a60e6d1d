package provider

import (
	"maps"
	"slices"
	"strconv"
	"time"
)

// The secrets of one task that name the same source (vault.type, path,
// vault.param.*, vault.version, the token's TTL and policies, vault.group)
// share one Vault call: the engine asks for them one after the other when
// it assigns the task, and the first request's answer serves the next ones,
// each of which selects its own field, format or template from it. So a
// database user's username in one file matches the password in another
// (POSTGRES_USER_FILE and POSTGRES_PASSWORD_FILE), a certificate matches
// its key, and the lifecycle renews and revokes one credential, recorded
// once, under the first secret. Never across tasks, and never for a value
// wrapped at its source: each file would need its own wrapping token.

// sourceKey is what groups a task's secrets: "" for a request that shares
// nothing (no task ID, a value wrapped at its source, a vault.reuse=true
// value, which has a cache of its own).
func sourceKey(req Request, plan Plan, policies []string) string {
	source, ok := Source(plan, policies)
	if req.TaskID == "" || !ok {
		return ""
	}
	return joinKey(req.TaskID, source)
}

// Source names the source a secret's value comes from, for the task whose
// policies are given: two secrets of one task with the same Source share
// one Vault call. ok is false for a secret that shares no call (a value
// wrapped at its source, or a vault.reuse=true value, shared among tasks
// by a cache of its own).
func Source(plan Plan, policies []string) (source string, ok bool) {
	if plan.WrapsAtSource() || plan.Reuse {
		return "", false
	}
	params := slices.Sorted(maps.Keys(plan.Params))
	for i, k := range params {
		params[i] = joinKey(k, plan.Params[k])
	}
	return joinKey(plan.Group, string(plan.Type), plan.Path, joinKey(params...), strconv.Itoa(plan.Version),
		plan.TokenTTL.String(), joinKey(plan.TokenPolicies...), strconv.FormatBool(plan.TokenPolicies != nil), joinKey(policies...)), true
}

// maxSources bounds the answers kept: a burst of task starts on many nodes
// at once keeps one per task and source.
const maxSources = 4096

// sourceCache keeps, for a short while (ttl), the answer of each task's
// sources: its data (a dynamic secret's credentials among them) stays in
// memory only, long enough for the engine to ask for the task's other
// secrets; never logged.
type sourceCache struct {
	*expiring[map[string]any]
	ttl time.Duration
}

func newSourceCache(ttl time.Duration) *sourceCache {
	return &sourceCache{expiring: newExpiring[map[string]any](maxSources), ttl: ttl}
}

// answer returns the data another secret of the task was served from.
func (c *sourceCache) answer(key string) (map[string]any, bool) {
	if key == "" {
		return nil, false
	}
	return c.get(key)
}

// keep stores the data a secret was served from, once that secret was
// delivered (its credentials tracked): only then may the task's other
// secrets use it.
func (c *sourceCache) keep(key string, data map[string]any) {
	if key != "" {
		c.put(key, data, c.ttl)
	}
}
