package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

// serve runs one request through the handler in-process.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func tokenRequest(e *env, id string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, e.secrets[id])
	return r
}

func BenchmarkTokenClientCredentials(b *testing.B) {
	e := newEnv(b, nil)
	h := e.p.Handler()
	b.ReportAllocs()
	for b.Loop() {
		if w := serve(h, tokenRequest(e, "svc")); w.Code != http.StatusOK {
			b.Fatalf("token: %d %s", w.Code, w.Body)
		}
	}
}

func benchIntrospect(b *testing.B, clientID string) {
	e := newEnv(b, nil)
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: e.secrets[clientID], TokenURL: e.issuer + PathToken}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		b.Fatal(err)
	}
	h := e.p.Handler()
	body := url.Values{"token": {tok.AccessToken}}.Encode()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, e.issuer+PathIntrospect, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("svc", e.secrets["svc"])
		w := serve(h, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"active":true`) {
			b.Fatalf("introspect: %d %s", w.Code, w.Body)
		}
	}
}

func BenchmarkIntrospectOpaque(b *testing.B) { benchIntrospect(b, "svc") }

func BenchmarkIntrospectJWT(b *testing.B) { benchIntrospect(b, "jwtweb") }
