package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

func request(kind storage.Kind, sig, requestID string) storage.Request {
	t := base()
	return storage.Request{
		Kind: kind, Signature: sig, RequestID: requestID, ClientID: "app", Subject: "u1", SessionID: "s1",
		Active: true, RequestedAt: t, ExpiresAt: t.Add(time.Hour),
		Data: []byte(`{"client_id":"app","granted_scope":["openid"],"session":{"acr":"phr"}}`),
	}
}

func testRequestCreateGet(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	r := request(storage.KindRefreshToken, "sig-1", "req-1")
	r.AccessSignature = "at-sig-1"
	must(t, "create", s.CreateRequest(ctx, r))
	got, err := s.GetRequest(ctx, storage.KindRefreshToken, "sig-1")
	must(t, "get", err)
	checkEqual(t, "request", got, r)
	mustErr(t, "duplicate", s.CreateRequest(ctx, r), storage.ErrAlreadyExists)

	// The key is (Kind, Signature): the same signature under another kind is
	// another row.
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "sig-1")
	mustErr(t, "get under another kind", err, storage.ErrNotFound)
	other := request(storage.KindAccessToken, "sig-1", "req-1")
	must(t, "same signature, other kind", s.CreateRequest(ctx, other))

	// An inactive row round-trips too, with its deactivation time.
	inactive := request(storage.KindAuthorizeCode, "code-1", "req-2")
	inactive.Active = false
	inactive.DeactivatedAt = base().Add(time.Minute)
	inactive.SessionID = ""
	inactive.Data = nil
	must(t, "create inactive", s.CreateRequest(ctx, inactive))
	got, err = s.GetRequest(ctx, storage.KindAuthorizeCode, "code-1")
	must(t, "get inactive", err)
	checkEqual(t, "inactive request", got, inactive)
}

func testRequestDeactivate(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateRequest(ctx, request(storage.KindAuthorizeCode, "code", "req")))
	now := base().Add(time.Minute)
	must(t, "deactivate", s.DeactivateRequest(ctx, storage.KindAuthorizeCode, "code", now, time.Time{}))
	got, err := s.GetRequest(ctx, storage.KindAuthorizeCode, "code")
	must(t, "get", err)
	if got.Active || !got.DeactivatedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("after deactivation: active=%v deactivatedAt=%v, want false and %v", got.Active, got.DeactivatedAt, now)
	}
	mustErr(t, "deactivate twice", s.DeactivateRequest(ctx, storage.KindAuthorizeCode, "code", now.Add(time.Second), time.Time{}), storage.ErrInactive)
	got, err = s.GetRequest(ctx, storage.KindAuthorizeCode, "code")
	must(t, "get", err)
	if !got.DeactivatedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("a refused deactivation moved DeactivatedAt to %v", got.DeactivatedAt)
	}
	mustErr(t, "deactivate missing", s.DeactivateRequest(ctx, storage.KindAuthorizeCode, "nope", now, time.Time{}), storage.ErrNotFound)
	mustErr(t, "deactivate under another kind", s.DeactivateRequest(ctx, storage.KindAccessToken, "code", now, time.Time{}), storage.ErrNotFound)
}

func testRequestDeactivateGrace(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateRequest(ctx, request(storage.KindRefreshToken, "rt", "req")))
	rotated := base().Add(time.Minute)
	must(t, "rotate", s.DeactivateRequest(ctx, storage.KindRefreshToken, "rt", rotated, time.Time{}))

	// A second tab rotating the same token 5 s later, with a 10 s grace
	// period: graceSince = now - 10 s is before the first rotation.
	now := rotated.Add(5 * time.Second)
	must(t, "rotate again within grace", s.DeactivateRequest(ctx, storage.KindRefreshToken, "rt", now, now.Add(-10*time.Second)))
	// 15 s later the grace period has passed: this is reuse.
	now = rotated.Add(15 * time.Second)
	mustErr(t, "rotate again after grace", s.DeactivateRequest(ctx, storage.KindRefreshToken, "rt", now, now.Add(-10*time.Second)), storage.ErrInactive)
	// Without grace, a second rotation is always reuse.
	mustErr(t, "rotate again without grace", s.DeactivateRequest(ctx, storage.KindRefreshToken, "rt", rotated.Add(time.Second), time.Time{}), storage.ErrInactive)

	got, err := s.GetRequest(ctx, storage.KindRefreshToken, "rt")
	must(t, "get", err)
	if !got.DeactivatedAt.Equal(rotated.Truncate(time.Microsecond)) {
		t.Fatalf("DeactivatedAt = %v, want the first rotation %v", got.DeactivatedAt, rotated)
	}
}

func testRequestDelete(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateRequest(ctx, request(storage.KindAccessToken, "at", "req")))
	must(t, "create other kind", s.CreateRequest(ctx, request(storage.KindRefreshToken, "at", "req")))
	must(t, "delete", s.DeleteRequest(ctx, storage.KindAccessToken, "at"))
	mustErr(t, "delete again", s.DeleteRequest(ctx, storage.KindAccessToken, "at"), storage.ErrNotFound)
	_, err := s.GetRequest(ctx, storage.KindAccessToken, "at")
	mustErr(t, "get deleted", err, storage.ErrNotFound)
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "at")
	must(t, "other kind survives", err)
}

// testRequestDeleteByID revokes a refresh-token family: every refresh token
// issued for one RequestID, and nothing of other kinds or requests.
func testRequestDeleteByID(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	for _, r := range []storage.Request{
		request(storage.KindRefreshToken, "rt-1", "family"),
		request(storage.KindRefreshToken, "rt-2", "family"),
		request(storage.KindRefreshToken, "rt-3", "family"),
		request(storage.KindAccessToken, "at-3", "family"),
		request(storage.KindRefreshToken, "rt-x", "other"),
	} {
		must(t, "create "+r.Signature, s.CreateRequest(ctx, r))
	}
	must(t, "rotate rt-1", s.DeactivateRequest(ctx, storage.KindRefreshToken, "rt-1", base(), time.Time{}))
	n, err := s.DeleteRequestsByID(ctx, storage.KindRefreshToken, "family")
	must(t, "delete family", err)
	if n != 3 {
		t.Fatalf("deleted %d refresh tokens, want 3 (active and rotated alike)", n)
	}
	for _, sig := range []string{"rt-1", "rt-2", "rt-3"} {
		_, err := s.GetRequest(ctx, storage.KindRefreshToken, sig)
		mustErr(t, "get "+sig, err, storage.ErrNotFound)
	}
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "at-3")
	must(t, "access token of the family survives a refresh-kind delete", err)
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-x")
	must(t, "other family survives", err)
	n, err = s.DeleteRequestsByID(ctx, storage.KindRefreshToken, "family")
	must(t, "delete family again", err)
	if n != 0 {
		t.Fatalf("second delete removed %d rows, want 0", n)
	}
}

func testRequestDeleteBySession(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	machine := request(storage.KindAccessToken, "at-machine", "req-m")
	machine.SessionID = ""
	other := request(storage.KindAccessToken, "at-other", "req-o")
	other.SessionID = "s2"
	for _, r := range []storage.Request{
		request(storage.KindAuthorizeCode, "code", "req-1"),
		request(storage.KindAccessToken, "at", "req-1"),
		request(storage.KindRefreshToken, "rt", "req-1"),
		request(storage.KindOIDC, "code", "req-1"),
		machine, other,
	} {
		must(t, "create "+r.Signature, s.CreateRequest(ctx, r))
	}
	n, err := s.DeleteRequestsBySession(ctx, "s1")
	must(t, "delete by session", err)
	if n != 4 {
		t.Fatalf("deleted %d rows, want 4", n)
	}
	n, err = s.DeleteRequestsBySession(ctx, "")
	must(t, "delete by empty session", err)
	if n != 0 {
		t.Fatalf("an empty session ID deleted %d rows; it must match nothing (machine grants)", n)
	}
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "at-machine")
	must(t, "machine token survives", err)
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "at-other")
	must(t, "other session's token survives", err)
}

func testRequestCount(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	n, err := s.CountRequests(ctx, storage.KindAccessToken)
	must(t, "count empty", err)
	if n != 0 {
		t.Fatalf("count of empty store: %d", n)
	}
	for _, sig := range []string{"a", "b", "c"} {
		must(t, "create", s.CreateRequest(ctx, request(storage.KindAccessToken, sig, "req-"+sig)))
	}
	must(t, "create refresh", s.CreateRequest(ctx, request(storage.KindRefreshToken, "a", "req-a")))
	must(t, "deactivate", s.DeactivateRequest(ctx, storage.KindAccessToken, "b", base(), time.Time{}))
	n, err = s.CountRequests(ctx, storage.KindAccessToken)
	must(t, "count", err)
	if n != 2 {
		t.Fatalf("active access tokens: %d, want 2", n)
	}
}

func testGarbageCollect(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	now := base().Add(48 * time.Hour)
	past, future := now.Add(-time.Second), now.Add(time.Second)

	expiredReq := request(storage.KindAccessToken, "old", "r1")
	expiredReq.ExpiresAt = past
	liveReq := request(storage.KindAccessToken, "new", "r2")
	liveReq.ExpiresAt = future
	foreverReq := request(storage.KindRefreshToken, "forever", "r3")
	foreverReq.ExpiresAt = time.Time{}
	// A row expiring exactly now has not expired "before now".
	edgeReq := request(storage.KindAccessToken, "edge", "r4")
	edgeReq.ExpiresAt = now
	for _, r := range []storage.Request{expiredReq, liveReq, foreverReq, edgeReq} {
		must(t, "create request", s.CreateRequest(ctx, r))
	}

	oldSession, newSession := session("s-old", "u1"), session("s-new", "u1")
	oldSession.ExpiresAt, newSession.ExpiresAt = past, future
	must(t, "create session", s.CreateSession(ctx, oldSession))
	must(t, "create session", s.CreateSession(ctx, newSession))

	must(t, "create auth request", s.CreateAuthRequest(ctx, storage.AuthRequest{ID: "ar-old", ExpiresAt: past}))
	must(t, "create auth request", s.CreateAuthRequest(ctx, storage.AuthRequest{ID: "ar-new", ExpiresAt: future}))
	must(t, "create auth request", s.CreateAuthRequest(ctx, storage.AuthRequest{ID: "ar-old-2", ExpiresAt: past.Add(-time.Hour)}))

	must(t, "create reg token", s.CreateRegistrationToken(ctx, storage.RegistrationToken{Hash: "old", ExpiresAt: past}))
	must(t, "create reg token", s.CreateRegistrationToken(ctx, storage.RegistrationToken{Hash: "new", ExpiresAt: future}))

	must(t, "use jti", s.UseJTI(ctx, "old", past, base()))
	must(t, "use jti", s.UseJTI(ctx, "new", future, base()))

	must(t, "create key", s.CreateKey(ctx, storage.SigningKey{ID: "active", Algorithm: "ES256", CreatedAt: base()}))
	must(t, "create key", s.CreateKey(ctx, storage.SigningKey{ID: "retired", Algorithm: "ES256", CreatedAt: base(), RetiredAt: base(), PublishUntil: future}))
	must(t, "create key", s.CreateKey(ctx, storage.SigningKey{ID: "gone", Algorithm: "ES256", CreatedAt: base(), RetiredAt: base(), PublishUntil: past}))

	must(t, "create client", s.CreateClient(ctx, storage.Client{ID: "app"}))
	must(t, "create event", s.CreateEvent(ctx, event("e1", "login.success", "u1", base())))

	got, err := s.GarbageCollect(ctx, now)
	must(t, "gc", err)
	want := storage.GCResult{Requests: 1, Sessions: 1, AuthRequests: 2, RegistrationTokens: 1, AssertionJTIs: 1, Keys: 1}
	if got != want {
		t.Fatalf("gc result %+v, want %+v", got, want)
	}
	if got.Total() != 7 {
		t.Fatalf("total %d, want 7", got.Total())
	}
	for _, sig := range []string{"new", "edge"} {
		_, err = s.GetRequest(ctx, storage.KindAccessToken, sig)
		must(t, "live request "+sig, err)
	}
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "forever")
	must(t, "request without expiry", err)
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "old")
	mustErr(t, "expired request", err, storage.ErrNotFound)
	_, err = s.GetSession(ctx, "s-new")
	must(t, "live session", err)
	_, err = s.GetAuthRequest(ctx, "ar-new")
	must(t, "live auth request", err)
	_, err = s.GetRegistrationToken(ctx, "new")
	must(t, "live registration token", err)
	mustErr(t, "live jti", s.UseJTI(ctx, "new", future, now), storage.ErrAlreadyExists)
	keys, err := s.ListKeys(ctx)
	must(t, "list keys", err)
	if len(keys) != 2 {
		t.Fatalf("keys after gc: %d, want 2", len(keys))
	}
	_, err = s.GetClient(ctx, "app")
	must(t, "clients are never collected", err)
	_, err = s.GetEvent(ctx, "e1")
	must(t, "events are never collected", err)

	again, err := s.GarbageCollect(ctx, now)
	must(t, "gc again", err)
	if again.Total() != 0 {
		t.Fatalf("second gc deleted %+v", again)
	}
}
