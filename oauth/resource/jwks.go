package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// keySet caches the issuer's JWKS. A token signed with an unknown kid makes
// it refetch, at most once per minRefresh, so a rotation is picked up at once
// while a flood of made-up kids cannot hammer the issuer. Concurrent fetches
// are merged.
type keySet struct {
	client     *http.Client
	uri        func(ctx context.Context) (string, error)
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time

	sf          singleflight.Group
	mu          sync.RWMutex
	keys        []jose.JSONWebKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch, successful or not
}

// find returns the public keys that may have signed a token with this kid
// and alg. An empty kid matches every key of a compatible type.
func (s *keySet) find(ctx context.Context, kid, alg string) ([]jose.JSONWebKey, error) {
	s.mu.RLock()
	keys, fetchedAt, attemptedAt := s.keys, s.fetchedAt, s.attemptedAt
	s.mu.RUnlock()
	now := s.now()
	found := matchKeys(keys, kid, alg)
	stale := fetchedAt.IsZero() || now.Sub(fetchedAt) > s.maxAge
	if len(found) > 0 && !stale {
		return found, nil
	}
	if !attemptedAt.IsZero() && now.Sub(attemptedAt) < s.minRefresh {
		// Fetched (or failed to) a moment ago: do not ask again yet.
		switch {
		case len(found) > 0:
			return found, nil
		case fetchedAt.IsZero():
			return nil, fmt.Errorf("%w: jwks not fetched yet", ErrUnavailable)
		}
		return nil, fmt.Errorf("%w: unknown signing key", ErrInvalidToken)
	}
	if err := s.refresh(ctx); err != nil {
		if len(found) > 0 {
			// The issuer is unreachable but the cached key still matches:
			// better a slightly stale key set than an outage.
			return found, nil
		}
		return nil, err
	}
	s.mu.RLock()
	found = matchKeys(s.keys, kid, alg)
	s.mu.RUnlock()
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: unknown signing key", ErrInvalidToken)
	}
	return found, nil
}

func (s *keySet) refresh(ctx context.Context) error {
	ch := s.sf.DoChan("jwks", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		keys, err := s.fetch(fctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.attemptedAt = s.now()
		if err != nil {
			return nil, err
		}
		s.keys, s.fetchedAt = keys, s.attemptedAt
		return nil, nil
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("%w: fetch jwks: %w", ErrUnavailable, ctx.Err())
	}
}

func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	uri, err := s.uri(ctx)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, s.client, uri, &set); err != nil {
		return nil, fmt.Errorf("%w: fetch jwks: %w", ErrUnavailable, err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		// One key we cannot use (another kty, a private part, a bad
		// encoding) must not hide the others.
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || !k.IsPublic() {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// matchKeys selects keys by kid and by a key type fit for alg. A key that
// names its own alg must name this one.
func matchKeys(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if !keyFitsAlg(k, alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}
