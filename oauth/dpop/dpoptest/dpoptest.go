// Package dpoptest is a DPoP client (RFC 9449) for tests and examples: it
// holds a key, builds proofs with go-jose, and offers an http.RoundTripper
// that adds a proof to every request. It shares no code with the verifier
// in package dpop, so tests check the verifier against an independent
// implementation of the client side, and can bend any rule of a proof.
package dpoptest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key is a client's DPoP key pair.
type Key struct {
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

// NewKey generates a key for alg: ES256, ES384, PS256, RS256 or EdDSA.
func NewKey(alg jose.SignatureAlgorithm) (*Key, error) {
	var (
		s   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES256:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.PS256, jose.RS256:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dpoptest: unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("dpoptest: generate key: %w", err)
	}
	return &Key{Alg: alg, Signer: s}, nil
}

// PublicJWK returns the public key as a JWK.
func (k *Key) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public()}
}

// JKT returns the RFC 7638 SHA-256 thumbprint of the public key.
func (k *Key) JKT() string {
	jwk := k.PublicJWK()
	b, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(fmt.Sprintf("dpoptest: thumbprint: %v", err)) // a key we generated
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Proof is a proof under construction: edit Header and Claims to bend the
// rules, then Sign.
type Proof struct {
	Header map[jose.HeaderKey]any
	Claims map[string]any
	key    *Key
}

// NewProof returns a correct proof for method and uri (query and fragment
// are stripped, as RFC 9449 §4.2 says). accessToken, when not empty, adds
// ath; nonce, when not empty, adds nonce.
func (k *Key) NewProof(method, uri, accessToken, nonce string) *Proof {
	htu := uri
	if i := strings.IndexAny(htu, "?#"); i >= 0 {
		htu = htu[:i]
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"htm": method,
		"htu": htu,
		"iat": time.Now().Unix(),
	}
	if accessToken != "" {
		s := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(s[:])
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	pub := k.PublicJWK()
	return &Proof{key: k, Claims: c, Header: map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": &pub}}
}

// Sign returns the compact JWS.
func (p *Proof) Sign() (string, error) {
	return p.SignWith(jose.SigningKey{Algorithm: p.key.Alg, Key: p.key.Signer})
}

// SignWith signs with another key or algorithm (an HMAC key, say), keeping
// the headers.
func (p *Proof) SignWith(sk jose.SigningKey) (string, error) {
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	for k, v := range p.Header {
		opts.ExtraHeaders[k] = v
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		return "", fmt.Errorf("dpoptest: signer: %w", err)
	}
	payload, err := json.Marshal(p.Claims)
	if err != nil {
		return "", fmt.Errorf("dpoptest: claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpoptest: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Unsigned returns the proof with alg "none" and an empty signature.
func (p *Proof) Unsigned() string {
	h := map[string]any{"alg": "none"}
	for k, v := range p.Header {
		h[string(k)] = v
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(p.Claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(hb) + "." + enc(cb) + "."
}

// Transport adds a DPoP proof to every request: with ath when the request
// carries "Authorization: DPoP <token>". When the server answers
// use_dpop_nonce with a DPoP-Nonce header it retries once with that nonce,
// and it remembers the latest nonce each server sent.
type Transport struct {
	Key  *Key
	Base http.RoundTripper

	mu     sync.Mutex
	nonces map[string]string // by scheme://host
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("dpoptest: read body: %w", err)
		}
		body = b
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	resp, err := t.try(req, body, t.nonce(origin))
	if err != nil {
		return nil, err
	}
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" {
		return resp, nil
	}
	t.mu.Lock()
	if t.nonces == nil {
		t.nonces = map[string]string{}
	}
	t.nonces[origin] = n
	t.mu.Unlock()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if !bytes.Contains(b, []byte("use_dpop_nonce")) && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp, nil
	}
	return t.try(req, body, n)
}

func (t *Transport) nonce(origin string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nonces[origin]
}

func (t *Transport) try(req *http.Request, body []byte, nonce string) (*http.Response, error) {
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	var token string
	if scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") {
		token = strings.TrimSpace(rest)
	}
	u := *r.URL
	u.RawQuery, u.Fragment = "", ""
	proof, err := t.Key.NewProof(r.Method, u.String(), token, nonce).Sign()
	if err != nil {
		return nil, err
	}
	r.Header.Set("DPoP", proof)
	return t.base().RoundTrip(r)
}
