package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSecurityHeaders(t *testing.T) {
	for _, issuer := range []string{"http://localhost:8080", "https://id.example.com"} {
		e := newEnv(t, func(c *Config) { c.Issuer = issuer })
		// The middleware wraps foreign handlers (the oauth endpoints) too.
		mux := http.NewServeMux()
		mux.Handle("/", e.s.Handler())
		mux.HandleFunc("GET /oauth2/jwks", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })
		h := e.s.Middleware(mux)
		for _, path := range []string{"/login", "/healthz", "/static/style.css", "/nope", "/oauth2/jwks", "/account"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			hd := rec.Header()
			csp := hd.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s %s: CSP %q lacks %q", issuer, path, csp, want)
				}
			}
			checks := map[string]string{
				"X-Content-Type-Options":     "nosniff",
				"Referrer-Policy":            "no-referrer",
				"X-Frame-Options":            "DENY",
				"Cross-Origin-Opener-Policy": "same-origin",
			}
			for k, v := range checks {
				if hd.Get(k) != v {
					t.Errorf("%s %s: %s = %q, want %q", issuer, path, k, hd.Get(k), v)
				}
			}
			hsts := hd.Get("Strict-Transport-Security")
			if strings.HasPrefix(issuer, "https") != (hsts != "") {
				t.Errorf("%s %s: HSTS %q", issuer, path, hsts)
			}
		}
	}
}

func TestCrossOriginProtection(t *testing.T) {
	e := newEnv(t)
	reached := 0
	mux := http.NewServeMux()
	mux.Handle("/", e.s.Handler())
	for _, p := range []string{"POST /oauth2/token", "POST /oauth2/introspect", "POST /oauth2/revoke", "POST /oauth2/par", "POST /oauth2/register", "PUT /oauth2/register/{id}", "POST /oauth2/userinfo", "POST /oauth2/other"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) { reached++ })
	}
	h := e.s.Middleware(mux)
	tests := []struct {
		method, path, site string
		want               int
	}{
		{"POST", "/login", "cross-site", http.StatusForbidden},
		{"POST", "/login", "same-site", http.StatusForbidden},
		{"POST", "/consent", "cross-site", http.StatusForbidden},
		{"POST", "/logout", "cross-site", http.StatusForbidden},
		{"POST", "/account/sessions/revoke", "cross-site", http.StatusForbidden},
		{"POST", "/oauth2/other", "cross-site", http.StatusForbidden},
		{"POST", "/login", "same-origin", http.StatusOK},
		{"GET", "/login", "cross-site", http.StatusOK},
		{"POST", "/oauth2/token", "cross-site", http.StatusOK},
		{"POST", "/oauth2/introspect", "cross-site", http.StatusOK},
		{"POST", "/oauth2/revoke", "cross-site", http.StatusOK},
		{"POST", "/oauth2/par", "cross-site", http.StatusOK},
		{"POST", "/oauth2/register", "cross-site", http.StatusOK},
		{"PUT", "/oauth2/register/abc", "cross-site", http.StatusOK},
		{"POST", "/oauth2/userinfo", "cross-site", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.site, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://localhost:8080"+tt.path, strings.NewReader(url.Values{"username": {"alice"}, "password": {"x"}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", tt.site)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.want == http.StatusForbidden && !hasErrorMarker(rec.Body.String()) {
				t.Error("403 page lacks the error marker")
			}
		})
	}
	if reached != 7 {
		t.Errorf("bypassed endpoints reached %d times, want 7", reached)
	}
	// A cross-origin POST never creates a session.
	if ev := events(t, e.store, "login.success"); len(ev) != 0 {
		t.Error("cross-site POST signed in")
	}
}

func TestCSPSource(t *testing.T) {
	tests := map[string]string{
		"https://app.example.com/cb":        "https://app.example.com",
		"https://app.example.com:8443/cb":   "https://app.example.com:8443",
		"http://127.0.0.1:5555/cb":          "http://127.0.0.1:*",
		"http://[::1]/cb":                   "http://[::1]:*",
		"com.example.app:/oauth2redirect":   "com.example.app:",
		"https://a.example.com;script-src":  "",
		"https://exa mple.com/":             "",
		"javascript:alert(1)":               "",
		"data:text/html,hi":                 "",
		"/relative":                         "",
		"https://user@evil.example.com'/cb": "",
	}
	for in, want := range tests {
		if got := cspSource(in); got != want {
			t.Errorf("cspSource(%q) = %q, want %q", in, got, want)
		}
	}
}
