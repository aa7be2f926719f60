package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

func testTxCommit(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create request", s.CreateRequest(ctx, request(storage.KindRefreshToken, "rt-1", "fam")))
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	must(t, "create in tx", s.CreateClient(tctx, fullClient("app")))
	_, err = s.GetClient(tctx, "app")
	must(t, "a transaction reads its own writes", err)
	must(t, "rotate in tx", s.DeactivateRequest(tctx, storage.KindRefreshToken, "rt-1", base(), time.Time{}))
	must(t, "create in tx", s.CreateRequest(tctx, request(storage.KindRefreshToken, "rt-2", "fam")))
	got, err := s.GetRequest(tctx, storage.KindRefreshToken, "rt-1")
	must(t, "get in tx", err)
	if got.Active {
		t.Fatal("a transaction must see its own deactivation")
	}
	must(t, "commit", s.Commit(tctx))

	_, err = s.GetClient(ctx, "app")
	must(t, "committed client", err)
	got, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-1")
	must(t, "committed rotation", err)
	if got.Active {
		t.Fatal("committed deactivation lost")
	}
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-2")
	must(t, "committed new token", err)
	// Rolling back after a commit must not undo it; callers defer Rollback.
	_ = s.Rollback(tctx)
	_, err = s.GetClient(ctx, "app")
	must(t, "client after late rollback", err)
}

func testTxRollback(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create user", s.CreateUser(ctx, user("u1", "alice")))
	must(t, "create request", s.CreateRequest(ctx, request(storage.KindRefreshToken, "rt-1", "fam")))

	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	must(t, "create client", s.CreateClient(tctx, fullClient("app")))
	must(t, "rotate", s.DeactivateRequest(tctx, storage.KindRefreshToken, "rt-1", base(), time.Time{}))
	must(t, "create token", s.CreateRequest(tctx, request(storage.KindRefreshToken, "rt-2", "fam")))
	must(t, "update user", s.UpdateUser(tctx, "u1", func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}))
	must(t, "use jti", s.UseJTI(tctx, "jti", base().Add(time.Hour), base()))
	must(t, "create event", s.CreateEvent(tctx, event("e1", "login.success", "u1", base())))
	must(t, "rollback", s.Rollback(tctx))

	_, err = s.GetClient(ctx, "app")
	mustErr(t, "client after rollback", err, storage.ErrNotFound)
	got, err := s.GetRequest(ctx, storage.KindRefreshToken, "rt-1")
	must(t, "get request", err)
	if !got.Active {
		t.Fatal("rolled-back deactivation stuck")
	}
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-2")
	mustErr(t, "token after rollback", err, storage.ErrNotFound)
	u, err := s.GetUser(ctx, "u1")
	must(t, "get user", err)
	if u.Disabled {
		t.Fatal("rolled-back update stuck")
	}
	must(t, "jti after rollback is unused", s.UseJTI(ctx, "jti", base().Add(time.Hour), base()))
	_, err = s.GetEvent(ctx, "e1")
	mustErr(t, "event after rollback", err, storage.ErrNotFound)
}

// testTxUpdateInTx checks that Update* joins a carried transaction rather
// than opening its own (which would commit independently, or deadlock).
func testTxUpdateInTx(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, fullClient("app")))
	must(t, "create credential", s.CreateCredential(ctx, credential([]byte{1}, "u1")))
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	must(t, "update in tx", s.UpdateClient(tctx, "app", func(c storage.Client) (storage.Client, error) {
		c.Name = "in tx"
		return c, nil
	}))
	must(t, "update credential in tx", s.UpdateCredential(tctx, []byte{1}, func(c storage.Credential) (storage.Credential, error) {
		c.SignCount = 99
		return c, nil
	}))
	c, err := s.GetClient(tctx, "app")
	must(t, "get in tx", err)
	if c.Name != "in tx" {
		t.Fatalf("name in tx = %q", c.Name)
	}
	must(t, "rollback", s.Rollback(tctx))
	c, err = s.GetClient(ctx, "app")
	must(t, "get", err)
	if c.Name != fullClient("app").Name {
		t.Fatalf("update inside a rolled-back transaction survived: %q", c.Name)
	}
	cred, err := s.GetCredential(ctx, []byte{1})
	must(t, "get credential", err)
	if cred.SignCount == 99 {
		t.Fatal("credential update inside a rolled-back transaction survived")
	}
}

// testTxSurvivesErrors checks that the errors callers act on leave a
// carried transaction usable (in PostgreSQL a failed statement would abort
// it), so code can, say, create-or-get inside one transaction.
func testTxSurvivesErrors(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create client", s.CreateClient(ctx, storage.Client{ID: "a"}))
	must(t, "create user", s.CreateUser(ctx, user("u1", "alice")))
	must(t, "create user", s.CreateUser(ctx, user("u2", "bob")))
	must(t, "create request", s.CreateRequest(ctx, request(storage.KindAuthorizeCode, "code", "req")))
	must(t, "use code", s.DeactivateRequest(ctx, storage.KindAuthorizeCode, "code", base(), time.Time{}))
	must(t, "use jti", s.UseJTI(ctx, "jti", base().Add(time.Hour), base()))

	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	defer s.Rollback(tctx)
	mustErr(t, "duplicate client", s.CreateClient(tctx, storage.Client{ID: "a"}), storage.ErrAlreadyExists)
	mustErr(t, "duplicate username", s.CreateUser(tctx, user("u3", "alice")), storage.ErrAlreadyExists)
	mustErr(t, "duplicate request", s.CreateRequest(tctx, request(storage.KindAuthorizeCode, "code", "req")), storage.ErrAlreadyExists)
	must(t, "create credential", s.CreateCredential(tctx, credential([]byte{1}, "u1")))
	mustErr(t, "duplicate credential", s.CreateCredential(tctx, credential([]byte{1}, "u1")), storage.ErrAlreadyExists)
	mustErr(t, "rename onto a taken username", s.UpdateUser(tctx, "u2", func(u storage.User) (storage.User, error) {
		u.Username = "alice"
		return u, nil
	}), storage.ErrAlreadyExists)
	_, err = s.GetClient(tctx, "missing")
	mustErr(t, "get missing", err, storage.ErrNotFound)
	mustErr(t, "delete missing", s.DeleteClient(tctx, "missing"), storage.ErrNotFound)
	mustErr(t, "update missing", s.UpdateClient(tctx, "missing", func(c storage.Client) (storage.Client, error) { return c, nil }), storage.ErrNotFound)
	mustErr(t, "reuse code", s.DeactivateRequest(tctx, storage.KindAuthorizeCode, "code", base(), time.Time{}), storage.ErrInactive)
	mustErr(t, "replay jti", s.UseJTI(tctx, "jti", base().Add(time.Hour), base()), storage.ErrAlreadyExists)

	must(t, "create after errors", s.CreateClient(tctx, storage.Client{ID: "b"}))
	must(t, "commit after errors", s.Commit(tctx))
	_, err = s.GetClient(ctx, "b")
	must(t, "committed client", err)
	_, err = s.GetCredential(ctx, []byte{1})
	must(t, "committed credential", err)
}

func testTxMisuse(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	if err := s.Commit(ctx); err == nil {
		t.Fatal("commit without a transaction: want an error")
	}
	if err := s.Rollback(ctx); err == nil {
		t.Fatal("rollback without a transaction: want an error")
	}
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	defer s.Rollback(tctx)
	if _, err := s.BeginTx(tctx); err == nil {
		t.Fatal("nested BeginTx: want an error")
	}
	// The outer transaction is still usable after the refused nesting.
	must(t, "create after nested begin", s.CreateClient(tctx, storage.Client{ID: "app"}))
	must(t, "commit", s.Commit(tctx))
	if err := s.Commit(tctx); err == nil {
		t.Fatal("second commit: want an error")
	}
}

func testUpdateClosureError(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	errRefused := errors.New("refused by closure")
	must(t, "create", s.CreateClient(ctx, fullClient("app")))
	err := s.UpdateClient(ctx, "app", func(c storage.Client) (storage.Client, error) {
		c.Name = "changed"
		return c, errRefused
	})
	mustErr(t, "closure error", err, errRefused)
	c, err := s.GetClient(ctx, "app")
	must(t, "get", err)
	if c.Name == "changed" {
		t.Fatal("an update whose closure failed was written")
	}
	// The store stays usable: the failed update released its transaction.
	must(t, "update after failure", s.UpdateClient(ctx, "app", func(c storage.Client) (storage.Client, error) {
		c.Name = "ok"
		return c, nil
	}))
}

// race runs fn n times concurrently, releasing all goroutines at once, and
// returns each call's error.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// retry repeats fn while it fails with ErrConflict, which the contract lets
// a backend return when a concurrent transaction won.
func retry(fn func() error) error {
	for range 50 {
		err := fn()
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("still conflicting after 50 attempts")
}

func testConcurrentDeactivate(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateRequest(ctx, request(storage.KindAuthorizeCode, "code", "req")))
	errs := race(16, func(int) error {
		return s.DeactivateRequest(ctx, storage.KindAuthorizeCode, "code", base(), time.Time{})
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, storage.ErrInactive):
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of 16 concurrent deactivations won, want exactly 1", wins)
	}
}

func testConcurrentUseJTI(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	errs := race(16, func(int) error {
		return s.UseJTI(ctx, "jti", base().Add(time.Minute), base())
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, storage.ErrAlreadyExists):
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of 16 concurrent uses of one jti won, want exactly 1", wins)
	}
}

func testConcurrentUpdateClient(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, storage.Client{ID: "app"}))
	const n = 20
	for i, err := range race(n, func(i int) error {
		return retry(func() error {
			return s.UpdateClient(ctx, "app", func(c storage.Client) (storage.Client, error) {
				// Hold the read value a while, so that an update that is not
				// atomic visibly loses writes.
				time.Sleep(time.Millisecond)
				c.RedirectURIs = append(c.RedirectURIs, fmt.Sprintf("https://app.example/cb/%d", i))
				return c, nil
			})
		})
	}) {
		must(t, fmt.Sprintf("update %d", i), err)
	}
	c, err := s.GetClient(ctx, "app")
	must(t, "get", err)
	if len(c.RedirectURIs) != n {
		t.Fatalf("%d redirect URIs after %d concurrent appends: updates were lost", len(c.RedirectURIs), n)
	}
}

func testConcurrentUpdateCredential(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	c := credential([]byte{0xca, 0xfe}, "u1")
	c.SignCount = 0
	must(t, "create", s.CreateCredential(ctx, c))
	const n = 20
	for i, err := range race(n, func(int) error {
		return retry(func() error {
			return s.UpdateCredential(ctx, c.ID, func(c storage.Credential) (storage.Credential, error) {
				time.Sleep(time.Millisecond)
				c.SignCount++
				return c, nil
			})
		})
	}) {
		must(t, fmt.Sprintf("update %d", i), err)
	}
	got, err := s.GetCredential(ctx, c.ID)
	must(t, "get", err)
	if got.SignCount != n {
		t.Fatalf("sign count %d after %d concurrent increments", got.SignCount, n)
	}
}

// testConcurrentTx runs read-modify-write through explicit transactions, the
// way the oauth package drives fosite.
func testConcurrentTx(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, storage.Client{ID: "app"}))
	const n = 10
	for i, err := range race(n, func(i int) error {
		return retry(func() error {
			tctx, err := s.BeginTx(ctx)
			if err != nil {
				return err
			}
			defer s.Rollback(tctx)
			if _, err := s.GetClient(tctx, "app"); err != nil {
				return err
			}
			err = s.UpdateClient(tctx, "app", func(c storage.Client) (storage.Client, error) {
				time.Sleep(time.Millisecond)
				c.Scopes = append(c.Scopes, fmt.Sprintf("scope-%d", i))
				return c, nil
			})
			if err != nil {
				return err
			}
			if err := s.CreateEvent(tctx, event(fmt.Sprintf("e%d", i), "client.updated", "", base())); err != nil {
				return err
			}
			return s.Commit(tctx)
		})
	}) {
		must(t, fmt.Sprintf("tx %d", i), err)
	}
	c, err := s.GetClient(ctx, "app")
	must(t, "get", err)
	if len(c.Scopes) != n {
		t.Fatalf("%d scopes after %d concurrent transactions: updates were lost", len(c.Scopes), n)
	}
	events, err := s.ListEvents(ctx, storage.EventFilter{Type: "client.updated"})
	must(t, "list events", err)
	if len(events) != n {
		t.Fatalf("%d events after %d transactions", len(events), n)
	}
}

// testConcurrentRotation is refresh-token rotation as fosite runs it: in a
// transaction, read the token, deactivate it, issue its successor. Of
// concurrent rotations without grace exactly one may issue a successor.
func testConcurrentRotation(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateRequest(ctx, request(storage.KindRefreshToken, "rt-0", "fam")))
	const n = 8
	errs := race(n, func(i int) error {
		return retry(func() error {
			tctx, err := s.BeginTx(ctx)
			if err != nil {
				return err
			}
			defer s.Rollback(tctx)
			if _, err := s.GetRequest(tctx, storage.KindRefreshToken, "rt-0"); err != nil {
				return err
			}
			if err := s.DeactivateRequest(tctx, storage.KindRefreshToken, "rt-0", base(), time.Time{}); err != nil {
				return err
			}
			if err := s.CreateRequest(tctx, request(storage.KindRefreshToken, fmt.Sprintf("rt-%d", i+1), "fam")); err != nil {
				return err
			}
			return s.Commit(tctx)
		})
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, storage.ErrInactive):
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent rotations won, want exactly 1", wins, n)
	}
	active, err := s.CountRequests(ctx, storage.KindRefreshToken)
	must(t, "count", err)
	if active != 1 {
		t.Fatalf("%d active refresh tokens after rotation, want 1", active)
	}
}

// testReadersDuringTx checks that an open transaction neither blocks nor
// leaks into reads made outside it.
func testReadersDuringTx(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, storage.Client{ID: "existing"}))
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	defer s.Rollback(tctx)
	must(t, "create in tx", s.CreateClient(tctx, storage.Client{ID: "pending"}))

	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	errs := race(4, func(int) error {
		if _, err := s.GetClient(rctx, "existing"); err != nil {
			return err
		}
		if _, err := s.GetClient(rctx, "pending"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("uncommitted row visible outside its transaction: %v", err)
		}
		list, err := s.ListClients(rctx)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("listed %d clients outside the transaction, want 1", len(list))
		}
		return nil
	})
	for _, err := range errs {
		must(t, "read during transaction", err)
	}
	must(t, "commit", s.Commit(tctx))
	_, err = s.GetClient(ctx, "pending")
	must(t, "committed row", err)
}

// testWritersDuringTx checks that a write made outside an open transaction
// waits for it (or runs beside it) without deadlocking the transaction, even
// when the outside write is the first use of its statement.
func testWritersDuringTx(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	defer s.Rollback(tctx)
	must(t, "create in tx", s.CreateClient(tctx, storage.Client{ID: "app"}))

	outside := make(chan error, 1)
	go func() {
		outside <- s.PutConsent(ctx, storage.Consent{UserID: "u1", ClientID: "other", Scopes: []string{"openid"}})
	}()
	inside := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond)
		if err := s.CreateRequest(tctx, request(storage.KindAccessToken, "at", "req")); err != nil {
			inside <- fmt.Errorf("write in tx while another writer waits: %w", err)
			return
		}
		err := s.UpdateClient(tctx, "app", func(c storage.Client) (storage.Client, error) {
			c.Name = "x"
			return c, nil
		})
		if err != nil {
			inside <- fmt.Errorf("update in tx while another writer waits: %w", err)
			return
		}
		inside <- s.Commit(tctx)
	}()
	timeout := time.After(10 * time.Second)
	for _, ch := range []chan error{inside, outside} {
		select {
		case err := <-ch:
			must(t, "concurrent writes", err)
		case <-timeout:
			t.Fatal("deadlock: a transaction and a write outside it never finished")
		}
	}
	_, err = s.GetConsent(ctx, "u1", "other")
	must(t, "outside write visible", err)
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "at")
	must(t, "transaction's write visible", err)
}
