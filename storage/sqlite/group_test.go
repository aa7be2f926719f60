package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

// TestGroupCommit issues many concurrent inserts, some of them duplicates,
// so that several share a commit: each must get its own outcome, and every
// insert that succeeded must be readable once it returned.
func TestGroupCommit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	row := func(i int) storage.Request {
		return storage.Request{Kind: storage.KindAccessToken, Signature: fmt.Sprintf("sig-%d", i), RequestID: fmt.Sprintf("req-%d", i),
			ClientID: "c", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte(`{}`)}
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			// Every row is inserted twice: exactly one of each pair wins.
			errs[i] = s.CreateRequest(ctx, row(i%n))
			if errs[i] == nil {
				if _, err := s.GetRequest(ctx, storage.KindAccessToken, row(i%n).Signature); err != nil {
					t.Errorf("row %d not readable after CreateRequest returned: %v", i%n, err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		a, b := errs[i], errs[i+n]
		ok := (a == nil) != (b == nil)
		dup := a
		if a == nil {
			dup = b
		}
		if !ok || !errors.Is(dup, storage.ErrAlreadyExists) {
			t.Fatalf("row %d: errors %v and %v; want one nil and one ErrAlreadyExists", i, a, b)
		}
	}
	if got, err := s.CountRequests(ctx, storage.KindAccessToken); err != nil || got != n {
		t.Fatalf("CountRequests = %d, %v; want %d", got, err, n)
	}
}
