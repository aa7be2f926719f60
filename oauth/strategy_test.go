package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

// TestIntrospectJWTAfterCache checks that remembering verified JWT access
// tokens never lets a token with the real signature but edited claims or
// header through: only the exact token that was verified skips the check.
func TestIntrospectJWTAfterCache(t *testing.T) {
	e := newEnv(t, nil)
	cc := clientcredentials.Config{ClientID: "jwtweb", ClientSecret: e.secrets["jwtweb"], TokenURL: e.issuer + PathToken}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	h := e.p.Handler()
	introspect := func(token string) string {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, e.issuer+PathIntrospect, strings.NewReader(url.Values{"token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("svc", e.secrets["svc"])
		w := serve(h, r)
		if w.Code != http.StatusOK {
			t.Fatalf("introspect: %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}
	for range 2 { // the second call is answered from the verified set
		if body := introspect(tok.AccessToken); !strings.Contains(body, `"active":true`) {
			t.Fatalf("genuine token: %s", body)
		}
	}
	parts := strings.Split(tok.AccessToken, ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(claims), `"sub":"jwtweb"`, `"sub":"admin"`, 1)
	if edited == string(claims) {
		t.Fatalf("claims have no sub to edit: %s", claims)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	for name, forged := range map[string]string{
		"edited claims":  parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(edited)) + "." + parts[2],
		"edited header":  base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(header), "at+jwt", "JWT", 1))) + "." + parts[1] + "." + parts[2],
		"padded payload": parts[0] + "." + parts[1] + "A." + parts[2],
	} {
		if body := introspect(forged); !strings.Contains(body, `"active":false`) {
			t.Errorf("%s: forged token reported %s", name, body)
		}
	}
	// Revocation still applies at once to a remembered token.
	r := httptest.NewRequest(http.MethodPost, e.issuer+PathRevoke, strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("jwtweb", e.secrets["jwtweb"])
	if w := serve(h, r); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if body := introspect(tok.AccessToken); !strings.Contains(body, `"active":false`) {
		t.Fatalf("revoked token reported %s", body)
	}
}

// TestIntrospectionResultMap checks that the in-process map and the
// endpoint's JSON carry the same members.
func TestIntrospectionResultMap(t *testing.T) {
	for _, r := range []introspectionResult{
		{Active: true, ClientID: "c", Audience: []string{"c"}, TokenUse: "access_token"},
		{Active: true, ACR: "phr", AMR: []string{"swk", "user"}, AuthTime: 1, Issuer: "http://localhost", ClientID: "c",
			Scope: "a b", Subject: "u", IssuedAt: 2, Audience: []string{"x", "y"}, TokenUse: "access_token",
			TokenType: "Bearer", Expires: 3, SessionID: "s"},
	} {
		a, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(r.asMap())
		if err != nil {
			t.Fatal(err)
		}
		var am, bm map[string]any
		_ = json.Unmarshal(a, &am)
		_ = json.Unmarshal(b, &bm)
		if !reflect.DeepEqual(am, bm) {
			t.Errorf("struct JSON %s\n   map JSON %s", a, b)
		}
	}
}

// TestIntrospectOpaqueAfterCache checks that repeated introspection (served
// from the decode cache) answers like the first, and that revocation still
// applies at once.
func TestIntrospectOpaqueAfterCache(t *testing.T) {
	e := newEnv(t, nil)
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e.secrets["svc"], TokenURL: e.issuer + PathToken}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	h := e.p.Handler()
	post := func(path, token string) string {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(url.Values{"token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("svc", e.secrets["svc"])
		w := serve(h, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		return w.Body.String()
	}
	first := post(PathIntrospect, tok.AccessToken)
	if !strings.Contains(first, `"active":true`) || !strings.Contains(first, `"acr":"urn:stepwise:acr:client"`) {
		t.Fatalf("first introspection: %s", first)
	}
	for range 3 {
		if again := post(PathIntrospect, tok.AccessToken); again != first {
			t.Fatalf("cached introspection differs:\n%s\n%s", again, first)
		}
	}
	post(PathRevoke, tok.AccessToken)
	if body := post(PathIntrospect, tok.AccessToken); !strings.Contains(body, `"active":false`) {
		t.Fatalf("revoked token reported %s", body)
	}
}
