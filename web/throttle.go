package web

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failure throttling: each failed sign-in takes a token from a bucket for
// the (IP, username) pair and one for the IP alone; while either bucket is
// empty, sign-in attempts from there are refused without checking the
// password. Buckets refill slowly, so a person who mistypes a few times is
// never affected, while guessing is held to about one try a minute per
// account and IP. The state is per process (each replica throttles on its
// own), which is enough to blunt online guessing; the audit events feed the
// risk engine for anything subtler.
const (
	pairBurst    = 5
	pairInterval = time.Minute
	ipBurst      = 50
	ipInterval   = 6 * time.Second
	maxTracked   = 100_000
	sweepEvery   = time.Minute
)

type throttle struct {
	mu        sync.Mutex
	pairs     map[string]*rate.Limiter
	ips       map[string]*rate.Limiter
	lastSweep time.Time
}

func newThrottle() *throttle {
	return &throttle{pairs: map[string]*rate.Limiter{}, ips: map[string]*rate.Limiter{}}
}

func pairKey(ip, username string) string {
	return ip + "\x00" + strings.ToLower(username)
}

// allowed reports whether a sign-in attempt may be checked now.
func (t *throttle) allowed(ip, username string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.pairs[pairKey(ip, username)]; l != nil && l.TokensAt(now) < 1 {
		return false
	}
	if l := t.ips[ip]; l != nil && l.TokensAt(now) < 1 {
		return false
	}
	return true
}

// failed records a failed attempt.
func (t *throttle) failed(ip, username string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	take(t.pairs, pairKey(ip, username), rate.Every(pairInterval), pairBurst, now)
	take(t.ips, ip, rate.Every(ipInterval), ipBurst, now)
}

// succeeded forgets the pair's failures; the IP's count stays.
func (t *throttle) succeeded(ip, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pairs, pairKey(ip, username))
}

func take(m map[string]*rate.Limiter, key string, every rate.Limit, burst int, now time.Time) {
	l := m[key]
	if l == nil {
		if len(m) >= maxTracked {
			evictOne(m)
		}
		l = rate.NewLimiter(every, burst)
		m[key] = l
	}
	l.AllowN(now, 1)
}

// sweep drops buckets that have refilled completely: they hold no memory of
// failures any more.
func (t *throttle) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < sweepEvery {
		return
	}
	t.lastSweep = now
	for _, m := range []map[string]*rate.Limiter{t.pairs, t.ips} {
		for k, l := range m {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(m, k)
			}
		}
	}
}

// evictOne drops an arbitrary entry to bound memory under a flood.
func evictOne(m map[string]*rate.Limiter) {
	for k := range m {
		delete(m, k)
		return
	}
}
