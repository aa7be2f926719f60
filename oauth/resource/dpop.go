package resource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/stepwise-id/stepwise/oauth/dpop"
)

// DPoPOptions configure how DPoP-bound access tokens (RFC 9449) are
// checked. A token whose claims carry cnf.jkt is accepted only with the
// DPoP authorization scheme and a proof, signed by the bound key, of this
// very request (htm, htu) and of this token (ath); the check always runs,
// whatever these options say.
type DPoPOptions struct {
	// Verifier checks proofs. Nil means one with the default algorithms,
	// a 60 s iat window and an in-memory replay cache
	// (dpop.NewMemoryReplayCache): a replica sees only the proofs sent to
	// it, so behind a load balancer a proof could be replayed once per
	// replica within the window. Give every replica a shared
	// dpop.ReplayCache (the Stepwise server uses its storage) to close that.
	Verifier *dpop.Verifier
	// BaseURL is the scheme and authority clients address this API by
	// ("https://api.example.com"), from which htu is built. Empty means:
	// for the middleware, the request's Host (https when on TLS); for the
	// gateway, X-Forwarded-Proto and X-Forwarded-Host, else an absolute
	// X-Original-URI, else the check request's Host. Set it whenever a
	// proxy may rewrite Host.
	BaseURL string
}

// newProofVerifier returns the verifier of o, or the default one.
func newProofVerifier(o DPoPOptions) (*dpop.Verifier, string, error) {
	base := strings.TrimSuffix(o.BaseURL, "/")
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, "", errors.New("resource: DPoP BaseURL must be scheme://host[:port]")
		}
	}
	if o.Verifier != nil {
		return o.Verifier, base, nil
	}
	v, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil)})
	if err != nil {
		return nil, "", fmt.Errorf("resource: dpop: %w", err)
	}
	return v, base, nil
}

// presentedToken extracts the access token of an Authorization header
// with the Bearer (RFC 6750) or the DPoP (RFC 9449 §7.1) scheme, and says
// which scheme carried it.
func presentedToken(h http.Header) (token, scheme string, ch *Challenge) {
	if vals := h.Values("Authorization"); len(vals) == 1 {
		if s, rest, _ := strings.Cut(vals[0], " "); strings.EqualFold(s, dpop.TokenType) {
			// Same token syntax (b64token) as Bearer.
			tok, ch := bearerToken(http.Header{"Authorization": {"Bearer " + rest}})
			if ch != nil {
				ch.Scheme = dpop.TokenType
			}
			return tok, dpop.TokenType, ch
		}
	}
	tok, ch := bearerToken(h)
	return tok, "Bearer", ch
}

// confirmationJKT reads cnf.jkt (RFC 7800, RFC 9449 §6) of a token's
// claims or introspection response.
func confirmationJKT(m map[string]any) (string, error) {
	v, ok := m["cnf"]
	if !ok || v == nil {
		return "", nil
	}
	cnf, ok := v.(map[string]any)
	if !ok {
		return "", errors.New(`claim "cnf": want an object`)
	}
	j, ok := cnf["jkt"]
	if !ok {
		// Another confirmation method (x5t#S256, say) that this package
		// cannot check: refuse rather than accept it as a bearer token.
		return "", errors.New(`claim "cnf": unsupported confirmation method`)
	}
	jkt, ok := j.(string)
	if !ok || !dpop.ValidJKT(jkt) {
		return "", errors.New(`claim "cnf": jkt is not a SHA-256 thumbprint`)
	}
	return jkt, nil
}

// checkDPoP enforces the token's binding. It returns a challenge when the
// request must be refused and an error when the proof could not be checked
// (replay cache down).
func (g *guard) checkDPoP(ctx context.Context, h http.Header, scheme, token string, c *Claims, method string, htu func() string) (*Challenge, error) {
	bound := c.JKT != ""
	dpopChallenge := func(code, desc string) *Challenge {
		return &Challenge{Status: http.StatusUnauthorized, Code: code, Description: desc, Scheme: dpop.TokenType, Algs: g.dpop.Algs()}
	}
	switch {
	case !bound && scheme != dpop.TokenType:
		return nil, nil
	case bound && scheme != dpop.TokenType:
		// RFC 9449 §7.2: a DPoP-bound token is no bearer token.
		return dpopChallenge(CodeInvalidToken, "The access token is DPoP-bound; present it with the DPoP scheme and a proof"), nil
	case !bound:
		return dpopChallenge(CodeInvalidToken, "The access token is not DPoP-bound"), nil
	}
	_, err := g.dpop.Verify(ctx, dpop.Request{
		Proofs: dpop.Proofs(h), Method: method, URL: htu(), AccessToken: token, JKT: c.JKT,
	})
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, dpop.ErrUseNonce):
		ch := dpopChallenge(dpop.ErrorUseNonce, "Resource server requires nonce in DPoP proof")
		ch.Nonce = g.dpop.Nonce()
		return ch, nil
	case errors.Is(err, dpop.ErrInvalidProof):
		// The description names the broken rule, never the proof.
		return dpopChallenge(dpop.ErrorInvalidProof, strings.TrimPrefix(err.Error(), dpop.ErrInvalidProof.Error()+": ")), nil
	}
	return nil, err
}

// requestURL is the htu of a request reaching the middleware.
func (g *guard) requestURL(r *http.Request) string {
	base := g.dpopBase
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + r.URL.EscapedPath()
}

// originalURL is the htu of the request a gateway asks about.
func (gw *Gateway) originalURL(r *http.Request, orig Original) string {
	if gw.g.dpopBase != "" {
		return gw.g.dpopBase + orig.EscapedPath
	}
	h := r.Header
	if host := h.Get("X-Forwarded-Host"); host != "" {
		proto := strings.ToLower(strings.TrimSpace(strings.Split(h.Get("X-Forwarded-Proto"), ",")[0]))
		if proto != "https" {
			proto = "http"
		}
		host = strings.TrimSpace(strings.Split(host, ",")[0])
		return proto + "://" + host + orig.EscapedPath
	}
	if u, err := url.ParseRequestURI(h.Get("X-Original-URI")); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host + orig.EscapedPath
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + orig.EscapedPath
}
