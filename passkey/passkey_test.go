package passkey_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        passkey.Config
		wantErr    string
		wantRPID   string
		wantOrigin string
	}{
		{name: "localhost", cfg: passkey.Config{Issuer: "http://localhost:8080"}, wantRPID: "localhost", wantOrigin: "http://localhost:8080"},
		{name: "https with path", cfg: passkey.Config{Issuer: "https://Login.Example.com/idp"}, wantRPID: "login.example.com", wantOrigin: "https://login.example.com"},
		{name: "ipv4", cfg: passkey.Config{Issuer: "http://127.0.0.1:8080"}, wantErr: "IP address"},
		{name: "ipv6", cfg: passkey.Config{Issuer: "https://[::1]:8443"}, wantErr: "IP address"},
		{name: "plain http off localhost", cfg: passkey.Config{Issuer: "http://example.com"}, wantErr: "only on localhost"},
		{name: "not a URL", cfg: passkey.Config{Issuer: "login.example.com"}, wantErr: "not an absolute"},
		{name: "single label", cfg: passkey.Config{Issuer: "https://intranet"}, wantErr: "RP ID"},
		{name: "attestation", cfg: passkey.Config{Issuer: testIssuer, Attestation: "enterprise"}, wantErr: "attestation"},
		{name: "direct attestation", cfg: passkey.Config{Issuer: testIssuer, Attestation: "direct"}, wantRPID: testRPID, wantOrigin: testOrigin},
		{name: "short ladder", cfg: passkey.Config{Issuer: testIssuer, Ladder: []string{"a", "b", "c"}}, wantErr: "want 4"},
		{name: "duplicate ladder", cfg: passkey.Config{Issuer: testIssuer, Ladder: []string{"a", "b", "b", "c"}}, wantErr: "twice"},
		{name: "ttl too long", cfg: passkey.Config{Issuer: testIssuer, ChallengeTTL: time.Hour}, wantErr: "TTL"},
		{name: "ttl too short", cfg: passkey.Config{Issuer: testIssuer, ChallengeTTL: time.Second}, wantErr: "TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := passkey.New(tt.cfg, newMemStore(), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if s.RPID() != tt.wantRPID || s.Origin() != tt.wantOrigin {
				t.Errorf("RP ID, origin = %q, %q; want %q, %q", s.RPID(), s.Origin(), tt.wantRPID, tt.wantOrigin)
			}
		})
	}
}

// options is the subset of the WebAuthn options JSON the tests inspect.
type options struct {
	Mediation string `json:"mediation"`
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		Attestation            string `json:"attestation"`
		UserVerification       string `json:"userVerification"`
		AuthenticatorSelection struct {
			ResidentKey        string `json:"residentKey"`
			RequireResidentKey bool   `json:"requireResidentKey"`
			UserVerification   string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Extensions         map[string]any `json:"extensions"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		Timeout int `json:"timeout"`
	} `json:"publicKey"`
}

func decodeOptions(t *testing.T, raw []byte) options {
	t.Helper()
	var o options
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options: %v\n%s", err, raw)
	}
	return o
}

func TestRegistration(t *testing.T) {
	f := newFixture(t, func(c *passkey.Config) { c.Attestation = passkey.AttestationDirect })
	alice := f.user("alice")

	first := f.enrol(alice, aaguidICloud, softauth.Synced)
	c := f.credential(first)
	if c.UserID != alice.ID || c.AttestationFormat != "none" || !c.BackupEligible || !c.BackupState || !c.UserVerified ||
		c.SignCount != 1 || !bytes.Equal(c.AAGUID, aaguidICloud[:]) || len(c.PublicKey) == 0 || len(c.Attestation) == 0 {
		t.Errorf("stored credential = %+v", c)
	}
	if !slices.Equal(c.Transports, []string{"internal", "hybrid"}) {
		t.Errorf("transports = %v", c.Transports)
	}
	if c.Nickname != "iCloud Keychain" {
		t.Errorf("default nickname = %q, want the authenticator's name", c.Nickname)
	}
	if !c.CreatedAt.Equal(f.clock.Now()) || !c.LastUsedAt.IsZero() {
		t.Errorf("created, last used = %v, %v", c.CreatedAt, c.LastUsedAt)
	}
	if ev := f.events(passkey.EventRegistered); len(ev) != 1 || ev[0]["_user"] != alice.ID || ev[0]["authenticator"] != "iCloud Keychain" {
		t.Errorf("registered events = %v", ev)
	}

	// The second enrolment excludes the first passkey and asks for what
	// usernameless login needs.
	cer, err := f.svc.BeginRegistration(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	o := decodeOptions(t, cer.Options)
	sel := o.PublicKey.AuthenticatorSelection
	if sel.ResidentKey != "required" || !sel.RequireResidentKey || sel.UserVerification != "preferred" {
		t.Errorf("authenticatorSelection = %+v", sel)
	}
	if o.PublicKey.Attestation != "direct" || o.PublicKey.RP.ID != testRPID {
		t.Errorf("attestation, rp.id = %q, %q", o.PublicKey.Attestation, o.PublicKey.RP.ID)
	}
	if _, ok := o.PublicKey.Extensions["credProps"]; !ok {
		t.Errorf("credProps not requested: %v", o.PublicKey.Extensions)
	}
	if len(o.PublicKey.ExcludeCredentials) != 1 || o.PublicKey.ExcludeCredentials[0].ID != passkey.EncodeID(first.CredentialID()) {
		t.Errorf("excludeCredentials = %+v", o.PublicKey.ExcludeCredentials)
	}
	if want := 3 * time.Minute; !cer.ExpiresAt.Equal(f.clock.Now().Add(want)) || o.PublicKey.Timeout != int(want.Milliseconds()) {
		t.Errorf("expiry = %v, timeout = %d", cer.ExpiresAt, o.PublicKey.Timeout)
	}

	// A nickname given at registration is kept; a device-bound key is
	// reported as such.
	key, err := softauth.New(testRPID, testOrigin, aaguidYubiKey)
	if err != nil {
		t.Fatal(err)
	}
	body, err := key.Register(cer.Options, softauth.DeviceBound)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.FinishRegistration(f.ctx, alice.ID, passkey.Response{State: cer.State, Credential: body}, "  Desk key ")
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if p.Nickname != "Desk key" || !p.DeviceBound || p.Synced || p.Authenticator != "YubiKey 5 Series" || p.AAGUID != aaguidYubiKey.String() {
		t.Errorf("passkey = %+v", p)
	}

	// The same authenticator cannot be registered twice.
	cer, err = f.svc.BeginRegistration(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err = key.Register(cer.Options, softauth.DeviceBound)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(f.ctx, alice.ID, passkey.Response{State: cer.State, Credential: body}, ""); !errors.Is(err, passkey.ErrAlreadyRegistered) {
		t.Errorf("duplicate registration: err = %v, want ErrAlreadyRegistered", err)
	}
}

func TestRegistrationRejected(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(f *fixture, a *softauth.Authenticator, c *passkey.Ceremony, userID *string)
		wantErr error
	}{
		{"wrong origin", func(_ *fixture, a *softauth.Authenticator, _ *passkey.Ceremony, _ *string) {
			a.Origin = "https://login.example.com.evil.test"
		}, passkey.ErrOriginMismatch},
		{"wrong RP ID", func(_ *fixture, a *softauth.Authenticator, _ *passkey.Ceremony, _ *string) {
			a.RPID = "example.org"
		}, passkey.ErrRPIDMismatch},
		{"expired", func(f *fixture, _ *softauth.Authenticator, _ *passkey.Ceremony, _ *string) {
			f.clock.Advance(3*time.Minute + time.Second)
		}, passkey.ErrChallengeExpired},
		{"another user's state", func(f *fixture, _ *softauth.Authenticator, _ *passkey.Ceremony, userID *string) {
			*userID = f.user("mallory").ID
		}, passkey.ErrBadState},
		{"login state", func(f *fixture, _ *softauth.Authenticator, c *passkey.Ceremony, _ *string) {
			l, err := f.svc.BeginLogin(f.ctx)
			if err != nil {
				f.t.Fatal(err)
			}
			c.State = l.State
		}, passkey.ErrBadState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			u := f.user("alice")
			a, err := softauth.New(testRPID, testOrigin, uuid.Nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.svc.BeginRegistration(f.ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			userID := u.ID
			tt.tamper(f, a, &c, &userID)
			body, err := a.Register(c.Options, softauth.Synced)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.FinishRegistration(f.ctx, userID, passkey.Response{State: c.State, Credential: body}, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if creds, _ := f.store.ListUserCredentials(f.ctx, u.ID); len(creds) != 0 {
				t.Errorf("a rejected registration stored %d passkeys", len(creds))
			}
			ev := f.events(passkey.EventRejected)
			if len(ev) != 1 || ev[0]["ceremony"] != "registration" || ev[0]["reason"] != passkey.Reason(tt.wantErr) {
				t.Errorf("rejected events = %v", ev)
			}
		})
	}
}

func TestLoginEarnsAssurance(t *testing.T) {
	tests := []struct {
		name      string
		rule      passkey.DeviceBoundRule
		aaguid    uuid.UUID
		enrol     softauth.Flags
		assert    softauth.Flags
		wantLevel passkey.Level
		wantACR   string
		wantAMR   []string
	}{
		{name: "synced, presence only", enrol: softauth.Synced, assert: softauth.UP | softauth.BE | softauth.BS,
			wantLevel: passkey.LevelPasskey, wantACR: "urn:stepwise:acr:passkey", wantAMR: []string{"swk"}},
		{name: "synced, verified", enrol: softauth.Synced, assert: softauth.Synced,
			wantLevel: passkey.LevelVerifiedPasskey, wantACR: "phr", wantAMR: []string{"swk", "user", "mfa"}},
		{name: "backup eligible but not backed up, verified", enrol: softauth.UP | softauth.UV | softauth.BE, assert: softauth.UP | softauth.UV | softauth.BE,
			wantLevel: passkey.LevelVerifiedPasskey, wantACR: "phr", wantAMR: []string{"swk", "user", "mfa"}},
		{name: "device-bound, presence only", enrol: softauth.DeviceBound, assert: softauth.UP,
			wantLevel: passkey.LevelPasskey, wantACR: "urn:stepwise:acr:passkey", wantAMR: []string{"hwk"}},
		{name: "device-bound, verified", enrol: softauth.DeviceBound, assert: softauth.DeviceBound,
			wantLevel: passkey.LevelDeviceBoundPasskey, wantACR: "phrh", wantAMR: []string{"hwk", "user", "mfa"}},
		{name: "verified at enrolment, not now", enrol: softauth.DeviceBound, assert: softauth.UP,
			wantLevel: passkey.LevelPasskey, wantACR: "urn:stepwise:acr:passkey", wantAMR: []string{"hwk"}},
		{name: "rule demands attestation", rule: passkey.DeviceBoundRule{RequireAttestation: true}, enrol: softauth.DeviceBound, assert: softauth.DeviceBound,
			wantLevel: passkey.LevelVerifiedPasskey, wantACR: "phr", wantAMR: []string{"hwk", "user", "mfa"}},
		{name: "rule lists the model", rule: passkey.DeviceBoundRule{AAGUIDs: []uuid.UUID{aaguidYubiKey}}, aaguid: aaguidYubiKey, enrol: softauth.DeviceBound, assert: softauth.DeviceBound,
			wantLevel: passkey.LevelDeviceBoundPasskey, wantACR: "phrh", wantAMR: []string{"hwk", "user", "mfa"}},
		{name: "rule lists another model", rule: passkey.DeviceBoundRule{AAGUIDs: []uuid.UUID{aaguidYubiKey}}, aaguid: aaguidICloud, enrol: softauth.DeviceBound, assert: softauth.DeviceBound,
			wantLevel: passkey.LevelVerifiedPasskey, wantACR: "phr", wantAMR: []string{"hwk", "user", "mfa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *passkey.Config) { c.DeviceBound = tt.rule })
			u := f.user("alice")
			a := f.enrol(u, tt.aaguid, tt.enrol)
			f.clock.Advance(time.Minute)
			res, err := f.login(a, tt.assert)
			if err != nil {
				t.Fatalf("FinishLogin: %v", err)
			}
			if res.UserID != u.ID || !bytes.Equal(res.CredentialID, a.CredentialID()) {
				t.Errorf("user, credential = %q, %x", res.UserID, res.CredentialID)
			}
			if res.Level != tt.wantLevel || res.ACR != tt.wantACR || !slices.Equal(res.AMR, tt.wantAMR) {
				t.Errorf("earned level %d acr %q amr %v; want %d %q %v", res.Level, res.ACR, res.AMR, tt.wantLevel, tt.wantACR, tt.wantAMR)
			}
			if !res.AuthTime.Equal(f.clock.Now()) || res.UserVerified != (tt.assert&softauth.UV != 0) {
				t.Errorf("auth time %v, UV %v", res.AuthTime, res.UserVerified)
			}
			c := f.credential(a)
			if c.SignCount != 2 || !c.LastUsedAt.Equal(f.clock.Now()) || c.BackupState != (tt.assert&softauth.BS != 0) {
				t.Errorf("after login: sign count %d, last used %v, BS %v", c.SignCount, c.LastUsedAt, c.BackupState)
			}
			if c.UserVerified != (tt.enrol&softauth.UV != 0 || tt.assert&softauth.UV != 0) {
				t.Errorf("UV latch = %v", c.UserVerified)
			}
		})
	}
}

func TestLoginCustomLadder(t *testing.T) {
	ladder := []string{"l0", "l1", "l2", "l3"}
	f := newFixture(t, func(c *passkey.Config) { c.Ladder = ladder })
	u := f.user("alice")
	for i, flags := range []softauth.Flags{softauth.UP, softauth.DeviceBound} {
		a := f.enrol(u, uuid.Nil, softauth.DeviceBound)
		res, err := f.login(a, flags)
		if err != nil {
			t.Fatal(err)
		}
		if want := ladder[1+2*i]; res.ACR != want {
			t.Errorf("flags %#x: acr = %q, want %q", flags, res.ACR, want)
		}
	}
}

func TestLoginOptions(t *testing.T) {
	f := newFixture(t, nil)
	u := f.user("alice")
	a := f.enrol(u, uuid.Nil, softauth.Synced)

	for _, tt := range []struct {
		name          string
		begin         func() (passkey.Ceremony, error)
		wantMediation string
	}{
		{"modal", func() (passkey.Ceremony, error) { return f.svc.BeginLogin(f.ctx) }, ""},
		{"conditional", func() (passkey.Ceremony, error) { return f.svc.BeginConditionalLogin(f.ctx) }, "conditional"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.begin()
			if err != nil {
				t.Fatal(err)
			}
			o := decodeOptions(t, c.Options)
			if o.Mediation != tt.wantMediation || o.PublicKey.UserVerification != "preferred" ||
				len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.RPID != testRPID || len(o.PublicKey.Challenge) < 43 {
				t.Errorf("options = %s", c.Options)
			}
			body, err := a.Assert(c.Options, softauth.Synced)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.svc.FinishLogin(f.ctx, passkey.Response{State: c.State, Credential: body})
			if err != nil || res.UserID != u.ID {
				t.Fatalf("FinishLogin = %+v, %v", res, err)
			}
		})
	}
}

func TestStepUp(t *testing.T) {
	f := newFixture(t, nil)
	u := f.user("alice")
	phone := f.enrol(u, aaguidICloud, softauth.Synced)
	key := f.enrol(u, aaguidYubiKey, softauth.DeviceBound)

	c, err := f.svc.BeginStepUp(f.ctx, u.ID, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	o := decodeOptions(t, c.Options)
	if o.PublicKey.UserVerification != "required" {
		t.Errorf("userVerification = %q, want required", o.PublicKey.UserVerification)
	}
	var allowed []string
	for _, ac := range o.PublicKey.AllowCredentials {
		allowed = append(allowed, ac.ID)
	}
	slices.Sort(allowed)
	want := []string{passkey.EncodeID(phone.CredentialID()), passkey.EncodeID(key.CredentialID())}
	slices.Sort(want)
	if !slices.Equal(allowed, want) {
		t.Errorf("allowCredentials = %v, want %v", allowed, want)
	}
	body, err := phone.Assert(c.Options, softauth.Synced)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.FinishStepUp(f.ctx, u.ID, "req-1", passkey.Response{State: c.State, Credential: body})
	if err != nil {
		t.Fatalf("FinishStepUp: %v", err)
	}
	if res.ACR != "phr" || res.RequestID != "req-1" || res.UserID != u.ID {
		t.Errorf("result = %+v", res)
	}

	res, err = f.stepUp(u, "req-2", key, softauth.DeviceBound)
	if err != nil || res.ACR != "phrh" || !slices.Equal(res.AMR, []string{"hwk", "user", "mfa"}) {
		t.Errorf("device-bound step-up = %+v, %v", res, err)
	}

	if _, err := f.svc.BeginStepUp(f.ctx, f.user("bob").ID, "req-3"); !errors.Is(err, passkey.ErrNoPasskeys) {
		t.Errorf("step-up without passkeys: err = %v, want ErrNoPasskeys", err)
	}
	if _, err := f.svc.BeginStepUp(f.ctx, u.ID, ""); err == nil {
		t.Error("step-up without a request ID was begun")
	}
}

// TestRejectedAssertions tampers with login and step-up ceremonies; each
// must fail with its sentinel and leave a "passkey.rejected" audit record.
func TestRejectedAssertions(t *testing.T) {
	type env struct {
		f     *fixture
		alice storage.User
		bob   storage.User
		a     *softauth.Authenticator // alice's synced passkey
		b     *softauth.Authenticator // bob's passkey
	}
	finishLogin := func(e *env, c passkey.Ceremony, body []byte) error {
		_, err := e.f.svc.FinishLogin(e.f.ctx, passkey.Response{State: c.State, Credential: body})
		return err
	}
	login := func(e *env, a *softauth.Authenticator, flags softauth.Flags) error {
		c, err := e.f.svc.BeginLogin(e.f.ctx)
		if err != nil {
			e.f.t.Fatal(err)
		}
		body, err := a.Assert(c.Options, flags)
		if err != nil {
			e.f.t.Fatal(err)
		}
		return finishLogin(e, c, body)
	}
	stepUp := func(e *env, a *softauth.Authenticator, begunFor, finishedFor string, flags softauth.Flags) error {
		c, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, begunFor)
		if err != nil {
			e.f.t.Fatal(err)
		}
		body, err := a.Assert(c.Options, flags)
		if err != nil {
			e.f.t.Fatal(err)
		}
		_, err = e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, finishedFor, passkey.Response{State: c.State, Credential: body})
		return err
	}

	tests := []struct {
		name       string
		run        func(e *env) error
		wantErr    error
		wantEvents int // passkey.rejected records; default 1
	}{
		{name: "wrong origin", wantErr: passkey.ErrOriginMismatch, run: func(e *env) error {
			e.a.Origin = "https://evil.example.net"
			return login(e, e.a, softauth.Synced)
		}},
		{name: "wrong origin scheme", wantErr: passkey.ErrOriginMismatch, run: func(e *env) error {
			e.a.Origin = "http://login.example.com"
			return login(e, e.a, softauth.Synced)
		}},
		{name: "wrong RP ID", wantErr: passkey.ErrRPIDMismatch, run: func(e *env) error {
			e.a.RPID = "example.com"
			return login(e, e.a, softauth.Synced)
		}},
		{name: "state finished twice", wantErr: passkey.ErrChallengeUsed, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			if err := finishLogin(e, c, body); err != nil {
				e.f.t.Fatalf("first finish: %v", err)
			}
			return finishLogin(e, c, body)
		}},
		{name: "assertion replayed into a new ceremony", wantErr: passkey.ErrChallengeMismatch, run: func(e *env) error {
			old, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(old.Options, softauth.Synced)
			if err != nil {
				return err
			}
			if err := finishLogin(e, old, body); err != nil {
				e.f.t.Fatalf("first finish: %v", err)
			}
			fresh, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			return finishLogin(e, fresh, body)
		}},
		{name: "expired challenge", wantErr: passkey.ErrChallengeExpired, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			e.f.clock.Advance(3 * time.Minute)
			return finishLogin(e, c, body)
		}},
		{name: "tampered state", wantErr: passkey.ErrBadState, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			c.State = c.State[:len(c.State)/2]
			return finishLogin(e, c, body)
		}},
		{name: "malformed response", wantErr: passkey.ErrMalformedResponse, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			return finishLogin(e, c, []byte(`{"id":"AAAA","type":"public-key","response":{}}`))
		}},
		{name: "bad signature", wantErr: passkey.ErrVerificationFailed, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			err = finishLogin(e, c, tamperSignature(e.f.t, body))
			if c := e.f.credential(e.a); c.SignCount != 1 || !c.LastUsedAt.IsZero() {
				e.f.t.Errorf("a forged assertion updated the passkey: %+v", c)
			}
			return err
		}},
		{name: "backup eligibility changed", wantErr: passkey.ErrVerificationFailed, run: func(e *env) error {
			return login(e, e.a, softauth.UP|softauth.UV)
		}},
		{name: "deleted credential", wantErr: passkey.ErrUnknownCredential, run: func(e *env) error {
			if err := e.f.svc.Delete(e.f.ctx, e.alice.ID, e.a.CredentialID(), passkey.RequestInfo{}); err != nil {
				e.f.t.Fatal(err)
			}
			return login(e, e.a, softauth.Synced)
		}},
		{name: "user handle of another user", wantErr: passkey.ErrCredentialNotAllowed, run: func(e *env) error {
			e.a.UserHandle = []byte(e.bob.ID)
			return login(e, e.a, softauth.Synced)
		}},
		{name: "disabled user", wantErr: passkey.ErrUserDisabled, run: func(e *env) error {
			err := e.f.store.UpdateUser(e.f.ctx, e.alice.ID, func(u storage.User) (storage.User, error) {
				u.Disabled = true
				return u, nil
			})
			if err != nil {
				e.f.t.Fatal(err)
			}
			return login(e, e.a, softauth.Synced)
		}},
		{name: "sign-count regression", wantErr: passkey.ErrCloneDetected, wantEvents: 2, run: func(e *env) error {
			if err := login(e, e.a, softauth.Synced); err != nil { // counter 2
				e.f.t.Fatal(err)
			}
			e.a.Counter = 1 // the clone signs with 2 again
			err := login(e, e.a, softauth.Synced)
			if !errors.Is(err, passkey.ErrCloneDetected) {
				return err
			}
			c := e.f.credential(e.a)
			if !c.CloneWarning || c.SignCount != 2 {
				e.f.t.Errorf("after regression: clone warning %v, sign count %d", c.CloneWarning, c.SignCount)
			}
			if ev := e.f.events(passkey.EventCloneWarning); len(ev) != 1 || ev[0]["stored_count"] != 2.0 || ev[0]["received_count"] != 2.0 {
				e.f.t.Errorf("clone events = %v", ev)
			}
			// The marked passkey is refused afterwards, even with a
			// counter that moved on, and is not offered for step-up.
			e.a.Counter = 10
			if err := login(e, e.a, softauth.Synced); !errors.Is(err, passkey.ErrCloneDetected) {
				e.f.t.Errorf("login with a marked passkey: err = %v", err)
			}
			if _, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, "req"); !errors.Is(err, passkey.ErrNoPasskeys) {
				e.f.t.Errorf("step-up with only a marked passkey: err = %v", err)
			}
			return err
		}},
		{name: "step-up without user verification", wantErr: passkey.ErrUserVerificationRequired, run: func(e *env) error {
			return stepUp(e, e.a, "req-1", "req-1", softauth.UP|softauth.BE|softauth.BS)
		}},
		{name: "step-up bound to another request", wantErr: passkey.ErrRequestMismatch, run: func(e *env) error {
			return stepUp(e, e.a, "req-1", "req-2", softauth.Synced)
		}},
		{name: "step-up with another user's passkey", wantErr: passkey.ErrCredentialNotAllowed, run: func(e *env) error {
			return stepUp(e, e.b, "req-1", "req-1", softauth.Synced)
		}},
		{name: "step-up with another user's passkey and alice's handle", wantErr: passkey.ErrCredentialNotAllowed, run: func(e *env) error {
			e.b.UserHandle = []byte(e.alice.ID)
			return stepUp(e, e.b, "req-1", "req-1", softauth.Synced)
		}},
		{name: "step-up with a passkey enrolled after begin", wantErr: passkey.ErrCredentialNotAllowed, run: func(e *env) error {
			c, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, "req-1")
			if err != nil {
				return err
			}
			late := e.f.enrol(e.alice, uuid.Nil, softauth.Synced)
			body, err := late.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			_, err = e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, "req-1", passkey.Response{State: c.State, Credential: body})
			return err
		}},
		{name: "step-up with a login state", wantErr: passkey.ErrBadState, run: func(e *env) error {
			c, err := e.f.svc.BeginLogin(e.f.ctx)
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			_, err = e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, "req-1", passkey.Response{State: c.State, Credential: body})
			return err
		}},
		{name: "step-up state of another user's session", wantErr: passkey.ErrBadState, run: func(e *env) error {
			c, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, "req-1")
			if err != nil {
				return err
			}
			body, err := e.b.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			_, err = e.f.svc.FinishStepUp(e.f.ctx, e.bob.ID, "req-1", passkey.Response{State: c.State, Credential: body})
			return err
		}},
		{name: "step-up replayed", wantErr: passkey.ErrChallengeUsed, run: func(e *env) error {
			c, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, "req-1")
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			r := passkey.Response{State: c.State, Credential: body}
			if _, err := e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, "req-1", r); err != nil {
				e.f.t.Fatalf("first finish: %v", err)
			}
			_, err = e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, "req-1", r)
			return err
		}},
		{name: "step-up expired", wantErr: passkey.ErrChallengeExpired, run: func(e *env) error {
			c, err := e.f.svc.BeginStepUp(e.f.ctx, e.alice.ID, "req-1")
			if err != nil {
				return err
			}
			body, err := e.a.Assert(c.Options, softauth.Synced)
			if err != nil {
				return err
			}
			e.f.clock.Advance(5 * time.Minute)
			_, err = e.f.svc.FinishStepUp(e.f.ctx, e.alice.ID, "req-1", passkey.Response{State: c.State, Credential: body})
			return err
		}},
		{name: "step-up from a foreign origin", wantErr: passkey.ErrOriginMismatch, run: func(e *env) error {
			e.a.Origin = "https://phish.example"
			return stepUp(e, e.a, "req-1", "req-1", softauth.Synced)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			e := &env{f: f, alice: f.user("alice"), bob: f.user("bob")}
			e.a = f.enrol(e.alice, aaguidICloud, softauth.Synced)
			e.b = f.enrol(e.bob, uuid.Nil, softauth.Synced)

			err := tt.run(e)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			t.Logf("rejected: %v", err)
			if msg := err.Error(); !strings.HasPrefix(msg, "passkey ") || len(msg) < 30 {
				t.Errorf("error %q lacks context", msg)
			}
			want := tt.wantEvents
			if want == 0 {
				want = 1
			}
			ev := f.events(passkey.EventRejected)
			if len(ev) != want {
				t.Fatalf("got %d %s events, want %d: %v", len(ev), passkey.EventRejected, want, ev)
			}
			if ev[0]["reason"] != passkey.Reason(tt.wantErr) || ev[0]["error"] == "" {
				t.Errorf("newest rejection = %v, want reason %q", ev[0], passkey.Reason(tt.wantErr))
			}
		})
	}
}

// tamperSignature flips a bit of the signature in an assertion.
func tamperSignature(t testing.TB, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	resp := m["response"].(map[string]any)
	sig := []byte(resp["signature"].(string))
	// Changing a middle character of the base64url text changes the DER
	// bytes without breaking the encoding.
	i := len(sig) / 2
	if sig[i] == 'A' {
		sig[i] = 'B'
	} else {
		sig[i] = 'A'
	}
	resp["signature"] = string(sig)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackupStateChange(t *testing.T) {
	f := newFixture(t, nil)
	u := f.user("alice")
	a := f.enrol(u, aaguidICloud, softauth.UP|softauth.UV|softauth.BE) // eligible, not yet backed up
	res, err := f.login(a, softauth.Synced)
	if err != nil {
		t.Fatal(err)
	}
	if !res.BackupState || !f.credential(a).BackupState {
		t.Error("backup state not updated")
	}
	ev := f.events(passkey.EventBackupStateChanged)
	if len(ev) != 1 || ev[0]["from"] != false || ev[0]["to"] != true || ev[0]["_user"] != u.ID {
		t.Errorf("backup state events = %v", ev)
	}
	if _, err := f.login(a, softauth.Synced); err != nil {
		t.Fatal(err)
	}
	if ev := f.events(passkey.EventBackupStateChanged); len(ev) != 1 {
		t.Errorf("an unchanged backup state was recorded again: %v", ev)
	}
}

func TestZeroCounter(t *testing.T) {
	// Synced providers report a counter of zero forever; that is no clone.
	f := newFixture(t, nil)
	u := f.user("alice")
	a, err := softauth.New(testRPID, testOrigin, aaguidICloud)
	if err != nil {
		t.Fatal(err)
	}
	a.FixedCounter = true
	c, err := f.svc.BeginRegistration(f.ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.Register(c.Options, softauth.Synced)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(f.ctx, u.ID, passkey.Response{State: c.State, Credential: body}, ""); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.login(a, softauth.Synced); err != nil {
			t.Fatalf("login with a zero counter: %v", err)
		}
	}
	if c := f.credential(a); c.CloneWarning || c.SignCount != 0 {
		t.Errorf("credential = %+v", c)
	}
}

func TestManage(t *testing.T) {
	f := newFixture(t, nil)
	alice, bob := f.user("alice"), f.user("bob")
	a1 := f.enrol(alice, aaguidICloud, softauth.Synced)
	f.clock.Advance(time.Second)
	a2 := f.enrol(alice, aaguidYubiKey, softauth.DeviceBound)
	b1 := f.enrol(bob, uuid.Nil, softauth.Synced)
	info := passkey.RequestInfo{IPAddress: "192.0.2.1", SessionID: "sess-1"}

	list, err := f.svc.List(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !bytes.Equal(list[0].ID, a1.CredentialID()) || !bytes.Equal(list[1].ID, a2.CredentialID()) {
		t.Fatalf("List = %+v", list)
	}
	if list[0].Authenticator != "iCloud Keychain" || !list[0].Synced || list[0].DeviceBound || !list[1].DeviceBound {
		t.Errorf("List = %+v", list)
	}

	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"rename", func() error { return f.svc.Rename(f.ctx, alice.ID, a1.CredentialID(), "Phone", info) }, nil},
		{"rename empty", func() error { return f.svc.Rename(f.ctx, alice.ID, a1.CredentialID(), "   ", info) }, passkey.ErrInvalidNickname},
		{"rename too long", func() error {
			return f.svc.Rename(f.ctx, alice.ID, a1.CredentialID(), strings.Repeat("x", 65), info)
		}, passkey.ErrInvalidNickname},
		{"rename control", func() error { return f.svc.Rename(f.ctx, alice.ID, a1.CredentialID(), "a\nb", info) }, passkey.ErrInvalidNickname},
		{"rename another user's", func() error { return f.svc.Rename(f.ctx, alice.ID, b1.CredentialID(), "mine", info) }, passkey.ErrUnknownCredential},
		{"rename unknown", func() error { return f.svc.Rename(f.ctx, alice.ID, []byte("nope"), "x", info) }, passkey.ErrUnknownCredential},
		{"delete another user's", func() error { return f.svc.Delete(f.ctx, alice.ID, b1.CredentialID(), info) }, passkey.ErrUnknownCredential},
		{"delete unknown", func() error { return f.svc.Delete(f.ctx, alice.ID, []byte("nope"), info) }, passkey.ErrUnknownCredential},
		{"delete", func() error { return f.svc.Delete(f.ctx, alice.ID, a2.CredentialID(), info) }, nil},
		{"delete twice", func() error { return f.svc.Delete(f.ctx, alice.ID, a2.CredentialID(), info) }, passkey.ErrUnknownCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}

	list, err = f.svc.List(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Nickname != "Phone" {
		t.Errorf("after rename and delete: %+v", list)
	}
	if got, _ := f.svc.List(f.ctx, bob.ID); len(got) != 1 || got[0].Nickname == "mine" {
		t.Errorf("bob's passkeys were touched: %+v", got)
	}
	if ev := f.events(passkey.EventRenamed); len(ev) != 1 || ev[0]["new"] != "Phone" || ev[0]["old"] != "iCloud Keychain" {
		t.Errorf("renamed events = %v", ev)
	}
	evs, err := f.store.ListEvents(f.ctx, storage.EventFilter{Type: passkey.EventDeleted})
	if err != nil || len(evs) != 1 || evs[0].UserID != alice.ID || evs[0].IPAddress != "192.0.2.1" || evs[0].SessionID != "sess-1" {
		t.Errorf("deleted events = %+v, %v", evs, err)
	}
}

func TestAuthenticatorName(t *testing.T) {
	tests := []struct {
		aaguid []byte
		want   string
	}{
		{aaguidICloud[:], "iCloud Keychain"},
		{mustUUID("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"), "Google Password Manager"},
		{mustUUID("08987058-cadc-4b81-b6e1-30de50dcbe96"), "Windows Hello"},
		{mustUUID("bada5566-a7aa-401f-bd96-45619a55120d"), "1Password"},
		{aaguidYubiKey[:], "YubiKey 5 Series"},
		{uuid.Nil[:], ""},
		{nil, ""},
		{[]byte{1, 2, 3}, ""},
		{mustUUID("01020304-0506-0708-090a-0b0c0d0e0f10"), ""},
	}
	for _, tt := range tests {
		if got := passkey.AuthenticatorName(tt.aaguid); got != tt.want {
			t.Errorf("AuthenticatorName(%x) = %q, want %q", tt.aaguid, got, tt.want)
		}
	}
}

func mustUUID(s string) []byte {
	u := uuid.MustParse(s)
	return u[:]
}

func TestReason(t *testing.T) {
	if got := passkey.Reason(nil); got != "" {
		t.Errorf("Reason(nil) = %q", got)
	}
	if got := passkey.Reason(errors.New("disk on fire")); got != "internal" {
		t.Errorf("Reason(other) = %q", got)
	}
	wrapped := errors.Join(errors.New("context"), passkey.ErrCloneDetected)
	if got := passkey.Reason(wrapped); got != "clone_detected" {
		t.Errorf("Reason(wrapped clone) = %q", got)
	}
}

// TestStoreIsStorageSubset keeps Store a subset of storage.Storage, so the
// real store can be passed in as is.
func TestStoreIsStorageSubset(t *testing.T) {
	var s storage.Storage
	var _ passkey.Store = s
}

// TestConcurrentFinish finishes one ceremony state from several goroutines,
// as replicas would: exactly one may succeed.
func TestConcurrentFinish(t *testing.T) {
	f := newFixture(t, nil)
	a := f.enrol(f.user("alice"), aaguidICloud, softauth.Synced)
	c, err := f.svc.BeginLogin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.Assert(c.Options, softauth.Synced)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := f.svc.FinishLogin(f.ctx, passkey.Response{State: c.State, Credential: body})
			errs <- err
		}()
	}
	ok := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, passkey.ErrChallengeUsed):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent finishes succeeded, want 1", ok, n)
	}
	if ev := f.events(passkey.EventRejected); len(ev) != n-1 {
		t.Errorf("%d rejection events, want %d", len(ev), n-1)
	}
}
