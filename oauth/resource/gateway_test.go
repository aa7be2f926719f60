package resource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOriginalRequest(t *testing.T) {
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: failingVerifier{}}})
	if err != nil {
		t.Fatal(err)
	}
	noEnvoy, err := NewGateway(GatewayOptions{Options: Options{Verifier: failingVerifier{}}, EnvoyPathPrefix: "-"})
	if err != nil {
		t.Fatal(err)
	}
	customEnvoy, err := NewGateway(GatewayOptions{Options: Options{Verifier: failingVerifier{}}, EnvoyPathPrefix: "/authz/"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		gw      *Gateway
		method  string
		target  string
		headers map[string]string
		want    Original
		err     string
	}{
		{"nginx", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/payments/1?x=y"}, Original{"POST", "/payments/1"}, ""},
		{"nginx, escaped path kept", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/files/a%2Fb"}, Original{"GET", "/files/a%2Fb"}, ""},
		{"nginx, absolute form", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "http://api.example/x?q"}, Original{"GET", "/x"}, ""},
		{"nginx, absolute form without path", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "http://api.example"}, Original{"GET", "/"}, ""},
		{"nginx, lower-case method", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "post", "X-Original-URI": "/p"}, Original{"POST", "/p"}, ""},
		{"nginx without method", gw, "GET", "/gateway/check", map[string]string{"X-Original-URI": "/p"}, Original{}, "method missing"},
		{"nginx, bad method", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GE T", "X-Original-URI": "/p"}, Original{}, "not an HTTP token"},
		{"nginx, asterisk", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "OPTIONS", "X-Original-URI": "*"}, Original{}, "no absolute path"},
		{"nginx, bad escape", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/a%zz"}, Original{}, "request-target"},
		{"traefik", gw, "GET", "/gateway/check", map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/accounts/7", "X-Forwarded-Host": "api.example"}, Original{"DELETE", "/accounts/7"}, ""},
		{"envoy", gw, "POST", "/gateway/check/payments/1?x=1", nil, Original{"POST", "/payments/1"}, ""},
		{"envoy, root", gw, "GET", "/gateway/check/", nil, Original{"GET", "/"}, ""},
		{"envoy, custom prefix", customEnvoy, "PUT", "/authz/payments/1", nil, Original{"PUT", "/payments/1"}, ""},
		{"envoy, prefix must end at a segment", gw, "GET", "/gateway/checkpayments", nil, Original{}, "no X-Original-URI"},
		{"envoy disabled", noEnvoy, "POST", "/gateway/check/payments/1", nil, Original{}, "no X-Original-URI"},
		{"nothing", gw, "GET", "/gateway/check", nil, Original{}, "no X-Original-URI"},
		{"nginx and traefik agree", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/a", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/a?other=query"}, Original{"GET", "/a"}, ""},
		{"client-added X-Original-URI behind traefik", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/public", "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/payments/1"}, Original{}, "different requests"},
		{"client-added X-Forwarded-Uri behind nginx", gw, "GET", "/gateway/check", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/payments/1", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/public"}, Original{}, "different requests"},
		{"client-added header behind envoy", gw, "POST", "/gateway/check/payments/1", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/public"}, Original{}, "different requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got, err := tc.gw.OriginalRequest(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := NewGateway(GatewayOptions{Options: Options{Verifier: failingVerifier{}}, EnvoyPathPrefix: "relative"}); err == nil {
		t.Fatal("want an error for a relative Envoy prefix")
	}
}

func TestGateway(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /reports/{rest...}", Scopes: []string{"reports:read"}},
	}, RoutesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: ti.verifier(nil), Routes: tbl, Now: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(GatewayPath, gw)
	mux.Handle(GatewayPath+"/", gw)

	good := ti.mint(ti.baseClaims())
	weak := ti.mint(ti.with(map[string]any{"acr": "urn:stepwise:acr:pwd", "amr": []string{"pwd"}}))
	nginx := func(method, uri string) map[string]string {
		return map[string]string{"X-Original-Method": method, "X-Original-URI": uri}
	}
	traefik := func(method, uri string) map[string]string {
		return map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
	}
	cases := []struct {
		name      string
		method    string
		target    string
		headers   map[string]string
		auth      string
		status    int
		challenge string
	}{
		{"nginx, good", "GET", "/gateway/check", nginx("POST", "/payments/1"), good, 200, ""},
		{"traefik, good", "GET", "/gateway/check", traefik("POST", "/payments/1"), good, 200, ""},
		{"envoy, good", "POST", "/gateway/check/payments/1", nil, good, 200, ""},
		{"nginx, weak", "GET", "/gateway/check", nginx("POST", "/payments/1"), weak, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"envoy, weak", "POST", "/gateway/check/payments/1", nil, weak, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"traefik, scope", "GET", "/gateway/check", traefik("GET", "/reports/q1"), good, 403,
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="reports:read"`},
		{"no token", "GET", "/gateway/check", nginx("GET", "/x"), "", 401, `Bearer`},
		{"bad token", "GET", "/gateway/check", nginx("GET", "/x"), "nope", 401, `Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"malformed header is 401 here", "GET", "/gateway/check", nginx("GET", "/x"), "a b", 401, `Bearer error="invalid_request", error_description="Malformed bearer token"`},
		{"no original request", "GET", "/gateway/check", nil, good, 400, ""},
		{"smuggled path", "GET", "/gateway/check", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/public", "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/payments/1"}, weak, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", "Bearer "+tc.auth)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate\n got  %s\n want %s", got, tc.challenge)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("gateway answers must not be cached")
			}
			if tc.status != 200 {
				if rec.Header().Get(HeaderSubject) != "" {
					t.Fatal("identity headers on a refusal")
				}
				return
			}
			want := map[string]string{
				HeaderSubject: "alice", HeaderClient: "web-app", HeaderScope: "payments:write accounts:read",
				HeaderACR: "phr", HeaderAMR: "swk user mfa",
				HeaderAuthTime: itoa64(clock.Now().Add(-time.Minute).Unix()),
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHeaderSafe(t *testing.T) {
	h := http.Header{}
	writeIdentity(h, &Claims{Subject: "a\r\nX-Evil: 1", ACR: "phr\x00"})
	if h.Get(HeaderSubject) != "aX-Evil: 1" || h.Get(HeaderACR) != "phr" {
		t.Fatalf("%q", h)
	}
	// Absent claims are sent empty, overwriting client-supplied copies.
	if v, ok := h[HeaderAuthTime]; !ok || len(v) != 1 || v[0] != "" {
		t.Fatalf("auth time header %q", v)
	}
}

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }

// TestGatewayInProcess mounts the gateway as the Stepwise server would: a
// LocalVerifier over the provider's own introspection, no HTTP loopback.
// Without a cache a revocation applies to the very next check.
func TestGatewayInProcess(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	revoked := false
	introspect := func(_ context.Context, tok string) (map[string]any, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok != "opaque.tok" || revoked {
			return map[string]any{"active": false}, nil
		}
		return map[string]any{
			"active": true, "sub": "bob", "client_id": "cli", "scope": "payments:write",
			"acr": "phrh", "amr": []any{"hwk", "user", "mfa"}, "auth_time": float64(now.Unix()),
			"exp": float64(now.Add(time.Hour).Unix()), "iss": "http://localhost:8080", "token_type": "Bearer",
		}, nil
	}
	lv, err := NewLocalVerifier(LocalConfig{Introspect: introspect, Issuer: "http://localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := ParseRoutes([]RouteConfig{{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300}}, RoutesOptions{Default: DefaultDeny})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: lv, Routes: tbl, Realm: "stepwise"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(uri string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", GatewayPath, nil)
		r.Header.Set("X-Original-Method", "POST")
		r.Header.Set("X-Original-URI", uri)
		r.Header.Set("Authorization", "Bearer opaque.tok")
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		return rec
	}
	if rec := check("/payments/1"); rec.Code != 200 || rec.Header().Get(HeaderSubject) != "bob" || rec.Header().Get(HeaderAMR) != "hwk user mfa" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if rec := check("/other"); rec.Code != 403 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="stepwise", error="insufficient_scope", error_description="No route allows this request"` {
		t.Fatalf("default deny: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	mu.Lock()
	revoked = true
	mu.Unlock()
	if rec := check("/payments/1"); rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("after revocation: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
