package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testIssuer = "http://localhost:8080"

// registrationServer serves the registration routes over a fresh store and
// returns it with a valid initial access token.
func registrationServer(t *testing.T) (*httptest.Server, *ClientRegistry, *testClock, string) {
	t.Helper()
	reg, _, clock := newTestRegistry(t)
	srv := httptest.NewServer(reg.Handler(testIssuer))
	t.Cleanup(srv.Close)
	tok, err := reg.CreateRegistrationToken(context.Background(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return srv, reg, clock, tok
}

type regResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func doRegistration(t *testing.T, method, url, token, contentType string, body []byte) regResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := regResponse{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: non-JSON response %d: %s", method, url, resp.StatusCode, raw)
		}
	}
	return out
}

func (r regResponse) expect(t *testing.T, status int, errCode string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if errCode != "" {
		if r.body["error"] != errCode {
			t.Fatalf("error = %v, want %q; body %s", r.body["error"], errCode, r.raw)
		}
		if d, _ := r.body["error_description"].(string); d == "" {
			t.Errorf("no error_description: %s", r.raw)
		}
	}
	if status == http.StatusUnauthorized {
		if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q", h)
		}
	}
}

const validRegistration = `{
	"client_name": "DCR app",
	"redirect_uris": ["https://rp.example.com/cb"],
	"grant_types": ["authorization_code", "refresh_token"],
	"scope": "openid profile offline_access",
	"token_endpoint_auth_method": "client_secret_post",
	"logo_uri": "https://rp.example.com/logo.png",
	"software_id": "4NRB1-0XZABZI9E6-5SM3R",
	"require_pkce": true,
	"access_token_format": "jwt",
	"some_unknown_member": {"ignored": true}
}`

func TestRegisterEndpoint(t *testing.T) {
	srv, reg, clock, tok := registrationServer(t)
	endpoint := srv.URL + PathRegister

	t.Run("valid token registers a client", func(t *testing.T) {
		r := doRegistration(t, "POST", endpoint, tok, "application/json; charset=utf-8", []byte(validRegistration))
		r.expect(t, http.StatusCreated, "")
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
		}
		id, _ := r.body["client_id"].(string)
		secret, _ := r.body["client_secret"].(string)
		rat, _ := r.body["registration_access_token"].(string)
		if id == "" || len(secret) < 43 || rat == "" {
			t.Fatalf("missing credentials: %s", r.raw)
		}
		if r.body["registration_client_uri"] != testIssuer+"/oauth2/register/"+id {
			t.Errorf("registration_client_uri = %v", r.body["registration_client_uri"])
		}
		if r.body["client_secret_expires_at"] != float64(0) || r.body["client_id_issued_at"] != float64(clock.Now().Unix()) {
			t.Errorf("timestamps: %s", r.raw)
		}
		if r.body["scope"] != "openid profile offline_access" || r.body["require_pkce"] != true ||
			r.body["access_token_format"] != "jwt" || r.body["software_id"] != "4NRB1-0XZABZI9E6-5SM3R" {
			t.Errorf("metadata not echoed: %s", r.raw)
		}
		if _, ok := r.body["some_unknown_member"]; ok {
			t.Error("unknown member was registered")
		}
		got, err := reg.Get(context.Background(), id)
		if err != nil || got.ClientName != "DCR app" || got.LogoURI != "https://rp.example.com/logo.png" {
			t.Errorf("stored client = %+v, %v", got, err)
		}
	})

	t.Run("the initial token is reusable until it expires", func(t *testing.T) {
		r := doRegistration(t, "POST", endpoint, tok, "application/json", []byte(`{"grant_types":["client_credentials"]}`))
		r.expect(t, http.StatusCreated, "")
	})

	unauthorized := []struct{ name, token string }{
		{"missing token", ""},
		{"wrong token", tok + "x"},
		{"registration access token is not an initial token", "not-a-token"},
	}
	for _, tt := range unauthorized {
		t.Run(tt.name, func(t *testing.T) {
			r := doRegistration(t, "POST", endpoint, tt.token, "application/json", []byte(validRegistration))
			r.expect(t, http.StatusUnauthorized, "invalid_token")
		})
	}

	t.Run("basic auth is not a bearer token", func(t *testing.T) {
		req, _ := http.NewRequest("POST", endpoint, strings.NewReader(validRegistration))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("x", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})

	bad := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"broken JSON", "application/json", `{"redirect_uris": [`, 400, CodeInvalidClientMetadata},
		{"JSON array", "application/json", `[]`, 400, CodeInvalidClientMetadata},
		{"JSON null", "application/json", `null`, 400, CodeInvalidClientMetadata},
		{"empty body", "application/json", ``, 400, CodeInvalidClientMetadata},
		{"trailing garbage", "application/json", `{"grant_types":["client_credentials"]} {}`, 400, CodeInvalidClientMetadata},
		{"wrong member type", "application/json", `{"redirect_uris": "https://rp.example.com/cb"}`, 400, CodeInvalidClientMetadata},
		{"scope as an array", "application/json", `{"grant_types":["client_credentials"],"scope":["a"]}`, 400, CodeInvalidClientMetadata},
		{"bad redirect", "application/json", `{"redirect_uris": ["http://rp.example.com/cb"]}`, 400, CodeInvalidRedirectURI},
		{"fragment redirect", "application/json", `{"redirect_uris": ["https://rp.example.com/cb#x"]}`, 400, CodeInvalidRedirectURI},
		{"implicit grant", "application/json", `{"redirect_uris": ["https://rp.example.com/cb"], "grant_types": ["implicit"]}`, 400, CodeInvalidClientMetadata},
		{"jwks_uri", "application/json", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://rp.example.com/jwks"}`, 400, CodeInvalidClientMetadata},
		{"form content type", "application/x-www-form-urlencoded", `client_name=x`, 415, "invalid_request"},
		{"no content type", "", validRegistration, 415, "invalid_request"},
		{"text/plain JSON", "text/plain", validRegistration, 415, "invalid_request"},
		{"oversized body", "application/json", `{"client_name":"` + strings.Repeat("a", 70<<10) + `"}`, 400, "invalid_request"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := doRegistration(t, "POST", endpoint, tok, tt.contentType, []byte(tt.body))
			r.expect(t, tt.status, tt.code)
		})
	}

	t.Run("wrong method", func(t *testing.T) {
		r, err := http.Get(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /oauth2/register = %d", r.StatusCode)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		clock.Advance(25 * time.Hour)
		r := doRegistration(t, "POST", endpoint, tok, "application/json", []byte(validRegistration))
		r.expect(t, http.StatusUnauthorized, "invalid_token")
	})
}

func TestRegisterManagement(t *testing.T) {
	srv, reg, _, tok := registrationServer(t)
	ctx := context.Background()

	register := func(t *testing.T) (id, secret, rat, uri string) {
		t.Helper()
		r := doRegistration(t, "POST", srv.URL+PathRegister, tok, "application/json", []byte(validRegistration))
		r.expect(t, http.StatusCreated, "")
		id, _ = r.body["client_id"].(string)
		secret, _ = r.body["client_secret"].(string)
		rat, _ = r.body["registration_access_token"].(string)
		return id, secret, rat, srv.URL + PathRegister + "/" + id
	}
	id, secret, rat, uri := register(t)
	otherID, _, otherRAT, otherURI := register(t)
	cliClient, err := reg.Create(ctx, webMetadata())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("read", func(t *testing.T) {
		r := doRegistration(t, "GET", uri, rat, "", nil)
		r.expect(t, http.StatusOK, "")
		if r.body["client_id"] != id || r.body["client_name"] != "DCR app" || r.body["registration_access_token"] != rat {
			t.Errorf("read: %s", r.raw)
		}
		if _, ok := r.body["client_secret"]; ok {
			t.Error("read returned a client secret")
		}
		if r.body["registration_client_uri"] != testIssuer+PathRegister+"/"+id {
			t.Errorf("registration_client_uri = %v", r.body["registration_client_uri"])
		}
	})

	denied := []struct{ name, method, url, token string }{
		{"read without token", "GET", uri, ""},
		{"read with a wrong token", "GET", uri, rat + "x"},
		{"read with another client's token", "GET", uri, otherRAT},
		{"read with the initial access token", "GET", uri, tok},
		{"read of an unknown client", "GET", srv.URL + PathRegister + "/nope", rat},
		{"read of a CLI client", "GET", srv.URL + PathRegister + "/" + cliClient.ClientID, rat},
		{"delete with a wrong token", "DELETE", uri, otherRAT},
		{"update with a wrong token", "PUT", uri, otherRAT},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"client_id":"` + id + `","redirect_uris":["https://rp.example.com/cb"]}`)
			r := doRegistration(t, tt.method, tt.url, tt.token, "application/json", body)
			r.expect(t, http.StatusUnauthorized, "invalid_token")
		})
	}

	update := func(fields string) []byte {
		return []byte(`{"client_id":"` + id + `","redirect_uris":["https://rp.example.com/new"],"token_endpoint_auth_method":"client_secret_post"` + fields + `}`)
	}
	badUpdates := []struct {
		name string
		body []byte
		code string
	}{
		{"client_id missing", []byte(`{"redirect_uris":["https://rp.example.com/new"]}`), "invalid_request"},
		{"client_id differs", []byte(`{"client_id":"` + otherID + `","redirect_uris":["https://rp.example.com/new"]}`), "invalid_request"},
		{"client_secret differs", update(`,"client_secret":"wrong"`), "invalid_request"},
		{"registration_access_token included", update(`,"registration_access_token":"x"`), "invalid_request"},
		{"registration_client_uri included", update(`,"registration_client_uri":"x"`), "invalid_request"},
		{"client_id_issued_at included", update(`,"client_id_issued_at":1`), "invalid_request"},
		{"client_secret_expires_at included", update(`,"client_secret_expires_at":0`), "invalid_request"},
		{"invalid redirect", []byte(`{"client_id":"` + id + `","redirect_uris":["ftp://x/cb"]}`), CodeInvalidRedirectURI},
		{"broken JSON", []byte(`{"client_id":`), CodeInvalidClientMetadata},
	}
	for _, tt := range badUpdates {
		t.Run("update: "+tt.name, func(t *testing.T) {
			r := doRegistration(t, "PUT", uri, rat, "application/json", tt.body)
			r.expect(t, http.StatusBadRequest, tt.code)
		})
	}
	t.Run("update: wrong content type", func(t *testing.T) {
		r := doRegistration(t, "PUT", uri, rat, "text/plain", update(""))
		r.expect(t, http.StatusUnsupportedMediaType, "invalid_request")
	})

	t.Run("update", func(t *testing.T) {
		r := doRegistration(t, "PUT", uri, rat, "application/json", update(`,"client_secret":"`+secret+`","client_name":"Renamed"`))
		r.expect(t, http.StatusOK, "")
		if r.body["client_name"] != "Renamed" || r.body["registration_access_token"] != rat {
			t.Errorf("update response: %s", r.raw)
		}
		if _, ok := r.body["client_secret"]; ok {
			t.Error("update reissued the secret")
		}
		// Full replacement: members left out are gone, defaults come back.
		if _, ok := r.body["logo_uri"]; ok {
			t.Errorf("logo_uri survived a replacing update: %s", r.raw)
		}
		got, _ := reg.Get(ctx, id)
		if got.ClientName != "Renamed" || len(got.RedirectURIs) != 1 || got.RedirectURIs[0] != "https://rp.example.com/new" {
			t.Errorf("stored after update: %+v", got)
		}
		// The secret still authenticates.
		stored, _ := reg.store.GetClient(ctx, id)
		if reg.hasher.Compare(ctx, stored.SecretHash, []byte(secret)) != nil {
			t.Error("update changed the secret")
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := doRegistration(t, "DELETE", uri, rat, "", nil)
		if r.status != http.StatusNoContent {
			t.Fatalf("delete = %d %s", r.status, r.raw)
		}
		doRegistration(t, "GET", uri, rat, "", nil).expect(t, http.StatusUnauthorized, "invalid_token")
		doRegistration(t, "DELETE", uri, rat, "", nil).expect(t, http.StatusUnauthorized, "invalid_token")
		// The other client is untouched.
		doRegistration(t, "GET", otherURI, otherRAT, "", nil).expect(t, http.StatusOK, "")
		if _, err := reg.Get(ctx, otherID); err != nil {
			t.Error(err)
		}
	})
}

// FuzzRegister drives POST /oauth2/register with arbitrary bodies: the
// endpoint must never panic nor answer 5xx, and must answer 201 exactly when
// ParseMetadata accepts the body.
func FuzzRegister(f *testing.F) {
	reg, _, _ := newTestRegistry(f)
	tok, err := reg.CreateRegistrationToken(context.Background(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	h := reg.Handler(testIssuer)
	for _, seed := range []string{
		validRegistration,
		`{}`,
		`{"redirect_uris":["https://a.example/cb"]}`,
		`{"grant_types":["client_credentials"],"scope":"a b\tc"}`,
		`{"redirect_uris":["com.example.app:/cb"],"token_endpoint_auth_method":"none"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}}`,
		`{"jwks":{"keys":[{"kty":"oct","k":"AAAA"}]}}`,
		`{"redirect_uris":["http://[::1]:80/cb","http://%zz/"]}`,
		`{"client_name":"\u0000","contacts":[""]}`,
		`[1,2,3]`, `null`, `"str"`, `{"scope":null,"jwks":null}`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", PathRegister, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		m, parseErr := ParseMetadata(body)
		if parseErr == nil {
			// Normalising is idempotent: stored metadata re-validates unchanged.
			again, err := m.Validate()
			if err != nil {
				t.Fatalf("normalised metadata no longer validates: %v", err)
			}
			a, _ := json.Marshal(m)
			b, _ := json.Marshal(again)
			if !bytes.Equal(a, b) {
				t.Fatalf("Validate is not idempotent:\n%s\n%s", a, b)
			}
		}
		if len(body) <= maxRegistrationBody && (parseErr == nil) != (rec.Code == http.StatusCreated) {
			t.Fatalf("ParseMetadata error %v but status %d: %s", parseErr, rec.Code, rec.Body.Bytes())
		}
		if rec.Code != http.StatusCreated {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error body is not an OAuth error: %q", rec.Body.Bytes())
			}
		}
	})
}
