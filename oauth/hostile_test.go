package oauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/storage"
)

// pkjClient registers a private_key_jwt client and returns its key.
func (e *env) pkjClient(id string) *ecdsa.PrivateKey {
	e.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: id + "-k1", Use: "sig"}}}
	b, _ := json.Marshal(set)
	e.addClient(storage.Client{ID: id, TokenEndpointAuthMethod: "private_key_jwt", JWKS: b,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
	return k
}

// assertion signs a client assertion; mod may alter the claims.
func assertion(t testing.TB, k *ecdsa.PrivateKey, kid, clientID, aud string, mod func(map[string]any)) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jti, _ := randomID()
	c := map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": jti,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
	if mod != nil {
		mod(c)
	}
	s, err := josejwt.Signed(signer).Claims(c).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t, nil)
	k := e.pkjClient("pkj")
	a := assertion(t, k, "pkj-k1", "pkj", e.issuer+PathToken, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	code, m := e.post(PathToken, form, nil)
	if code != 200 {
		t.Fatalf("private_key_jwt: %d %v", code, m)
	}
	at, _ := m["access_token"].(string)
	if in := e.introspect(at); toStrings(in["amr"])[0] != "private_key_jwt" {
		t.Errorf("amr %v", in["amr"])
	}
	// Replaying the same assertion (same jti) fails.
	code, m = e.post(PathToken, form, nil)
	if code < 400 || code >= 500 {
		t.Fatalf("replayed assertion: %d %v", code, m)
	}
	// A private_key_jwt client may introspect.
	b := assertion(t, k, "pkj-k1", "pkj", e.issuer+PathIntrospect, nil)
	code, m = e.post(PathIntrospect, url.Values{"token": {at}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {b}}, nil)
	if code != 200 || m["active"] != true {
		t.Errorf("introspect with private_key_jwt: %d %v", code, m)
	}
}

// hostileCase is one malformed or malicious request and the RFC answer.
type hostileCase struct {
	name   string
	req    func(e *env, f *fixtures) *http.Request
	status int
	// code is the expected error code, read from the JSON body or, for
	// redirects, from the Location query. Empty means do not check.
	code string
}

// fixtures are values the cases need (a live code, keys).
type fixtures struct {
	code, verifier string
	pkjKey         *ecdsa.PrivateKey
	accessToken    string
}

func formReq(e *env, path string, v url.Values, mods ...func(*http.Request)) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mods {
		m(r)
	}
	return r
}

func getReq(e *env, path string, v url.Values) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, e.issuer+path+"?"+v.Encode(), nil)
	return r
}

func authz(client string, extra url.Values) url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {client}, "scope": {"openid"}, "state": {"state-123456"}, "redirect_uri": {testCB},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// testCB is replaced per environment (see fixRedirect).
const testCB = "REDIRECT"

func hostileCases() []hostileCase {
	cc := func(extra url.Values) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	web := func(e *env) func(*http.Request) { return basic("web", e.secrets["web"]) }
	svc := func(e *env) func(*http.Request) { return basic("svc", e.secrets["svc"]) }
	return []hostileCase{
		// --- token endpoint ---
		{"token: unsupported grant type", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, web(e))
		}, 400, "unsupported_grant_type"},
		{"token: missing grant type", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{}, web(e))
		}, 400, "invalid_request"},
		{"token: wrong client secret", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(nil), basic("svc", "wrong"))
		}, 401, "invalid_client"},
		{"token: unknown client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(nil), basic("nobody", "x"))
		}, 401, "invalid_client"},
		{"token: garbage authorization code", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {"ory_ac_bogus.bogus"}, "redirect_uri": {e.cb}, "code_verifier": {f.verifier}}, web(e))
		}, 400, "invalid_grant"},
		{"token: code without PKCE verifier", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {f.code}, "redirect_uri": {e.cb}}, web(e))
		}, 400, "invalid_grant"},
		{"token: code with wrong PKCE verifier", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {f.code}, "redirect_uri": {e.cb}, "code_verifier": {oauth2.GenerateVerifier()}}, web(e))
		}, 400, "invalid_grant"},
		{"token: mismatched redirect_uri", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {f.code}, "redirect_uri": {e.issuer + "/other"}, "code_verifier": {f.verifier}}, web(e))
		}, 400, "invalid_grant"},
		{"token: code redeemed by another client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {f.code}, "redirect_uri": {e.cb}, "code_verifier": {f.verifier}}, svc(e))
		}, 400, "unauthorized_client"},
		{"token: garbage refresh token", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_x.y"}}, web(e))
		}, 400, "invalid_grant"},
		{"token: JSON body", func(e *env, f *fixtures) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader(`{"grant_type":"client_credentials"}`))
			r.Header.Set("Content-Type", "application/json")
			svc(e)(r)
			return r
		}, 400, "invalid_request"},
		{"token: multipart body", func(e *env, f *fixtures) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader("--x\r\n"))
			r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
			svc(e)(r)
			return r
		}, 400, "invalid_request"},
		{"token: no content type", func(e *env, f *fixtures) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader("grant_type=client_credentials"))
			svc(e)(r)
			return r
		}, 400, "invalid_request"},
		{"token: oversized body", func(e *env, f *fixtures) *http.Request {
			body := "grant_type=client_credentials&scope=" + strings.Repeat("a", 1<<20)
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			svc(e)(r)
			return r
		}, 400, "invalid_request"},
		{"token: GET method", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathToken, cc(nil))
		}, 405, ""},
		{"token: grant type not allowed for client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(nil), web(e))
		}, 400, "unauthorized_client"},
		{"token: public client uses client_credentials", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_id": {"spa"}}))
		}, 400, "invalid_grant"},
		{"token: unregistered scope", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"scope": {"admin"}}), svc(e))
		}, 400, "invalid_scope"},
		{"token: garbage client assertion", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_assertion_type": {assertionType}, "client_assertion": {"a.b.c"}}))
		}, 401, "invalid_client"},
		{"token: unknown client assertion type", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_assertion_type": {"urn:x"}, "client_assertion": {"a.b.c"}}))
		}, 400, "invalid_request"},
		{"token: assertion signed by a foreign key", func(e *env, f *fixtures) *http.Request {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return formReq(e, PathToken, cc(url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion(e.t, k, "pkj-k1", "pkj", e.issuer+PathToken, nil)}}))
		}, 401, "invalid_client"},
		{"token: assertion with wrong audience", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion(e.t, f.pkjKey, "pkj-k1", "pkj", "https://evil.example/token", nil)}}))
		}, 401, "invalid_client"},
		{"token: expired assertion", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion(e.t, f.pkjKey, "pkj-k1", "pkj", e.issuer+PathToken, func(c map[string]any) {
				c["exp"] = time.Now().Add(-time.Hour).Unix()
			})}}))
		}, 401, "invalid_client"},
		{"token: assertion iss/sub for another client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(url.Values{"client_id": {"pkj"}, "client_assertion_type": {assertionType}, "client_assertion": {assertion(e.t, f.pkjKey, "pkj-k1", "svc", e.issuer+PathToken, nil)}}))
		}, 401, "invalid_client"},
		{"token: secret for private_key_jwt client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathToken, cc(nil), basic("pkj", "guess"))
		}, 401, "invalid_client"},

		// --- introspection ---
		{"introspect: bearer token only", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {f.accessToken}}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+f.accessToken) })
		}, 401, "invalid_client"},
		{"introspect: no authentication", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {f.accessToken}})
		}, 401, "invalid_client"},
		{"introspect: public client", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {f.accessToken}, "client_id": {"spa"}})
		}, 401, "invalid_client"},
		{"introspect: wrong secret", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {f.accessToken}}, basic("svc", "nope"))
		}, 401, "invalid_client"},
		{"introspect: missing token", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token_type_hint": {"access_token"}}, svc(e))
		}, 400, "invalid_request"},
		{"introspect: unknown token is inactive", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {"ory_at_nope.nope"}}, svc(e))
		}, 200, ""},
		{"introspect: forged JWT is inactive", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathIntrospect, url.Values{"token": {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}}, svc(e))
		}, 200, ""},
		{"introspect: JSON body", func(e *env, f *fixtures) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathIntrospect, strings.NewReader(`{"token":"x"}`))
			r.Header.Set("Content-Type", "application/json")
			svc(e)(r)
			return r
		}, 400, "invalid_request"},

		// --- revocation ---
		{"revoke: no authentication", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathRevoke, url.Values{"token": {f.accessToken}})
		}, 401, "invalid_client"},
		{"revoke: unknown token", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathRevoke, url.Values{"token": {"ory_at_nope.nope"}}, svc(e))
		}, 200, ""},
		{"revoke: missing token", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathRevoke, url.Values{}, svc(e))
		}, 400, "invalid_request"},

		// --- authorization endpoint ---
		{"authorize: unknown client", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("nobody", nil))
		}, 401, "invalid_client"},
		{"authorize: unregistered redirect_uri", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"redirect_uri": {"https://evil.example/cb"}}))
		}, 400, "invalid_request"},
		{"authorize: plain PKCE refused", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("spa", url.Values{"code_challenge": {oauth2.GenerateVerifier()}, "code_challenge_method": {"plain"}}))
		}, 303, "invalid_request"},
		{"authorize: public client without PKCE", func(e *env, f *fixtures) *http.Request {
			v := authz("spa", nil)
			v.Del("code_challenge")
			v.Del("code_challenge_method")
			return getReq(e, PathAuthorize, v)
		}, 303, "invalid_request"},
		{"authorize: require_pkce client without PKCE", func(e *env, f *fixtures) *http.Request {
			v := authz("pkceweb", nil)
			v.Del("code_challenge")
			v.Del("code_challenge_method")
			return getReq(e, PathAuthorize, v)
		}, 303, "invalid_request"},
		{"authorize: implicit response type", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"response_type": {"token"}}))
		}, 303, "unsupported_response_type"},
		{"authorize: short state", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"state": {"x"}}))
		}, 303, "invalid_state"},
		{"authorize: malformed max_age", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"max_age": {"soon"}}))
		}, 303, "invalid_request"},
		{"authorize: prompt none with login", func(e *env, f *fixtures) *http.Request {
			e.ui.login = nil
			return getReq(e, PathAuthorize, authz("web", url.Values{"prompt": {"none login"}}))
		}, 303, "login_required"},
		{"authorize: unknown scope", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"scope": {"openid admin"}}))
		}, 303, "invalid_scope"},
		{"authorize: JSON POST", func(e *env, f *fixtures) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, e.issuer+PathAuthorize, strings.NewReader(`{"client_id":"web"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "invalid_request"},
		{"authorize: forged request_uri", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, url.Values{"client_id": {"web"}, "request_uri": {"urn:ietf:params:oauth:request_uri:forged"}})
		}, 400, "invalid_request_uri"},
		{"authorize: unsigned request object", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorize, authz("web", url.Values{"request": {"eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."}}))
		}, 400, "invalid_request_object"},
		{"resume: unknown id", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathAuthorizeResume, url.Values{"id": {"nope"}})
		}, 400, "invalid_request"},

		// --- userinfo, PAR, logout ---
		{"userinfo: garbage bearer", func(e *env, f *fixtures) *http.Request {
			r := getReq(e, PathUserinfo, nil)
			r.Header.Set("Authorization", "Bearer garbage")
			return r
		}, 401, "invalid_token"},
		{"par: no client authentication", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathPAR, authz("web", url.Values{"redirect_uri": {e.cb}}))
		}, 401, "invalid_client"},
		{"par: request_uri inside PAR", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathPAR, authz("web", url.Values{"redirect_uri": {e.cb}, "request_uri": {"urn:x"}}), web(e))
		}, 400, "invalid_request"},
		{"par: plain PKCE", func(e *env, f *fixtures) *http.Request {
			return formReq(e, PathPAR, authz("web", url.Values{"redirect_uri": {e.cb}, "code_challenge_method": {"plain"}}), web(e))
		}, 400, "invalid_request"},
		{"logout: unregistered post_logout_redirect_uri", func(e *env, f *fixtures) *http.Request {
			return getReq(e, PathLogout, url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://evil.example"}})
		}, 400, "invalid_request"},
	}
}

func TestHostileRequests(t *testing.T) {
	e := newEnv(t, nil)
	f := &fixtures{pkjKey: e.pkjClient("pkj")}
	f.code, f.verifier = e.authCode("web", []string{"openid"})
	f.accessToken = e.codeFlow("web", []string{"openid"}).AccessToken
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			e.ui.login = e.loginAt(ACRPassword, time.Now().Add(-time.Minute))
			req := tc.req(e, f)
			fixRedirect(req, e.cb)
			resp, err := e.browser().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 500 {
				t.Fatalf("5xx: %d %s", resp.StatusCode, body)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %s, location %s)", resp.StatusCode, tc.status, body, resp.Header.Get("Location"))
			}
			if tc.code == "" {
				return
			}
			var got string
			if resp.StatusCode == http.StatusSeeOther {
				u, _ := url.Parse(resp.Header.Get("Location"))
				got = u.Query().Get("error")
				if u.Query().Get("iss") != e.issuer {
					t.Errorf("error redirect without iss: %s", u)
				}
			} else {
				var m map[string]any
				_ = json.NewDecoder(bytes.NewReader(body)).Decode(&m)
				got, _ = m["error"].(string)
			}
			if got != tc.code {
				t.Errorf("error %q, want %q (body %s, location %s)", got, tc.code, body, resp.Header.Get("Location"))
			}
		})
	}
}

// fixRedirect substitutes the environment's redirect URI for testCB.
func fixRedirect(r *http.Request, cb string) {
	r.URL.RawQuery = strings.ReplaceAll(r.URL.RawQuery, testCB, url.QueryEscape(cb))
	if r.Body != nil && r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		b, _ := io.ReadAll(r.Body)
		b = bytes.ReplaceAll(b, []byte(testCB), []byte(url.QueryEscape(cb)))
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
	}
}
