package passkey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

const (
	testIssuer = "https://login.example.com"
	testRPID   = "login.example.com"
	testOrigin = "https://login.example.com"
)

// aaguidICloud is iCloud Keychain's AAGUID; aaguidYubiKey a YubiKey 5's.
var (
	aaguidICloud  = uuid.MustParse("fbfc3007-154e-4ecc-8c0b-6e020557d7bd")
	aaguidYubiKey = uuid.MustParse("ee882879-721c-4913-9775-3dfcce97072a")
)

// testStore is what the tests need from a store: the service's slice plus
// users and the audit log for assertions.
type testStore interface {
	passkey.Store
	CreateUser(ctx context.Context, u storage.User) error
	UpdateUser(ctx context.Context, id string, update func(storage.User) (storage.User, error)) error
	ListEvents(ctx context.Context, f storage.EventFilter) ([]storage.Event, error)
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	t     testing.TB
	ctx   context.Context
	svc   *passkey.Service
	store testStore
	clock *clock
}

// newFixture builds a Service on a fresh SQLite store. edit may adjust the
// config.
func newFixture(t testing.TB, edit func(*passkey.Config)) *fixture {
	t.Helper()
	return newFixtureOn(t, storagetest.SQLite(t), edit)
}

func newFixtureOn(t testing.TB, store testStore, edit func(*passkey.Config)) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	cfg := passkey.Config{Issuer: testIssuer, Now: clk.Now}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := passkey.New(cfg, store, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{t: t, ctx: context.Background(), svc: svc, store: store, clock: clk}
}

func (f *fixture) user(name string) storage.User {
	f.t.Helper()
	u := storage.User{ID: uuid.NewString(), Username: name, DisplayName: name, CreatedAt: f.clock.Now()}
	if err := f.store.CreateUser(f.ctx, u); err != nil {
		f.t.Fatalf("create user: %v", err)
	}
	return u
}

// enrol registers a new software passkey for u with the given flags.
func (f *fixture) enrol(u storage.User, aaguid uuid.UUID, flags softauth.Flags) *softauth.Authenticator {
	f.t.Helper()
	a, err := softauth.New(testRPID, testOrigin, aaguid)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.svc.BeginRegistration(f.ctx, u.ID)
	if err != nil {
		f.t.Fatalf("BeginRegistration: %v", err)
	}
	body, err := a.Register(c.Options, flags)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(f.ctx, u.ID, passkey.Response{State: c.State, Credential: body}, ""); err != nil {
		f.t.Fatalf("FinishRegistration: %v", err)
	}
	return a
}

// login runs a discoverable login with a.
func (f *fixture) login(a *softauth.Authenticator, flags softauth.Flags) (passkey.Result, error) {
	f.t.Helper()
	c, err := f.svc.BeginLogin(f.ctx)
	if err != nil {
		f.t.Fatalf("BeginLogin: %v", err)
	}
	body, err := a.Assert(c.Options, flags)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.svc.FinishLogin(f.ctx, passkey.Response{State: c.State, Credential: body})
}

// stepUp runs a step-up for u bound to request with a.
func (f *fixture) stepUp(u storage.User, request string, a *softauth.Authenticator, flags softauth.Flags) (passkey.Result, error) {
	f.t.Helper()
	c, err := f.svc.BeginStepUp(f.ctx, u.ID, request)
	if err != nil {
		f.t.Fatalf("BeginStepUp: %v", err)
	}
	body, err := a.Assert(c.Options, flags)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.svc.FinishStepUp(f.ctx, u.ID, request, passkey.Response{State: c.State, Credential: body})
}

func (f *fixture) credential(a *softauth.Authenticator) storage.Credential {
	f.t.Helper()
	c, err := f.store.GetCredential(f.ctx, a.CredentialID())
	if err != nil {
		f.t.Fatalf("GetCredential: %v", err)
	}
	return c
}

// events returns the audit events of a type, newest first, decoded.
func (f *fixture) events(typ string) []map[string]any {
	f.t.Helper()
	evs, err := f.store.ListEvents(f.ctx, storage.EventFilter{Type: typ})
	if err != nil {
		f.t.Fatalf("ListEvents: %v", err)
	}
	out := make([]map[string]any, len(evs))
	for i, e := range evs {
		m := map[string]any{}
		if err := json.Unmarshal(e.Data, &m); err != nil {
			f.t.Fatalf("event %s data: %v", e.ID, err)
		}
		m["_user"] = e.UserID
		out[i] = m
	}
	return out
}

// memStore is a small in-memory Store for the benchmark, so that it measures
// the ceremonies rather than SQLite.
type memStore struct {
	mu     sync.Mutex
	users  map[string]storage.User
	creds  map[string]storage.Credential
	jtis   map[string]time.Time
	events []storage.Event
}

func newMemStore() *memStore {
	return &memStore{users: map[string]storage.User{}, creds: map[string]storage.Credential{}, jtis: map[string]time.Time{}}
}

func (m *memStore) CreateUser(_ context.Context, u storage.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.ID] = u
	return nil
}

func (m *memStore) GetUser(_ context.Context, id string) (storage.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return u, fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
	}
	return u, nil
}

func (m *memStore) UpdateUser(_ context.Context, id string, update func(storage.User) (storage.User, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return storage.ErrNotFound
	}
	u, err := update(u)
	if err == nil {
		m.users[id] = u
	}
	return err
}

func (m *memStore) CreateCredential(_ context.Context, c storage.Credential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.creds[string(c.ID)]; ok {
		return storage.ErrAlreadyExists
	}
	m.creds[string(c.ID)] = c
	return nil
}

func (m *memStore) GetCredential(_ context.Context, id []byte) (storage.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[string(id)]
	if !ok {
		return c, storage.ErrNotFound
	}
	return c, nil
}

func (m *memStore) ListUserCredentials(_ context.Context, userID string) ([]storage.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Credential
	for _, c := range m.creds {
		if c.UserID == userID {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b storage.Credential) int { return bytes.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memStore) UpdateCredential(_ context.Context, id []byte, update func(storage.Credential) (storage.Credential, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[string(id)]
	if !ok {
		return storage.ErrNotFound
	}
	c, err := update(c)
	if err != nil {
		return err
	}
	m.creds[string(id)] = c
	return nil
}

func (m *memStore) DeleteCredential(_ context.Context, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.creds[string(id)]; !ok {
		return storage.ErrNotFound
	}
	delete(m.creds, string(id))
	return nil
}

func (m *memStore) CreateEvent(_ context.Context, e storage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

func (m *memStore) ListEvents(_ context.Context, f storage.EventFilter) ([]storage.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Event
	for _, e := range slices.Backward(m.events) {
		if f.Type == "" || f.Type == e.Type {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memStore) UseJTI(_ context.Context, jti string, expiresAt, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.jtis[jti]; ok && exp.After(now) {
		return storage.ErrAlreadyExists
	}
	m.jtis[jti] = expiresAt
	return nil
}

// resetEvents drops recorded events so a benchmark does not grow memory.
func (m *memStore) resetEvents() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = m.events[:0]
}
