package resource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzAuthorization feeds arbitrary Authorization headers through the
// middleware's parsing and checks that a challenge always renders as one
// well-formed header line whose values read back unchanged (after the
// documented sanitising).
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "Bearer", "bearer a=b", "Basic x", "Bearer a\"b", "Bearer \x00", "Bearer  tok==", "DPoP x.y.z"} {
		f.Add(s, "The access token is invalid", "scope:a b")
	}
	f.Fuzz(func(t *testing.T, authz, desc, scope string) {
		h := http.Header{}
		h["Authorization"] = []string{authz}
		tok, ch := bearerToken(h)
		if ch == nil && !isB64Token(tok) {
			t.Fatalf("accepted non-b64token %q", tok)
		}
		if ch != nil && tok != "" {
			t.Fatal("token and challenge together")
		}
		c := Challenge{Status: 401, Code: CodeInvalidToken, Description: desc, Scope: []string{scope}, ACRValues: []string{"phr"}, MaxAge: 300}
		v := c.Header(desc)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				t.Fatalf("challenge has byte %#x: %q", v[i], v)
			}
		}
		params, ok := parseChallenge(v)
		if !ok {
			t.Fatalf("challenge does not parse: %q", v)
		}
		if params["error_description"] != sanitized(desc) || params["realm"] != sanitized(desc) || params["scope"] != sanitized(scope) ||
			params["error"] != CodeInvalidToken || params["max_age"] != "300" || params["acr_values"] != "phr" {
			t.Fatalf("round trip of %q / %q: %q", desc, scope, params)
		}
	})
}

// sanitized is what quote promises: non-printable bytes become '?'.
func sanitized(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch < 0x20 || ch >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// parseChallenge reads `Bearer k=v, k="v", …` per RFC 9110 §11.
func parseChallenge(s string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(s, "Bearer")
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	rest = strings.TrimPrefix(rest, " ")
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, false
		}
		name := rest[:eq]
		rest = rest[eq+1:]
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' {
					i++
					if i == len(rest) {
						return nil, false
					}
				}
				val.WriteByte(rest[i])
			}
			if i == len(rest) {
				return nil, false
			}
			rest = rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(rest[:end])
			rest = rest[end:]
		}
		out[name] = val.String()
		if rest == "" {
			break
		}
		if !strings.HasPrefix(rest, ", ") {
			return nil, false
		}
		rest = rest[2:]
	}
	return out, true
}

// FuzzGatewayRoute feeds arbitrary original methods and URIs through the
// gateway's header parsing and the route table: never a panic, only the
// documented statuses, and no spelling of a payments path escapes its route.
func FuzzGatewayRoute(f *testing.F) {
	for _, s := range []string{"/payments/1", "/payments%2F1", "/x/../payments/1", "//payments//1", "/pay%6dents/1", "/%zz", "*", "http://h/payments/1", "/payments", "/"} {
		f.Add("POST", s)
	}
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /files/{name}", Scopes: []string{"files"}},
	}, RoutesOptions{})
	if err != nil {
		f.Fatal(err)
	}
	weak := &Claims{Subject: "alice", ACR: "urn:stepwise:acr:pwd", Scopes: []string{"payments:write"}, AuthTime: time.Now()}
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: staticVerifier{weak}, Routes: tbl}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, uri string) {
		r := httptest.NewRequest("GET", "/gateway/check", nil)
		r.Header.Set("X-Original-Method", method)
		r.Header.Set("X-Original-URI", uri)
		r.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		switch rec.Code {
		case 200, 400, 401, 403:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		orig, err := gw.OriginalRequest(r)
		if err != nil {
			return
		}
		dec, derr := url.PathUnescape(orig.EscapedPath)
		if derr == nil && orig.Method == "POST" && strings.HasPrefix(cleanPath(dec), "/payments/") && rec.Code == 200 {
			t.Fatalf("%s %q reached a payments path (%q) with a weak token", method, uri, cleanPath(dec))
		}
	})
}

// staticVerifier accepts any token as the given claims.
type staticVerifier struct{ c *Claims }

func (s staticVerifier) Verify(_ context.Context, _ string) (*Claims, error) { return s.c, nil }
