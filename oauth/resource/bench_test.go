package resource

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func benchMiddleware(b *testing.B) (*testIssuer, http.Handler) {
	clock := newFakeClock()
	ti := newTestIssuer(b, clock)
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /reports/{rest...}", Scopes: []string{"reports:read"}},
	}, RoutesOptions{})
	if err != nil {
		b.Fatal(err)
	}
	mw, err := NewMiddleware(Options{Verifier: ti.verifier(nil), Routes: tbl, Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, found := ClaimsFrom(r.Context()); !found {
			b.Fatal("no claims")
		}
	})
	return ti, mw.Wrap(ok)
}

func runBench(b *testing.B, h http.Handler, token string) {
	req := httptest.NewRequest("POST", "/payments/42", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	warm := httptest.NewRecorder()
	h.ServeHTTP(warm, req)
	if warm.Code != 200 {
		b.Fatalf("warm-up: %d %s", warm.Code, warm.Header().Get("WWW-Authenticate"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkVerifyJWT is the middleware verifying an ES256 JWT access token
// (signature, claims, route table) with the JWKS cached.
func BenchmarkVerifyJWT(b *testing.B) {
	ti, h := benchMiddleware(b)
	runBench(b, h, ti.mint(ti.baseClaims()))
}

// BenchmarkVerifyJWTRS256 is the same with an RS256 key.
func BenchmarkVerifyJWTRS256(b *testing.B) {
	ti, h := benchMiddleware(b)
	ti.rotate("RS256")
	runBench(b, h, ti.mint(ti.baseClaims()))
}

// BenchmarkVerifyOpaqueCacheHit is the middleware with an opaque token whose
// introspection answer is cached.
func BenchmarkVerifyOpaqueCacheHit(b *testing.B) {
	ti, h := benchMiddleware(b)
	runBench(b, h, ti.issueOpaque(ti.baseClaims()))
	if n := ti.introspections.Load(); n != 1 {
		b.Fatalf("%d introspections, want 1", n)
	}
}
