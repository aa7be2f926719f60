package oauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzAuthorize feeds arbitrary query strings to the authorization endpoint,
// which parses acr_values, max_age, prompt and the rest of untrusted input
// (through fosite and protocolRequirement). It must never answer 5xx.
func FuzzAuthorize(f *testing.F) {
	e := newEnv(f, nil)
	h := e.p.Handler()
	for _, s := range []string{
		"response_type=code&client_id=web&scope=openid&state=state-123456&redirect_uri=" + e.cb + "&code_challenge=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq&code_challenge_method=S256",
		"client_id=web&acr_values=phr%20phrh&max_age=0&prompt=login",
		"client_id=spa&max_age=-1&prompt=none%20login",
		"client_id=web&request_uri=urn:ietf:params:oauth:request_uri:x",
		"client_id=web&request=eyJhbGciOiJub25lIn0.e30.",
		"%zz&&==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		e.ui.login = e.loginAt(ACRPassword, time.Now().Add(-time.Minute))
		r := httptest.NewRequest(http.MethodGet, "/oauth2/authorize", nil)
		r.URL.RawQuery = q
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("authorize %q: %d %s", q, w.Code, w.Body)
		}
	})
}

// FuzzToken feeds arbitrary form bodies to the token endpoint.
func FuzzToken(f *testing.F) {
	e := newEnv(f, nil)
	h := e.p.Handler()
	for _, s := range []string{
		"grant_type=client_credentials",
		"grant_type=authorization_code&code=ory_ac_x.y&redirect_uri=x&code_verifier=abc",
		"grant_type=refresh_token&refresh_token=ory_rt_x.y",
		"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c",
		"grant_type=client_credentials&scope=%00%ff",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, auth bool) {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth {
			r.SetBasicAuth("svc", e.secrets["svc"])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("token %q: %d %s", body, w.Code, w.Body)
		}
	})
}
