package resource

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// introspectionCache remembers introspection answers for min(token exp, ttl),
// keyed by the token's SHA-256 so no token is held in memory as a key.
// Concurrent misses for one token make one call.
type introspectionCache struct {
	ttl time.Duration // ≤ 0: no caching (calls are still merged)
	max int
	now func() time.Time

	mu sync.Mutex // guards m
	m  map[[sha256.Size]byte]cacheEntry
	g  singleflight.Group
}

type cacheEntry struct {
	claims *Claims // nil: the token is invalid
	err    error   // wraps ErrInvalidToken when claims is nil
	until  time.Time
}

func newIntrospectionCache(ttl time.Duration, max int, now func() time.Time) *introspectionCache {
	return &introspectionCache{ttl: ttl, max: max, now: now, m: make(map[[sha256.Size]byte]cacheEntry)}
}

// get returns the cached answer for token or calls fetch. Only answers about
// the token (valid, or ErrInvalidToken) are cached; outages are not.
func (c *introspectionCache) get(ctx context.Context, token string, fetch func(context.Context, string) (*Claims, error)) (*Claims, error) {
	key := sha256.Sum256([]byte(token))
	now := c.now()
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.m[key]
		c.mu.Unlock()
		if ok && now.Before(e.until) {
			if e.claims == nil {
				return nil, e.err
			}
			return e.claims, nil
		}
	}
	ch := c.g.DoChan(string(key[:]), func() (any, error) {
		// The call outlives a caller that gives up, so the others waiting
		// on it are not failed by that caller's cancellation.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		claims, err := fetch(fctx, token)
		if err == nil || errors.Is(err, ErrInvalidToken) {
			c.store(key, claims, err)
		}
		return claims, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Claims), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: introspection: %w", ErrUnavailable, ctx.Err())
	}
}

func (c *introspectionCache) store(key [sha256.Size]byte, claims *Claims, err error) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	until := now.Add(c.ttl)
	if claims != nil && !claims.Expiry.IsZero() && claims.Expiry.Before(until) {
		until = claims.Expiry
	}
	if !until.After(now) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[key] = cacheEntry{claims: claims, err: err, until: until}
}

// evict drops expired entries and, if the cache is still full, about a tenth
// of the rest (map order is random, so that is a random tenth).
func (c *introspectionCache) evict(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	drop := len(c.m) - c.max + c.max/10 + 1
	for k := range c.m {
		if drop <= 0 {
			break
		}
		delete(c.m, k)
		drop--
	}
}

// len returns the number of cached entries (for tests).
func (c *introspectionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
