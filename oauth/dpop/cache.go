package dpop

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultMemoryCacheSize bounds a MemoryReplayCache.
const DefaultMemoryCacheSize = 100000

// ErrCacheFull is returned by MemoryReplayCache.Use when every slot holds a
// proof that could still be replayed: the proof is refused (fail closed)
// rather than accepted unrecorded.
var ErrCacheFull = errors.New("dpop: replay cache is full")

// MemoryReplayCache is a bounded in-process ReplayCache. It sees only the
// proofs sent to this process: behind a load balancer with several
// replicas, a proof replayed to another replica is not detected. Use a
// shared store (the provider's storage.AssertionJTIs) there, or keep the
// window short.
type MemoryReplayCache struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]time.Time
}

// NewMemoryReplayCache returns a cache of at most max entries (0 means
// DefaultMemoryCacheSize); now nil means time.Now.
func NewMemoryReplayCache(max int, now func() time.Time) *MemoryReplayCache {
	if max <= 0 {
		max = DefaultMemoryCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{max: max, now: now, m: make(map[string]time.Time)}
}

// Use implements ReplayCache.
func (c *MemoryReplayCache) Use(_ context.Context, key string, expiresAt time.Time) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.m[key]; ok && now.Before(exp) {
		return ErrReplay
	}
	if len(c.m) >= c.max {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return ErrCacheFull
		}
	}
	c.m[key] = expiresAt
	return nil
}
