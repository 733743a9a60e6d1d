package provider

import (
	"sync"
	"time"
)

// expiring is a bounded map whose entries expire, for what the Provider
// keeps a while: read tokens (tokenCache), a task's source answers
// (sources.go). Safe for concurrent use.
type expiring[V any] struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	value V
	until time.Time
}

func newExpiring[V any](max int) *expiring[V] {
	return &expiring[V]{max: max, now: time.Now, entries: map[string]expiringEntry[V]{}}
}

// get returns the value kept under key, unless it expired.
func (c *expiring[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.until) {
		delete(c.entries, key)
		var zero V
		return zero, false
	}
	return e.value, true
}

// put keeps value for life (nothing for a life of 0). Expired entries go
// first; a full map drops the entry that would expire soonest.
func (c *expiring[V]) put(key string, value V, life time.Duration) {
	if life <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	makeRoom(c.entries, key, c.max, now, func(e expiringEntry[V]) time.Time { return e.until })
	c.entries[key] = expiringEntry[V]{value: value, until: now.Add(life)}
}

func (c *expiring[V]) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

func (c *expiring[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
