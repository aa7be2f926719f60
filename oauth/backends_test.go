package oauth

import (
	"context"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// TestBackends runs the storage-sensitive flows (rotation, reuse detection,
// single-use codes, PAR, key rotation) on every backend; PostgreSQL is
// skipped when unavailable.
func TestBackends(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, s storage.Storage) {
		e := newEnvOn(t, s, func(c *Config) { c.RefreshGracePeriod = -1 })
		tok := e.codeFlow("web", []string{"openid", "offline_access"})
		e.verifyIDToken(tok, "web")
		if m := e.introspect(tok.AccessToken); m["acr"] != ACRPassword {
			t.Errorf("introspection %v", m)
		}
		conf := e.oauth2Config("web")
		tok2, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("refresh token reuse accepted")
		}
		if _, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
			t.Fatal("family not revoked after reuse")
		}

		code, verifier := e.authCode("web", []string{"openid"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier)); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if re, isRE := err.(*oauth2.RetrieveError); isRE && re.Response.StatusCode >= 500 {
					t.Errorf("concurrent exchange: %d %s", re.Response.StatusCode, re.Body)
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d successful exchanges, want 1", ok)
		}

		jt := e.codeFlow("jwtweb", []string{"openid", "api"})
		if _, err := e.p.Keys().Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if m := e.introspect(jt.AccessToken); m["active"] != true {
			t.Errorf("JWT access token inactive after rotation: %v", m)
		}
		e.verifyIDToken(jt, "jwtweb")
	})
}
