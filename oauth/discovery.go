package oauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// discoveryDocs are the precomputed metadata documents.
type discoveryDocs struct {
	openid []byte // OpenID Connect Discovery 1.0
	as     []byte // RFC 8414
}

// rebuildDiscovery recomputes the metadata; it runs at start and whenever the
// published keys change (their algorithms are advertised).
func (p *Provider) rebuildDiscovery() error {
	algs := p.keys.algorithms()
	// RS256 must be listed (OIDC Discovery §3) only if we can actually sign
	// with it; advertise what the published keys can produce.
	slices.Sort(algs)
	authMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	confidentialMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	assertionAlgs := []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	m := map[string]any{
		"issuer":                                                   p.cfg.Issuer,
		"authorization_endpoint":                                   p.url(PathAuthorize),
		"token_endpoint":                                           p.url(PathToken),
		"userinfo_endpoint":                                        p.url(PathUserinfo),
		"jwks_uri":                                                 p.url(PathJWKS),
		"registration_endpoint":                                    p.url(PathRegister),
		"introspection_endpoint":                                   p.url(PathIntrospect),
		"revocation_endpoint":                                      p.url(PathRevoke),
		"end_session_endpoint":                                     p.url(PathLogout),
		"pushed_authorization_request_endpoint":                    p.url(PathPAR),
		"require_pushed_authorization_requests":                    false,
		"scopes_supported":                                         []string{ScopeOpenID, ScopeOfflineAccess, ScopeProfile, ScopeEmail},
		"response_types_supported":                                 []string{"code"},
		"response_modes_supported":                                 []string{"query", "form_post"},
		"grant_types_supported":                                    []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":                                  []string{"public"},
		"id_token_signing_alg_values_supported":                    algs,
		"token_endpoint_auth_methods_supported":                    authMethods,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            confidentialMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"code_challenge_methods_supported":                         []string{"S256"},
		"acr_values_supported":                                     p.cfg.Ladder.Values(),
		"claims_supported": []string{
			"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
			"name", "preferred_username", "email", "email_verified",
		},
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    true,
		"request_uri_parameter_supported":                false,
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"authorization_response_iss_parameter_supported": true,
		"userinfo_signing_alg_values_supported":          []string{"none"},
		"request_object_signing_alg_values_supported":    []string{"ES256", "RS256", "PS256"},
		"dpop_signing_alg_values_supported":              p.proofs.Algs(),
	}
	oidc, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode discovery: %w", err)
	}
	// RFC 8414 metadata is the same set; it has no userinfo/end-session
	// semantics but extra members are allowed and harmless.
	p.discovery.Store(&discoveryDocs{openid: oidc, as: oidc})
	return nil
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, p.discovery.Load().openid, "public, max-age=300")
}

func (p *Provider) serveASMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, p.discovery.Load().as, "public, max-age=300")
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	doc, err := p.keys.JWKS(r.Context())
	if err != nil {
		p.log.ErrorContext(r.Context(), "jwks", "err", err)
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	// Short max-age: clients must see a new key soon after a rotation.
	writeJSONBytes(w, doc, "public, max-age=60")
}

func writeJSONBytes(w http.ResponseWriter, b []byte, cache string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	_, _ = w.Write(b)
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
