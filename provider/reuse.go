package provider

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultReuseCacheTTL is REUSE_CACHE_TTL's default: how long the value of
// a vault.reuse=true secret is kept once read. A scale-up asks for it once
// per task, all within the few seconds the dispatcher takes to assign them;
// five seconds turns a hundred reads into a handful. A value changed in
// Vault reaches a new task at most that much later, far within
// ROTATION_INTERVAL, and a rotation forgets it before it rolls anything.
const DefaultReuseCacheTTL = 5 * time.Second

// maxReused bounds the values kept: one per secret and policy set.
const maxReused = 256

// reuseCache serves vault.reuse=true secrets, the only values the plugin
// ever keeps: Swarm shares them among the tasks of a node anyway. Identical
// concurrent requests share one Vault read, and the rendered value is kept
// for ttl (0: not kept). Per-task values, tokens and wrapped values never
// come here: ParsePlan refuses vault.reuse for them.
type reuseCache struct {
	ttl   time.Duration
	now   func() time.Time
	group singleflight.Group

	mu     sync.Mutex
	values map[string]reused
	// gen counts forgets: a read that began before one is not kept, and
	// no request joins it after.
	gen uint64
}

type reused struct {
	labels string // labelsKey of the secret, for forget
	value  []byte
	until  time.Time
}

func newReuseCache(ttl time.Duration) *reuseCache {
	return &reuseCache{ttl: ttl, now: time.Now, values: map[string]reused{}}
}

// labelsKey is every label that shapes a secret's value (path, field,
// format, template, version, type, and the rest of vault.*), sorted, in
// one string. Each key and value is length-prefixed: a label value may
// hold any byte, so with a mere separator {vault.template: "a\x00vault.version=3"}
// and {vault.template: "a", vault.version: "3"} would share a key, and one
// secret be served the other's value.
func labelsKey(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if strings.HasPrefix(strings.TrimPrefix(k, legacyPrefix), "vault.") {
			parts = append(parts, k, labels[k])
		}
	}
	return joinKey(parts...)
}

// joinKey joins parts into one cache key that no other parts give: each
// is written as its length, a colon, and itself.
func joinKey(parts ...string) string {
	var b strings.Builder
	for _, s := range parts {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

// readThrough returns the value for labels read with policies: the one
// cached, or one read by read, which runs once for all the concurrent callers of one key, with a
// deadline of its own (timeout) so that one caller's cancelled request
// cannot fail the others.
func (c *reuseCache) readThrough(ctx context.Context, labels map[string]string, policies []string, timeout time.Duration, read func(context.Context) ([]byte, error)) ([]byte, error) {
	lk := labelsKey(labels)
	key := policyKey(policies, lk)
	v, gen, ok := c.fresh(key)
	if ok {
		return v, nil
	}
	return sharedCall(ctx, &c.group, strconv.FormatUint(gen, 10)+"\x00"+key, timeout, func(ctx context.Context) ([]byte, error) {
		v, err := read(ctx)
		if err == nil {
			c.store(key, lk, v, gen)
		}
		return v, err
	})
}

// cached returns the value kept for labels and policies, if any.
func (c *reuseCache) cached(labels map[string]string, policies []string) ([]byte, bool) {
	v, _, ok := c.fresh(reuseKey(labels, policies))
	return v, ok
}

func reuseKey(labels map[string]string, policies []string) string {
	return policyKey(policies, labelsKey(labels))
}

func policyKey(policies []string, labels string) string {
	return joinKey(joinKey(policies...), labels)
}

// fresh returns the value kept for key while it has not expired, else
// the generation a read starts in.
func (c *reuseCache) fresh(key string) ([]byte, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.values[key]
	if !ok || !c.now().Before(e.until) {
		delete(c.values, key)
		return nil, c.gen, false
	}
	return e.value, c.gen, true
}

// store keeps a value read in generation gen, unless a forget came since;
// when full, expired entries go, then the one that would expire soonest.
func (c *reuseCache) store(key, labels string, value []byte, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	now := c.now()
	makeRoom(c.values, key, maxReused, now, func(e reused) time.Time { return e.until })
	c.values[key] = reused{labels: labels, value: value, until: now.Add(c.ttl)}
}

// forget drops what is kept of the secret with labels, for every policy
// set.
func (c *reuseCache) forget(labels map[string]string) {
	lk := labelsKey(labels)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.values {
		if e.labels == lk {
			delete(c.values, k)
		}
	}
}

func (c *reuseCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}

// ForgetReused drops the kept value of the vault.reuse=true secret with
// labels, so that the next task reads Vault: rotation calls it before it
// rolls the services that use the secret.
func (p *Provider) ForgetReused(labels map[string]string) { p.reused.forget(labels) }
