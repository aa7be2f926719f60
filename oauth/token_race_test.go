package oauth

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// losingCodeStore simulates two exchanges of one code racing: when fosite
// first reads the code, a concurrent exchange has already been issued an
// access token (committed on its own), and this exchange then loses the
// atomic invalidation.
type losingCodeStore struct {
	storage.Storage
	raced, lost atomic.Bool
}

const winnerSignature = "winner-access-token"

func (s *losingCodeStore) GetRequest(ctx context.Context, kind storage.Kind, sig string) (storage.Request, error) {
	r, err := s.Storage.GetRequest(ctx, kind, sig)
	if err == nil && kind == storage.KindAuthorizeCode && s.raced.CompareAndSwap(false, true) {
		now := time.Now()
		winner := storage.Request{Kind: storage.KindAccessToken, Signature: winnerSignature, RequestID: r.RequestID,
			ClientID: r.ClientID, Subject: r.Subject, Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: r.Data}
		if err := s.CreateRequest(ctx, winner); err != nil {
			return r, err
		}
	}
	return r, err
}

func (s *losingCodeStore) DeactivateRequest(ctx context.Context, kind storage.Kind, sig string, now, graceSince time.Time) error {
	if kind == storage.KindAuthorizeCode && s.raced.Load() && s.lost.CompareAndSwap(false, true) {
		return storage.ErrInactive
	}
	return s.Storage.DeactivateRequest(ctx, kind, sig, now, graceSince)
}

func TestCodeExchangeLosingTheRaceRevokesTheGrant(t *testing.T) {
	store := &losingCodeStore{Storage: storagetest.SQLite(t)}
	e := newEnvOn(t, store, nil)
	code, verifier := e.authCode("web", []string{"openid"})
	_, err := e.oauth2Config("web").Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !asRetrieve(err, &re) {
		t.Fatalf("exchange: %v, want an OAuth error", err)
	}
	if re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "invalid_grant" {
		t.Fatalf("lost race answered %d %q, want 400 invalid_grant", re.Response.StatusCode, re.ErrorCode)
	}
	if !store.lost.Load() {
		t.Fatal("the race was not simulated")
	}
	if _, err := store.GetRequest(e.ctx(), storage.KindAccessToken, winnerSignature); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the winning exchange's access token survived a replayed code: %v", err)
	}
}
