package oauth

import (
	"bytes"
	"maps"
	"net/url"
	"slices"
	"sync"

	"github.com/ory/fosite/token/jwt"

	"github.com/stepwise-id/stepwise/storage"
)

// decodeCacheSize bounds the decoded access-token rows kept in memory (a few
// kilobytes each).
const decodeCacheSize = 4096

// decodeCache keeps decoded access-token rows. A resource server typically
// introspects the same token on every API call it receives, and decoding
// the stored JSON was a third of an introspection's work.
//
// Only the decoding is cached, never the answer: every introspection still
// reads the row (so a revoked, deleted or deactivated token is seen at once)
// and the client (through the client cache). An entry is used only when the
// row's bytes equal the bytes it was decoded from, so a changed row is
// decoded afresh; rows are never rewritten in place anyway. Callers get deep
// copies, which fosite may modify freely.
type decodeCache struct {
	max int

	mu sync.RWMutex
	m  map[string]*decodedRow // by signature
}

type decodedRow struct {
	data []byte
	sr   storedRequest
	sess *Session
}

func newDecodeCache(max int) *decodeCache {
	return &decodeCache{max: max, m: make(map[string]*decodedRow)}
}

// lookup returns the decoded form of row, filling sess, or false.
func (c *decodeCache) lookup(row storage.Request, sess *Session) (storedRequest, bool) {
	if c == nil || row.Kind != storage.KindAccessToken {
		return storedRequest{}, false
	}
	c.mu.RLock()
	d := c.m[row.Signature]
	c.mu.RUnlock()
	if d == nil || !bytes.Equal(d.data, row.Data) {
		return storedRequest{}, false
	}
	copySession(sess, d.sess)
	return cloneStoredRequest(d.sr), true
}

// store remembers row's decoded form (copies of sr and sess).
func (c *decodeCache) store(row storage.Request, sr storedRequest, sess *Session) {
	if c == nil || row.Kind != storage.KindAccessToken {
		return
	}
	snap := &Session{}
	copySession(snap, sess)
	d := &decodedRow{data: bytes.Clone(row.Data), sr: cloneStoredRequest(sr), sess: snap}
	c.mu.Lock()
	if len(c.m) >= c.max {
		// Bound memory: start over rather than track recency.
		clear(c.m)
	}
	c.m[row.Signature] = d
	c.mu.Unlock()
}

// copySession makes dst a deep copy of src.
func copySession(dst, src *Session) {
	*dst = *src
	if src.DefaultSession == nil {
		return
	}
	ds := *src.DefaultSession
	if ds.Claims != nil {
		c := *ds.Claims
		c.Audience = slices.Clone(c.Audience)
		c.AuthenticationMethodsReferences = slices.Clone(c.AuthenticationMethodsReferences)
		c.Extra = maps.Clone(c.Extra)
		ds.Claims = &c
	}
	if ds.Headers != nil {
		ds.Headers = &jwt.Headers{Extra: maps.Clone(ds.Headers.Extra)}
	}
	ds.ExpiresAt = maps.Clone(ds.ExpiresAt)
	dst.DefaultSession = &ds
}

func cloneStoredRequest(sr storedRequest) storedRequest {
	out := sr
	out.RequestedScope = slices.Clone(sr.RequestedScope)
	out.GrantedScope = slices.Clone(sr.GrantedScope)
	out.RequestedAudience = slices.Clone(sr.RequestedAudience)
	out.GrantedAudience = slices.Clone(sr.GrantedAudience)
	out.ResponseTypes = slices.Clone(sr.ResponseTypes)
	out.Session = nil
	if sr.Form != nil {
		out.Form = make(url.Values, len(sr.Form))
		for k, v := range sr.Form {
			out.Form[k] = slices.Clone(v)
		}
	}
	return out
}
