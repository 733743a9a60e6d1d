package vaultkv

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cache remembers the mounts Lookup found, so that a read costs one Vault
// round trip, not two. Entries expire because an operator may upgrade a
// mount from KV v1 to v2 without restarting the plugin. It is safe for
// concurrent use, and shared by every token: a mount is the same whoever
// asks, and a token that may not use the path is refused by the read.
type Cache struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.RWMutex
	mounts map[string]cached
}

type cached struct {
	Mount
	fetched time.Time
}

// NewCache returns a Cache that keeps each mount for ttl as the clock now
// tells it (time.Now if nil).
func NewCache(ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{ttl: ttl, now: now, mounts: map[string]cached{}}
}

// Lookup is the package's Lookup, answered from the cache when a mount
// seen less than the TTL ago holds path. Only mounts found are kept.
func (c *Cache) Lookup(ctx context.Context, client *api.Client, path string) (Mount, error) {
	if m, ok := c.get(path); ok {
		return m, nil
	}
	m, err := Lookup(ctx, client, path)
	if err != nil {
		return Mount{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mounts[m.Path] = cached{Mount: m, fetched: c.now()}
	return m, nil
}

// get returns the longest cached mount that path lives on.
func (c *Cache) get(path string) (Mount, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best Mount
	now := c.now()
	for p, m := range c.mounts {
		if strings.HasPrefix(path+"/", p) && len(p) > len(best.Path) && now.Sub(m.fetched) < c.ttl {
			best = m.Mount
		}
	}
	return best, best.Path != ""
}
