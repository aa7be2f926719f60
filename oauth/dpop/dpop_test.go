package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/stepwise-id/stepwise/oauth/dpop"
	"github.com/stepwise-id/stepwise/oauth/dpop/dpoptest"
)

const (
	testURL   = "https://api.example.com/payments/42"
	testToken = "access-token-abc"
)

func mustKey(t testing.TB, alg jose.SignatureAlgorithm) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, p *dpoptest.Proof) string {
	t.Helper()
	s, err := p.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, nonces *dpop.Nonces) *dpop.Verifier {
	t.Helper()
	v, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil), Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func req(proofs ...string) dpop.Request {
	return dpop.Request{Proofs: proofs, Method: http.MethodPost, URL: testURL + "?x=1", AccessToken: testToken}
}

// TestVerifyRules walks RFC 9449 §4.3, one rule broken per case.
func TestVerifyRules(t *testing.T) {
	k := mustKey(t, jose.ES256)
	other := mustKey(t, jose.ES256)
	ok := func() *dpoptest.Proof { return k.NewProof(http.MethodPost, testURL, testToken, "") }
	edit := func(f func(p *dpoptest.Proof)) string {
		p := ok()
		f(p)
		return sign(t, p)
	}
	cases := []struct {
		name   string
		proofs func() []string
		mod    func(*dpop.Request)
		want   error // nil: accepted
	}{
		{"valid", func() []string { return []string{sign(t, ok())} }, nil, nil},
		{"valid, query and fragment ignored in htu", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = testURL + "?y=2#frag" })}
		}, nil, nil},
		{"valid, normalised htu", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "HTTPS://API.Example.com:443/pay%6Dents/./42" })}
		}, nil, nil},
		{"valid PS256", func() []string {
			return []string{sign(t, mustKey(t, jose.PS256).NewProof(http.MethodPost, testURL, testToken, ""))}
		}, nil, nil},
		{"valid EdDSA", func() []string {
			return []string{sign(t, mustKey(t, jose.EdDSA).NewProof(http.MethodPost, testURL, testToken, ""))}
		}, nil, nil},
		{"no header", func() []string { return nil }, nil, dpop.ErrMissing},
		{"two DPoP headers", func() []string { return []string{sign(t, ok()), sign(t, ok())} }, nil, dpop.ErrInvalidProof},
		{"not a JWT", func() []string { return []string{"not-a-jwt"} }, nil, dpop.ErrInvalidProof},
		{"wrong typ", func() []string { return []string{edit(func(p *dpoptest.Proof) { p.Header["typ"] = "JWT" })} }, nil, dpop.ErrInvalidProof},
		{"no typ", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Header, "typ") })} }, nil, dpop.ErrInvalidProof},
		{"alg none", func() []string { return []string{ok().Unsigned()} }, nil, dpop.ErrInvalidProof},
		{"HS256", func() []string {
			s, err := ok().SignWith(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")})
			if err != nil {
				t.Fatal(err)
			}
			return []string{s}
		}, nil, dpop.ErrInvalidProof},
		{"no jwk", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Header, "jwk") })} }, nil, dpop.ErrInvalidProof},
		{"private jwk in header", func() []string {
			return []string{edit(func(p *dpoptest.Proof) {
				p.Header["jwk"] = map[string]any{"kty": "EC", "crv": "P-256", "x": jwkField(t, k, "x"), "y": jwkField(t, k, "y"), "d": jwkField(t, k, "d")}
			})}
		}, nil, dpop.ErrInvalidProof},
		{"jwk of another key (bad signature)", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { pub := other.PublicJWK(); p.Header["jwk"] = &pub })}
		}, nil, dpop.ErrInvalidProof},
		{"tampered signature", func() []string {
			s := sign(t, ok())
			i := strings.LastIndexByte(s, '.') + 5
			b := []byte(s)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return []string{string(b)}
		}, nil, dpop.ErrInvalidProof},
		{"wrong htm", func() []string { return []string{edit(func(p *dpoptest.Proof) { p.Claims["htm"] = "GET" })} }, nil, dpop.ErrInvalidProof},
		{"lower-case htm", func() []string { return []string{edit(func(p *dpoptest.Proof) { p.Claims["htm"] = "post" })} }, nil, dpop.ErrInvalidProof},
		{"htu other scheme", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "http://api.example.com/payments/42" })}
		}, nil, dpop.ErrInvalidProof},
		{"htu other host", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "https://evil.example.com/payments/42" })}
		}, nil, dpop.ErrInvalidProof},
		{"htu other port", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "https://api.example.com:8443/payments/42" })}
		}, nil, dpop.ErrInvalidProof},
		{"htu other path", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "https://api.example.com/payments/43" })}
		}, nil, dpop.ErrInvalidProof},
		{"htu relative", func() []string { return []string{edit(func(p *dpoptest.Proof) { p.Claims["htu"] = "/payments/42" })} }, nil, dpop.ErrInvalidProof},
		{"no htu", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Claims, "htu") })} }, nil, dpop.ErrInvalidProof},
		{"no jti", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Claims, "jti") })} }, nil, dpop.ErrInvalidProof},
		{"no iat", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Claims, "iat") })} }, nil, dpop.ErrInvalidProof},
		{"iat a string", func() []string { return []string{edit(func(p *dpoptest.Proof) { p.Claims["iat"] = "now" })} }, nil, dpop.ErrInvalidProof},
		{"iat too old", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["iat"] = time.Now().Add(-5 * time.Minute).Unix() })}
		}, nil, dpop.ErrInvalidProof},
		{"iat in the future", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { p.Claims["iat"] = time.Now().Add(5 * time.Minute).Unix() })}
		}, nil, dpop.ErrInvalidProof},
		{"missing ath", func() []string { return []string{edit(func(p *dpoptest.Proof) { delete(p.Claims, "ath") })} }, nil, dpop.ErrInvalidProof},
		{"ath of another token", func() []string {
			return []string{sign(t, k.NewProof(http.MethodPost, testURL, "another-token", ""))}
		}, nil, dpop.ErrInvalidProof},
		{"ath not needed at the token endpoint", func() []string {
			return []string{edit(func(p *dpoptest.Proof) { delete(p.Claims, "ath") })}
		}, func(r *dpop.Request) { r.AccessToken = "" }, nil},
		{"bound to another key", func() []string { return []string{sign(t, ok())} }, func(r *dpop.Request) { r.JKT = other.JKT() }, dpop.ErrInvalidProof},
		{"bound to this key", func() []string { return []string{sign(t, ok())} }, func(r *dpop.Request) { r.JKT = k.JKT() }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, nil)
			r := req(tc.proofs()...)
			if tc.mod != nil {
				tc.mod(&r)
			}
			p, err := v.Verify(context.Background(), r)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if p.JKT == "" {
					t.Error("no jkt")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func jwkField(t *testing.T, k *dpoptest.Key, name string) string {
	t.Helper()
	priv := jose.JSONWebKey{Key: k.Signer}
	b, err := priv.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, `"`+name+`":"`)
	if i < 0 {
		t.Fatalf("no %s in jwk", name)
	}
	rest := s[i+len(name)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestReplayRefused(t *testing.T) {
	k := mustKey(t, jose.ES256)
	v := newVerifier(t, nil)
	proof := sign(t, k.NewProof(http.MethodPost, testURL, testToken, ""))
	if _, err := v.Verify(context.Background(), req(proof)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), req(proof)); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replayed proof: %v", err)
	}
	// A rejected proof does not burn its jti.
	p := k.NewProof(http.MethodPost, testURL, testToken, "")
	bad := req(sign(t, p))
	bad.Method = http.MethodGet
	if _, err := v.Verify(context.Background(), bad); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), req(bad.Proofs[0])); err != nil {
		t.Fatalf("jti burnt by a rejected proof: %v", err)
	}
}

func TestNonces(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	n, err := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil), Nonces: n, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	k := mustKey(t, jose.ES256)
	// No nonce: use_dpop_nonce.
	if _, err := v.Verify(context.Background(), req(sign(t, k.NewProof(http.MethodPost, testURL, testToken, "")))); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("no nonce: %v", err)
	}
	cur := v.Nonce()
	if cur == "" || !n.Valid(cur) {
		t.Fatal("current nonce invalid")
	}
	if _, err := v.Verify(context.Background(), req(sign(t, k.NewProof(http.MethodPost, testURL, testToken, cur)))); err != nil {
		t.Fatalf("current nonce: %v", err)
	}
	// A forged nonce.
	if _, err := v.Verify(context.Background(), req(sign(t, k.NewProof(http.MethodPost, testURL, testToken, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")))); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("forged nonce: %v", err)
	}
	// One period later the old nonce is still good; two periods later it is stale.
	now = now.Add(time.Minute)
	if !n.Valid(cur) {
		t.Error("previous nonce refused")
	}
	now = now.Add(time.Minute)
	if n.Valid(cur) {
		t.Error("stale nonce accepted")
	}
	p := k.NewProof(http.MethodPost, testURL, testToken, cur)
	p.Claims["iat"] = now.Unix()
	if _, err := v.Verify(context.Background(), req(sign(t, p))); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("stale nonce: %v", err)
	}
	// Another key's nonces are not ours.
	other, _ := dpop.NewNonces([]byte("another-key-another-key-another-key!"), time.Minute, clock)
	if n.Valid(other.Current()) {
		t.Error("nonce of another key accepted")
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://Example.COM":                 "https://example.com/",
		"https://example.com:443/a?b#c":       "https://example.com/a",
		"http://example.com:80/a/../b/./c":    "http://example.com/b/c",
		"http://example.com:8080/%7euser/%2f": "http://example.com:8080/~user/%2F",
		"HTTP://[::1]:80/x":                   "http://[::1]/x",
		"https://[::1]:8443/x":                "https://[::1]:8443/x",
	} {
		got, err := dpop.NormalizeURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/relative", "ftp://example.com/", "https://user@example.com/", "https://"} {
		if got, err := dpop.NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMemoryReplayCacheBounded(t *testing.T) {
	now := time.Now()
	c := dpop.NewMemoryReplayCache(2, func() time.Time { return now })
	ctx := context.Background()
	_ = c.Use(ctx, "a", now.Add(time.Second))
	_ = c.Use(ctx, "b", now.Add(time.Minute))
	if err := c.Use(ctx, "c", now.Add(time.Minute)); !errors.Is(err, dpop.ErrCacheFull) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(2 * time.Second) // "a" expired: its slot is reused
	if err := c.Use(ctx, "c", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Use(ctx, "b", now.Add(time.Minute)); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
}

func TestNewVerifierRefusesSymmetricAlgs(t *testing.T) {
	for _, algs := range [][]string{{"HS256"}, {"none"}, {}} {
		if _, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil), Algs: algs}); err == nil {
			t.Errorf("algs %v accepted", algs)
		}
	}
	if _, err := dpop.NewVerifier(dpop.Config{}); err == nil {
		t.Error("no replay cache accepted")
	}
}

func TestAlgListHonoured(t *testing.T) {
	// An ES384 proof where only ES256 is accepted.
	priv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	k := &dpoptest.Key{Alg: jose.ES384, Signer: priv}
	p := k.NewProof(http.MethodPost, testURL, testToken, "")
	s, err := p.SignWith(jose.SigningKey{Algorithm: jose.ES384, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil), Algs: []string{"ES256"}})
	if _, err := v.Verify(context.Background(), req(s)); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("ES384 proof with ES256 only: %v", err)
	}
}

func BenchmarkVerifyProof(b *testing.B) {
	k := mustKey(b, jose.ES256)
	v := newVerifier(b, nil)
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = sign(b, k.NewProof(http.MethodPost, testURL, testToken, ""))
	}
	ctx := context.Background()
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, req(proofs[i])); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	k := mustKey(f, jose.ES256)
	f.Add(sign(f, k.NewProof(http.MethodPost, testURL, testToken, "")))
	f.Add(k.NewProof(http.MethodPost, testURL, testToken, "").Unsigned())
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9..")
	v := newVerifier(f, nil)
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := v.Verify(context.Background(), req(proof))
		if err == nil && (p == nil || p.JKT == "") {
			t.Fatal("accepted without a key")
		}
		if err != nil && !errors.Is(err, dpop.ErrInvalidProof) && !errors.Is(err, dpop.ErrUseNonce) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
