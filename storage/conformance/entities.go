package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

func fullClient(id string) storage.Client {
	t := base()
	return storage.Client{
		ID:                          id,
		SecretHash:                  []byte{0x00, 0xff, 0x10, 0x80},
		SecretExpiresAt:             t.Add(90 * 24 * time.Hour),
		Name:                        "Client " + id,
		RedirectURIs:                []string{"https://app.example/cb", "http://localhost:3000/cb"},
		PostLogoutRedirectURIs:      []string{"https://app.example/bye"},
		GrantTypes:                  []string{"authorization_code", "refresh_token"},
		ResponseTypes:               []string{"code"},
		Scopes:                      []string{"openid", "offline_access", "payments:write"},
		Audience:                    []string{"https://api.example"},
		TokenEndpointAuthMethod:     "client_secret_basic",
		JWKS:                        []byte(`{"keys":[]}`),
		JWKSURI:                     "",
		RequirePKCE:                 true,
		RequirePAR:                  true,
		AccessTokenFormat:           "jwt",
		RegistrationAccessTokenHash: []byte("rat-hash"),
		Metadata:                    []byte(`{"client_uri":"https://app.example","contacts":["a@example.com"]}`),
		CreatedAt:                   t,
		UpdatedAt:                   t.Add(time.Second),
	}
}

func testClientCreateGet(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	c := fullClient("app")
	must(t, "create", s.CreateClient(ctx, c))
	got, err := s.GetClient(ctx, "app")
	must(t, "get", err)
	checkEqual(t, "client", got, c)

	mustErr(t, "create duplicate", s.CreateClient(ctx, c), storage.ErrAlreadyExists)
	_, err = s.GetClient(ctx, "nope")
	mustErr(t, "get missing", err, storage.ErrNotFound)
}

// testClientEmptySlices pins down that nil and empty slices both read back
// as nil, and that a minimal client (a public client) round-trips.
func testClientEmptySlices(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	empty := storage.Client{
		ID: "empty", RedirectURIs: []string{}, Scopes: []string{}, SecretHash: []byte{},
		Metadata: []byte{}, TokenEndpointAuthMethod: "none",
	}
	must(t, "create empty", s.CreateClient(ctx, empty))
	got, err := s.GetClient(ctx, "empty")
	must(t, "get empty", err)
	checkEqual(t, "empty client", got, empty)
	if got.RedirectURIs != nil || got.SecretHash != nil || got.Metadata != nil {
		t.Fatalf("empty slices should read back nil: %+v", got)
	}

	zero := storage.Client{ID: "zero"}
	must(t, "create zero", s.CreateClient(ctx, zero))
	got, err = s.GetClient(ctx, "zero")
	must(t, "get zero", err)
	checkEqual(t, "zero client", got, zero)
	if !got.CreatedAt.IsZero() || !got.SecretExpiresAt.IsZero() {
		t.Fatalf("zero times should read back zero: %+v", got)
	}
	// A one-element list containing the empty string is not empty.
	odd := storage.Client{ID: "odd", Scopes: []string{""}}
	must(t, "create odd", s.CreateClient(ctx, odd))
	got, err = s.GetClient(ctx, "odd")
	must(t, "get odd", err)
	checkEqual(t, "odd client", got, odd)
}

func testClientList(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	list, err := s.ListClients(ctx)
	must(t, "list empty", err)
	if len(list) != 0 {
		t.Fatalf("list of empty store: %v", list)
	}
	for _, id := range []string{"c", "a", "b"} {
		must(t, "create "+id, s.CreateClient(ctx, fullClient(id)))
	}
	list, err = s.ListClients(ctx)
	must(t, "list", err)
	checkOrder(t, "clients by id", ids(list, func(c storage.Client) string { return c.ID }), "a", "b", "c")
	checkEqual(t, "listed client", list[0], fullClient("a"))
}

func testClientUpdate(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, fullClient("app")))
	want := fullClient("app")
	err := s.UpdateClient(ctx, "app", func(old storage.Client) (storage.Client, error) {
		checkEqual(t, "closure input", old, want)
		old.Name = "Renamed"
		old.RedirectURIs = append(old.RedirectURIs, "https://new.example/cb")
		old.SecretHash = nil
		old.RequirePKCE = false
		old.UpdatedAt = base().Add(time.Hour)
		return old, nil
	})
	must(t, "update", err)
	want.Name = "Renamed"
	want.RedirectURIs = append(want.RedirectURIs, "https://new.example/cb")
	want.SecretHash = nil
	want.RequirePKCE = false
	want.UpdatedAt = base().Add(time.Hour)
	got, err := s.GetClient(ctx, "app")
	must(t, "get", err)
	checkEqual(t, "updated client", got, want)

	err = s.UpdateClient(ctx, "nope", func(c storage.Client) (storage.Client, error) { return c, nil })
	mustErr(t, "update missing", err, storage.ErrNotFound)

	err = s.UpdateClient(ctx, "app", func(c storage.Client) (storage.Client, error) {
		c.ID = "other"
		return c, nil
	})
	if err == nil {
		t.Fatal("update that changes the id: want an error")
	}
	if _, err := s.GetClient(ctx, "other"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("id change must not create a client: %v", err)
	}
}

func testClientDelete(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateClient(ctx, fullClient("app")))
	must(t, "create other", s.CreateClient(ctx, fullClient("other")))
	must(t, "consent", s.PutConsent(ctx, storage.Consent{UserID: "u1", ClientID: "app", Scopes: []string{"openid"}}))
	must(t, "other consent", s.PutConsent(ctx, storage.Consent{UserID: "u1", ClientID: "other", Scopes: []string{"openid"}}))
	r := request(storage.KindAccessToken, "sig-app", "req-app")
	r.ClientID = "app"
	must(t, "token", s.CreateRequest(ctx, r))

	must(t, "delete", s.DeleteClient(ctx, "app"))
	_, err := s.GetClient(ctx, "app")
	mustErr(t, "get deleted", err, storage.ErrNotFound)
	mustErr(t, "delete again", s.DeleteClient(ctx, "app"), storage.ErrNotFound)

	// A deleted client takes its consents and tokens with it.
	_, err = s.GetConsent(ctx, "u1", "app")
	mustErr(t, "consent of deleted client", err, storage.ErrNotFound)
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "sig-app")
	mustErr(t, "token of deleted client", err, storage.ErrNotFound)
	_, err = s.GetConsent(ctx, "u1", "other")
	must(t, "consent of other client", err)
}

func user(id, username string) storage.User {
	return storage.User{
		ID: id, Username: username, Email: username + "@example.com", DisplayName: "User " + username,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", CreatedAt: base(), UpdatedAt: base(),
	}
}

func testUserCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	list, err := s.ListUsers(ctx)
	must(t, "list empty", err)
	if len(list) != 0 {
		t.Fatalf("list of empty store: %v", list)
	}
	u := user("u1", "zoe")
	must(t, "create", s.CreateUser(ctx, u))
	must(t, "create", s.CreateUser(ctx, user("u2", "adam")))
	got, err := s.GetUser(ctx, "u1")
	must(t, "get", err)
	checkEqual(t, "user", got, u)
	got, err = s.GetUserByUsername(ctx, "zoe")
	must(t, "get by username", err)
	checkEqual(t, "user by username", got, u)
	_, err = s.GetUser(ctx, "nope")
	mustErr(t, "get missing", err, storage.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "ZOE")
	mustErr(t, "usernames are case-sensitive", err, storage.ErrNotFound)
	mustErr(t, "duplicate id", s.CreateUser(ctx, user("u1", "other")), storage.ErrAlreadyExists)

	list, err = s.ListUsers(ctx)
	must(t, "list", err)
	checkOrder(t, "users by username", ids(list, func(u storage.User) string { return u.Username }), "adam", "zoe")

	must(t, "update", s.UpdateUser(ctx, "u1", func(u storage.User) (storage.User, error) {
		u.Disabled = true
		u.PasswordHash = ""
		u.Username = "zoe2"
		return u, nil
	}))
	u.Disabled, u.PasswordHash, u.Username = true, "", "zoe2"
	got, err = s.GetUserByUsername(ctx, "zoe2")
	must(t, "get renamed", err)
	checkEqual(t, "updated user", got, u)
	mustErr(t, "update missing", s.UpdateUser(ctx, "nope", func(u storage.User) (storage.User, error) { return u, nil }), storage.ErrNotFound)

	must(t, "delete", s.DeleteUser(ctx, "u1"))
	mustErr(t, "delete again", s.DeleteUser(ctx, "u1"), storage.ErrNotFound)
	_, err = s.GetUser(ctx, "u1")
	mustErr(t, "get deleted", err, storage.ErrNotFound)
}

func testUserUsernameUnique(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	must(t, "create", s.CreateUser(ctx, user("u1", "alice")))
	must(t, "create", s.CreateUser(ctx, user("u2", "bob")))
	mustErr(t, "duplicate username", s.CreateUser(ctx, user("u3", "alice")), storage.ErrAlreadyExists)
	err := s.UpdateUser(ctx, "u2", func(u storage.User) (storage.User, error) {
		u.Username = "alice"
		return u, nil
	})
	mustErr(t, "rename onto a taken username", err, storage.ErrAlreadyExists)
	got, err := s.GetUser(ctx, "u2")
	must(t, "get", err)
	if got.Username != "bob" {
		t.Fatalf("failed rename changed the username to %q", got.Username)
	}
}

func testUserDeleteCascades(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	for _, u := range []storage.User{user("u1", "alice"), user("u2", "bob")} {
		must(t, "create user", s.CreateUser(ctx, u))
		must(t, "create session", s.CreateSession(ctx, session("s-"+u.ID, u.ID)))
		must(t, "consent", s.PutConsent(ctx, storage.Consent{UserID: u.ID, ClientID: "app"}))
		must(t, "credential", s.CreateCredential(ctx, credential([]byte("cred-"+u.ID), u.ID)))
		r := request(storage.KindRefreshToken, "rt-"+u.ID, "req-"+u.ID)
		r.SessionID = "s-" + u.ID
		must(t, "token", s.CreateRequest(ctx, r))
	}
	must(t, "delete", s.DeleteUser(ctx, "u1"))
	_, err := s.GetSession(ctx, "s-u1")
	mustErr(t, "session of deleted user", err, storage.ErrNotFound)
	_, err = s.GetConsent(ctx, "u1", "app")
	mustErr(t, "consent of deleted user", err, storage.ErrNotFound)
	_, err = s.GetCredential(ctx, []byte("cred-u1"))
	mustErr(t, "credential of deleted user", err, storage.ErrNotFound)
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-u1")
	mustErr(t, "token of deleted user's session", err, storage.ErrNotFound)

	_, err = s.GetSession(ctx, "s-u2")
	must(t, "other user's session survives", err)
	_, err = s.GetCredential(ctx, []byte("cred-u2"))
	must(t, "other user's credential survives", err)
	_, err = s.GetRequest(ctx, storage.KindRefreshToken, "rt-u2")
	must(t, "other user's token survives", err)
}

func session(id, userID string) storage.Session {
	t := base()
	return storage.Session{
		ID: id, UserID: userID, ACR: "phr", AMR: []string{"hwk", "user", "mfa"}, AuthTime: t.Add(time.Minute),
		ElevatedUntil: t.Add(16 * time.Minute), BaseACR: "urn:stepwise:acr:pwd", BaseAMR: []string{"pwd"},
		BaseAuthTime: t, UserAgent: "Mozilla/5.0", IPAddress: "2001:db8::1",
		CreatedAt: t, LastSeenAt: t.Add(2 * time.Minute), ExpiresAt: t.Add(24 * time.Hour),
	}
}

func testSessionCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	x := session("s1", "u1")
	must(t, "create", s.CreateSession(ctx, x))
	mustErr(t, "duplicate", s.CreateSession(ctx, x), storage.ErrAlreadyExists)
	got, err := s.GetSession(ctx, "s1")
	must(t, "get", err)
	checkEqual(t, "session", got, x)
	_, err = s.GetSession(ctx, "nope")
	mustErr(t, "get missing", err, storage.ErrNotFound)

	later := session("s0", "u1")
	later.CreatedAt = base().Add(time.Hour)
	must(t, "create later", s.CreateSession(ctx, later))
	must(t, "create other user", s.CreateSession(ctx, session("s2", "u2")))
	list, err := s.ListUserSessions(ctx, "u1")
	must(t, "list", err)
	checkOrder(t, "sessions oldest first", ids(list, func(x storage.Session) string { return x.ID }), "s1", "s0")
	list, err = s.ListUserSessions(ctx, "nobody")
	must(t, "list none", err)
	if len(list) != 0 {
		t.Fatalf("sessions of unknown user: %v", list)
	}

	// Lapse the elevation: zero times and empty lists must be writable.
	must(t, "update", s.UpdateSession(ctx, "s1", func(x storage.Session) (storage.Session, error) {
		x.ACR, x.AMR, x.AuthTime = x.BaseACR, x.BaseAMR, x.BaseAuthTime
		x.ElevatedUntil, x.BaseACR, x.BaseAMR, x.BaseAuthTime = time.Time{}, "", nil, time.Time{}
		return x, nil
	}))
	want := session("s1", "u1")
	want.ACR, want.AMR, want.AuthTime = want.BaseACR, want.BaseAMR, want.BaseAuthTime
	want.ElevatedUntil, want.BaseACR, want.BaseAMR, want.BaseAuthTime = time.Time{}, "", nil, time.Time{}
	got, err = s.GetSession(ctx, "s1")
	must(t, "get updated", err)
	checkEqual(t, "updated session", got, want)
	mustErr(t, "update missing", s.UpdateSession(ctx, "nope", func(x storage.Session) (storage.Session, error) { return x, nil }), storage.ErrNotFound)

	must(t, "delete", s.DeleteSession(ctx, "s1"))
	mustErr(t, "delete again", s.DeleteSession(ctx, "s1"), storage.ErrNotFound)
}

func testConsentCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	c := storage.Consent{UserID: "u1", ClientID: "b-app", Scopes: []string{"openid", "profile"}, GrantedAt: base()}
	must(t, "put", s.PutConsent(ctx, c))
	got, err := s.GetConsent(ctx, "u1", "b-app")
	must(t, "get", err)
	checkEqual(t, "consent", got, c)

	c.Scopes = []string{"openid"}
	c.GrantedAt = base().Add(time.Hour)
	must(t, "replace", s.PutConsent(ctx, c))
	got, err = s.GetConsent(ctx, "u1", "b-app")
	must(t, "get replaced", err)
	checkEqual(t, "replaced consent", got, c)

	must(t, "put second", s.PutConsent(ctx, storage.Consent{UserID: "u1", ClientID: "a-app"}))
	must(t, "put other user", s.PutConsent(ctx, storage.Consent{UserID: "u2", ClientID: "c-app"}))
	list, err := s.ListUserConsents(ctx, "u1")
	must(t, "list", err)
	checkOrder(t, "consents by client", ids(list, func(c storage.Consent) string { return c.ClientID }), "a-app", "b-app")

	_, err = s.GetConsent(ctx, "u2", "b-app")
	mustErr(t, "get missing", err, storage.ErrNotFound)
	must(t, "delete", s.DeleteConsent(ctx, "u1", "b-app"))
	mustErr(t, "delete again", s.DeleteConsent(ctx, "u1", "b-app"), storage.ErrNotFound)
	list, err = s.ListUserConsents(ctx, "u1")
	must(t, "list after delete", err)
	checkOrder(t, "consents after delete", ids(list, func(c storage.Consent) string { return c.ClientID }), "a-app")
}

func testAuthRequestCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	a := storage.AuthRequest{
		ID: "ar1", ClientID: "app", Form: "response_type=code&scope=openid+payments%3Awrite&state=x",
		Data: []byte(`{"requirement":{"acr":"phr","max_age":300}}`), CreatedAt: base(), ExpiresAt: base().Add(10 * time.Minute),
	}
	must(t, "create", s.CreateAuthRequest(ctx, a))
	mustErr(t, "duplicate", s.CreateAuthRequest(ctx, a), storage.ErrAlreadyExists)
	got, err := s.GetAuthRequest(ctx, "ar1")
	must(t, "get", err)
	checkEqual(t, "auth request", got, a)

	must(t, "update", s.UpdateAuthRequest(ctx, "ar1", func(a storage.AuthRequest) (storage.AuthRequest, error) {
		a.SessionID, a.Outcome = "s1", "denied"
		return a, nil
	}))
	a.SessionID, a.Outcome = "s1", "denied"
	got, err = s.GetAuthRequest(ctx, "ar1")
	must(t, "get updated", err)
	checkEqual(t, "updated auth request", got, a)
	mustErr(t, "update missing", s.UpdateAuthRequest(ctx, "nope", func(a storage.AuthRequest) (storage.AuthRequest, error) { return a, nil }), storage.ErrNotFound)

	must(t, "delete", s.DeleteAuthRequest(ctx, "ar1"))
	mustErr(t, "delete again", s.DeleteAuthRequest(ctx, "ar1"), storage.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "ar1")
	mustErr(t, "get deleted", err, storage.ErrNotFound)
}

func testKeyCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	keys, err := s.ListKeys(ctx)
	must(t, "list empty", err)
	if len(keys) != 0 {
		t.Fatalf("keys of empty store: %v", keys)
	}
	old := storage.SigningKey{ID: "k1", Algorithm: "ES256", Private: []byte{0x30, 0x81, 0x87, 0x00}, CreatedAt: base()}
	newer := storage.SigningKey{ID: "k2", Algorithm: "RS256", Private: []byte{0x30, 0x82}, CreatedAt: base().Add(time.Hour)}
	must(t, "create old", s.CreateKey(ctx, old))
	must(t, "create newer", s.CreateKey(ctx, newer))
	mustErr(t, "duplicate", s.CreateKey(ctx, old), storage.ErrAlreadyExists)
	keys, err = s.ListKeys(ctx)
	must(t, "list", err)
	checkOrder(t, "keys newest first", ids(keys, func(k storage.SigningKey) string { return k.ID }), "k2", "k1")
	checkEqual(t, "key", keys[1], old)

	must(t, "retire", s.UpdateKey(ctx, "k1", func(k storage.SigningKey) (storage.SigningKey, error) {
		k.RetiredAt, k.PublishUntil = base().Add(time.Hour), base().Add(25*time.Hour)
		return k, nil
	}))
	old.RetiredAt, old.PublishUntil = base().Add(time.Hour), base().Add(25*time.Hour)
	keys, err = s.ListKeys(ctx)
	must(t, "list after retire", err)
	checkEqual(t, "retired key", keys[1], old)
	mustErr(t, "update missing", s.UpdateKey(ctx, "nope", func(k storage.SigningKey) (storage.SigningKey, error) { return k, nil }), storage.ErrNotFound)
}

func testRegistrationTokenCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	tok := storage.RegistrationToken{Hash: "9f86d081884c7d659a2feaa0c55ad015", CreatedAt: base(), ExpiresAt: base().Add(24 * time.Hour)}
	must(t, "create", s.CreateRegistrationToken(ctx, tok))
	mustErr(t, "duplicate", s.CreateRegistrationToken(ctx, tok), storage.ErrAlreadyExists)
	got, err := s.GetRegistrationToken(ctx, tok.Hash)
	must(t, "get", err)
	checkEqual(t, "registration token", got, tok)
	must(t, "delete", s.DeleteRegistrationToken(ctx, tok.Hash))
	mustErr(t, "delete again", s.DeleteRegistrationToken(ctx, tok.Hash), storage.ErrNotFound)
	_, err = s.GetRegistrationToken(ctx, tok.Hash)
	mustErr(t, "get deleted", err, storage.ErrNotFound)
}

func testUseJTI(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	now := base()
	must(t, "first use", s.UseJTI(ctx, "jti-1", now.Add(time.Minute), now))
	mustErr(t, "replay", s.UseJTI(ctx, "jti-1", now.Add(time.Minute), now.Add(30*time.Second)), storage.ErrAlreadyExists)
	must(t, "other jti", s.UseJTI(ctx, "jti-2", now.Add(time.Minute), now))
	// Once expired, the jti no longer blocks: the assertion itself has expired
	// and will be refused on its exp, so remembering it is pointless.
	must(t, "reuse after expiry", s.UseJTI(ctx, "jti-1", now.Add(3*time.Minute), now.Add(2*time.Minute)))
	mustErr(t, "replay of the renewed jti", s.UseJTI(ctx, "jti-1", now.Add(5*time.Minute), now.Add(2*time.Minute+time.Second)), storage.ErrAlreadyExists)
}

func credential(id []byte, userID string) storage.Credential {
	return storage.Credential{
		ID: id, UserID: userID, PublicKey: []byte{0xa5, 0x01, 0x02, 0x03, 0x26}, SignCount: 4294967295,
		AAGUID: make([]byte, 16), Transports: []string{"internal", "hybrid"}, BackupEligible: true,
		BackupState: true, UserVerified: true, AttestationFormat: "none", Attestation: []byte{0xa3, 0x63},
		Nickname: "Laptop", CreatedAt: base(), LastUsedAt: base().Add(time.Hour),
	}
}

func testCredentialCRUD(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	// Credential IDs are arbitrary bytes: NUL, invalid UTF-8, high bytes.
	id := []byte{0x00, 0xff, 0xfe, 0x00, 0x80, 'a'}
	c := credential(id, "u1")
	must(t, "create", s.CreateCredential(ctx, c))
	mustErr(t, "duplicate", s.CreateCredential(ctx, credential(append([]byte{}, id...), "u2")), storage.ErrAlreadyExists)
	got, err := s.GetCredential(ctx, append([]byte{}, id...))
	must(t, "get", err)
	checkEqual(t, "credential", got, c)
	_, err = s.GetCredential(ctx, id[:5])
	mustErr(t, "a prefix is another id", err, storage.ErrNotFound)

	second := credential([]byte{0x01}, "u1")
	second.CreatedAt = base().Add(time.Minute)
	second.Transports = nil
	must(t, "create second", s.CreateCredential(ctx, second))
	must(t, "create other user", s.CreateCredential(ctx, credential([]byte{0x02}, "u2")))
	list, err := s.ListUserCredentials(ctx, "u1")
	must(t, "list", err)
	checkOrder(t, "credentials oldest first",
		ids(list, func(c storage.Credential) string { return fmt.Sprintf("%x", c.ID) }), "00fffe008061", "01")
	checkEqual(t, "listed credential", list[1], second)

	must(t, "update", s.UpdateCredential(ctx, id, func(c storage.Credential) (storage.Credential, error) {
		c.SignCount, c.CloneWarning, c.BackupState = 7, true, false
		return c, nil
	}))
	c.SignCount, c.CloneWarning, c.BackupState = 7, true, false
	got, err = s.GetCredential(ctx, id)
	must(t, "get updated", err)
	checkEqual(t, "updated credential", got, c)
	mustErr(t, "update missing", s.UpdateCredential(ctx, []byte("nope"), func(c storage.Credential) (storage.Credential, error) { return c, nil }), storage.ErrNotFound)

	must(t, "delete", s.DeleteCredential(ctx, id))
	mustErr(t, "delete again", s.DeleteCredential(ctx, id), storage.ErrNotFound)
	list, err = s.ListUserCredentials(ctx, "u1")
	must(t, "list after delete", err)
	if len(list) != 1 {
		t.Fatalf("credentials after delete: %d, want 1", len(list))
	}
}

func event(id, typ, userID string, at time.Time) storage.Event {
	return storage.Event{
		ID: id, Type: typ, UserID: userID, ClientID: "app", SessionID: "s1", IPAddress: "192.0.2.7",
		Time: at, Data: []byte(`{"score":42,"factors":[{"name":"new_device","weight":17.5}]}`),
	}
}

func testEventCreateGet(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	e := event("e1", "risk.decision", "u1", base())
	must(t, "create", s.CreateEvent(ctx, e))
	mustErr(t, "duplicate", s.CreateEvent(ctx, e), storage.ErrAlreadyExists)
	got, err := s.GetEvent(ctx, "e1")
	must(t, "get", err)
	checkEqual(t, "event", got, e)
	_, err = s.GetEvent(ctx, "nope")
	mustErr(t, "get missing", err, storage.ErrNotFound)
}

func testEventList(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	list, err := s.ListEvents(ctx, storage.EventFilter{})
	must(t, "list empty", err)
	if len(list) != 0 {
		t.Fatalf("events of empty store: %v", list)
	}
	t0 := base()
	for _, e := range []storage.Event{
		event("e1", "login.success", "u1", t0),
		event("e2", "risk.decision", "u1", t0.Add(1*time.Minute)),
		event("e3", "login.success", "u2", t0.Add(2*time.Minute)),
		event("e4", "risk.decision", "u2", t0.Add(3*time.Minute)),
		event("e5", "login.success", "u1", t0.Add(4*time.Minute)),
		// Same instant as e5: ties break on ID, newest (largest) first.
		event("e6", "login.failure", "u1", t0.Add(4*time.Minute)),
	} {
		must(t, "create "+e.ID, s.CreateEvent(ctx, e))
	}
	eventIDs := func(es []storage.Event) []string { return ids(es, func(e storage.Event) string { return e.ID }) }
	for _, tc := range []struct {
		name   string
		filter storage.EventFilter
		want   []string
	}{
		{"all", storage.EventFilter{}, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{"type", storage.EventFilter{Type: "login.success"}, []string{"e5", "e3", "e1"}},
		{"user", storage.EventFilter{UserID: "u2"}, []string{"e4", "e3"}},
		{"type and user", storage.EventFilter{Type: "login.success", UserID: "u1"}, []string{"e5", "e1"}},
		{"since is inclusive", storage.EventFilter{Since: t0.Add(3 * time.Minute)}, []string{"e6", "e5", "e4"}},
		{"limit", storage.EventFilter{Limit: 2}, []string{"e6", "e5"}},
		{"all filters", storage.EventFilter{Type: "risk.decision", UserID: "u1", Since: t0, Limit: 1}, []string{"e2"}},
		{"no match", storage.EventFilter{UserID: "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListEvents(ctx, tc.filter)
			must(t, "list", err)
			checkOrder(t, "events", eventIDs(list), tc.want...)
		})
	}
	list, err = s.ListEvents(ctx, storage.EventFilter{UserID: "u2", Limit: 1})
	must(t, "list one", err)
	checkEqual(t, "listed event", list[0], event("e4", "risk.decision", "u2", t0.Add(3*time.Minute)))
}

func testEventDefaultLimit(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	// Batch the inserts in one transaction to keep the test fast.
	tctx, err := s.BeginTx(ctx)
	must(t, "begin", err)
	for i := range 105 {
		must(t, "create", s.CreateEvent(tctx, event(fmt.Sprintf("e%03d", i), "login.success", "u1", base().Add(time.Duration(i)*time.Second))))
	}
	must(t, "commit", s.Commit(tctx))
	list, err := s.ListEvents(ctx, storage.EventFilter{})
	must(t, "list", err)
	if len(list) != 100 {
		t.Fatalf("default limit: got %d events, want 100", len(list))
	}
	if list[0].ID != "e104" || list[99].ID != "e005" {
		t.Fatalf("default limit kept %s..%s, want e104..e005", list[0].ID, list[99].ID)
	}
	list, err = s.ListEvents(ctx, storage.EventFilter{Limit: 500})
	must(t, "list all", err)
	if len(list) != 105 {
		t.Fatalf("explicit limit: got %d events, want 105", len(list))
	}
}
