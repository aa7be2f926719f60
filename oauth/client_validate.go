package oauth

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v3"
)

// Registration error codes of RFC 7591 §3.2.2.
const (
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
	CodeInvalidClientMetadata = "invalid_client_metadata"
)

// Grant and response types a client may register.
const (
	grantAuthCode    = "authorization_code"
	grantRefresh     = "refresh_token"
	grantClientCreds = "client_credentials"
	responseTypeCode = "code"
)

// Limits that keep one registration from bloating storage.
const (
	maxURILength   = 2048
	maxTextLength  = 256
	maxListEntries = 50
	maxJWKSKeys    = 20
	minRSABits     = 2048
)

// signingAlgSupported reports whether alg is an asymmetric JWS algorithm a
// client may register for its assertions and request objects; "none" and
// HMAC algorithms are refused.
func signingAlgSupported(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// MetadataError is invalid client metadata. Code is the RFC 7591 error code
// (CodeInvalidRedirectURI or CodeInvalidClientMetadata); Description is safe
// to show to the client.
type MetadataError struct {
	Code        string
	Description string
}

func (e *MetadataError) Error() string {
	return e.Code + ": " + e.Description
}

func metadataErr(format string, args ...any) *MetadataError {
	return &MetadataError{Code: CodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func redirectErr(format string, args ...any) *MetadataError {
	return &MetadataError{Code: CodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// ParseMetadata decodes a JSON registration request and validates it. Any
// problem, malformed JSON included, is a *MetadataError; unknown members
// are ignored, as RFC 7591 §2 requires.
func ParseMetadata(data []byte) (Metadata, error) {
	var m Metadata
	if err := decodeMetadataJSON(data, &m); err != nil {
		return Metadata{}, err
	}
	return m.Validate()
}

// decodeMetadataJSON decodes a JSON object into v, reporting problems as
// invalid_client_metadata.
func decodeMetadataJSON(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return metadataErr("the request body must be a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return metadataErr("%s: wrong JSON type (got %s)", typeErr.Field, typeErr.Value)
		}
		return metadataErr("malformed JSON: %v", err)
	}
	return nil
}

// Validate checks the metadata against RFC 7591 and OpenID Connect Dynamic
// Client Registration and returns it with defaults applied: grant_types
// ["authorization_code"], response_types ["code"] for code clients,
// token_endpoint_auth_method client_secret_basic, access_token_format
// opaque, scope "openid" (plus "offline_access" with refresh tokens) for
// code clients that ask for none, and the refresh_token grant for code
// clients that ask for offline_access. Errors are *MetadataError.
func (m Metadata) Validate() (Metadata, error) {
	m = m.clone()

	if err := checkText("client_name", m.ClientName); err != nil {
		return Metadata{}, err
	}
	if err := checkText("software_id", m.SoftwareID); err != nil {
		return Metadata{}, err
	}
	if err := checkText("software_version", m.SoftwareVersion); err != nil {
		return Metadata{}, err
	}

	// Grant types.
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{grantAuthCode}
	}
	if len(m.GrantTypes) > maxListEntries {
		return Metadata{}, metadataErr("grant_types: too many entries")
	}
	var grants []string
	for _, g := range m.GrantTypes {
		switch g {
		case grantAuthCode, grantRefresh, grantClientCreds:
		case "implicit", "password":
			return Metadata{}, metadataErr("grant_types: %q is not supported (use authorization_code with PKCE)", g)
		default:
			return Metadata{}, metadataErr("grant_types: %q is not supported", clip(g))
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	codeFlow := slices.Contains(grants, grantAuthCode)

	// Scope.
	if len(m.Scope) > maxListEntries {
		return Metadata{}, metadataErr("scope: too many scope tokens")
	}
	var scopes ScopeList
	for _, s := range m.Scope {
		if !validScopeToken(s) {
			return Metadata{}, metadataErr("scope: %q is not a valid scope token (RFC 6749 §3.3)", clip(s))
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if codeFlow && slices.Contains(scopes, "offline_access") && !slices.Contains(grants, grantRefresh) {
		grants = append(grants, grantRefresh)
	}
	if len(scopes) == 0 && codeFlow {
		scopes = ScopeList{"openid"}
		if slices.Contains(grants, grantRefresh) {
			scopes = append(scopes, "offline_access")
		}
	}
	if slices.Contains(grants, grantRefresh) && !codeFlow {
		return Metadata{}, metadataErr("grant_types: refresh_token is only issued with authorization_code")
	}
	m.GrantTypes, m.Scope = grants, scopes

	// Response types.
	if len(m.ResponseTypes) > maxListEntries {
		return Metadata{}, metadataErr("response_types: too many entries")
	}
	var responses []string
	for _, rt := range m.ResponseTypes {
		if rt != responseTypeCode {
			return Metadata{}, metadataErr("response_types: %q is not supported (only \"code\")", clip(rt))
		}
		if !slices.Contains(responses, rt) {
			responses = append(responses, rt)
		}
	}
	switch {
	case len(responses) > 0 && !codeFlow:
		return Metadata{}, metadataErr("response_types: \"code\" needs the authorization_code grant type")
	case len(responses) == 0 && codeFlow:
		responses = []string{responseTypeCode}
	}
	m.ResponseTypes = responses

	// Client authentication.
	switch m.TokenEndpointAuthMethod {
	case "":
		m.TokenEndpointAuthMethod = AuthMethodSecretBasic
	case AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodPrivateKeyJWT, AuthMethodNone:
	case "client_secret_jwt":
		return Metadata{}, metadataErr("token_endpoint_auth_method: client_secret_jwt is not supported (use private_key_jwt)")
	default:
		return Metadata{}, metadataErr("token_endpoint_auth_method: %q is not supported", clip(m.TokenEndpointAuthMethod))
	}
	if m.TokenEndpointAuthMethod == AuthMethodNone && slices.Contains(grants, grantClientCreds) {
		return Metadata{}, metadataErr("grant_types: a public client (token_endpoint_auth_method none) cannot use client_credentials")
	}
	if m.JWKSURI != "" {
		return Metadata{}, metadataErr("jwks_uri is not supported; register the public keys inline with jwks")
	}
	if isJSONNull(m.JWKS) {
		m.JWKS = nil
	}
	if len(m.JWKS) > 0 {
		compact, err := checkJWKS(m.JWKS)
		if err != nil {
			return Metadata{}, err
		}
		m.JWKS = compact
	}
	if m.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT && len(m.JWKS) == 0 {
		return Metadata{}, metadataErr("jwks: private_key_jwt needs the client's public keys in jwks")
	}
	if m.TokenEndpointAuthSigningAlg != "" && !signingAlgSupported(m.TokenEndpointAuthSigningAlg) {
		return Metadata{}, metadataErr("token_endpoint_auth_signing_alg: %q is not supported", clip(m.TokenEndpointAuthSigningAlg))
	}
	if m.RequestObjectSigningAlg != "" && !signingAlgSupported(m.RequestObjectSigningAlg) {
		return Metadata{}, metadataErr("request_object_signing_alg: %q is not supported (unsigned request objects are refused)", clip(m.RequestObjectSigningAlg))
	}

	// Application type and redirection URIs.
	switch m.ApplicationType {
	case "", "web", "native":
	default:
		return Metadata{}, metadataErr("application_type: must be web or native")
	}
	native := m.ApplicationType == "native" || (m.ApplicationType == "" && m.TokenEndpointAuthMethod == AuthMethodNone)
	if codeFlow && len(m.RedirectURIs) == 0 {
		return Metadata{}, redirectErr("redirect_uris: at least one is required for the authorization_code grant")
	}
	if len(m.RedirectURIs) > maxListEntries {
		return Metadata{}, redirectErr("redirect_uris: too many entries")
	}
	for _, u := range m.RedirectURIs {
		if err := checkRedirectURI("redirect_uris", u, native); err != nil {
			return Metadata{}, err
		}
	}
	if len(m.PostLogoutRedirectURIs) > maxListEntries {
		return Metadata{}, redirectErr("post_logout_redirect_uris: too many entries")
	}
	for _, u := range m.PostLogoutRedirectURIs {
		if err := checkRedirectURI("post_logout_redirect_uris", u, native); err != nil {
			return Metadata{}, err
		}
	}
	m.RedirectURIs = dedupe(m.RedirectURIs)
	m.PostLogoutRedirectURIs = dedupe(m.PostLogoutRedirectURIs)

	// Informational URLs, shown to users: http(s) only.
	for _, f := range []struct{ name, value string }{
		{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}, {"tos_uri", m.TOSURI}, {"policy_uri", m.PolicyURI},
	} {
		if err := checkWebURL(f.name, f.value); err != nil {
			return Metadata{}, err
		}
	}
	if len(m.Contacts) > maxListEntries {
		return Metadata{}, metadataErr("contacts: too many entries")
	}
	for _, c := range m.Contacts {
		if c == "" {
			return Metadata{}, metadataErr("contacts: entries must not be empty")
		}
		if err := checkText("contacts", c); err != nil {
			return Metadata{}, err
		}
	}

	// Stepwise extensions.
	switch m.AccessTokenFormat {
	case "":
		m.AccessTokenFormat = AccessTokenOpaque
	case AccessTokenOpaque, AccessTokenJWT:
	default:
		return Metadata{}, metadataErr("access_token_format: must be opaque or jwt")
	}
	if len(m.Audience) > maxListEntries {
		return Metadata{}, metadataErr("audience: too many entries")
	}
	for _, a := range m.Audience {
		if a == "" || len(a) > maxURILength || strings.ContainsFunc(a, unicode.IsSpace) || hasControl(a) || !utf8.ValidString(a) {
			return Metadata{}, metadataErr("audience: %q is not a valid audience", clip(a))
		}
	}
	m.Audience = dedupe(m.Audience)
	return m, nil
}

// clone copies the slices so that normalising never aliases the caller's.
func (m Metadata) clone() Metadata {
	m.RedirectURIs = slices.Clone(m.RedirectURIs)
	m.GrantTypes = slices.Clone(m.GrantTypes)
	m.ResponseTypes = slices.Clone(m.ResponseTypes)
	m.Scope = slices.Clone(m.Scope)
	m.JWKS = slices.Clone(m.JWKS)
	m.PostLogoutRedirectURIs = slices.Clone(m.PostLogoutRedirectURIs)
	m.Contacts = slices.Clone(m.Contacts)
	m.Audience = slices.Clone(m.Audience)
	return m
}

// validScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > maxTextLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// checkRedirectURI applies RFC 6749 §3.1.2, RFC 8252 and OIDC Registration
// rules: absolute, no fragment, no user info; https, or http on a loopback
// host; private-use (reverse domain name) schemes for native clients only.
func checkRedirectURI(field, raw string, native bool) error {
	if raw == "" {
		return redirectErr("%s: entries must not be empty", field)
	}
	if len(raw) > maxURILength || hasControl(raw) || strings.ContainsFunc(raw, unicode.IsSpace) || !utf8.ValidString(raw) {
		return redirectErr("%s: %q is not a valid URI", field, clip(raw))
	}
	if strings.Contains(raw, "#") {
		return redirectErr("%s: %q must not contain a fragment", field, clip(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redirectErr("%s: %q is not a valid URI", field, clip(raw))
	}
	if !u.IsAbs() {
		return redirectErr("%s: %q must be an absolute URI", field, clip(raw))
	}
	if u.User != nil {
		return redirectErr("%s: %q must not contain user information", field, clip(raw))
	}
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" {
			return redirectErr("%s: %q has no host", field, clip(raw))
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return redirectErr("%s: %q must use https (http is allowed only for localhost and loopback addresses)", field, clip(raw))
		}
	case "javascript", "data", "vbscript", "file", "about", "blob", "ftp", "ws", "wss", "mailto", "urn":
		return redirectErr("%s: the %q scheme cannot be a redirection URI", field, u.Scheme)
	default:
		if !native {
			return redirectErr("%s: %q uses a private-use scheme, which only native clients (application_type native, or public clients) may register", field, clip(raw))
		}
		if !strings.Contains(u.Scheme, ".") {
			return redirectErr("%s: private-use scheme %q must be a reverse domain name such as com.example.app (RFC 8252 §7.1)", field, u.Scheme)
		}
	}
	return nil
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkWebURL accepts an empty value or an absolute http(s) URL with a host.
func checkWebURL(field, raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > maxURILength || hasControl(raw) || strings.ContainsFunc(raw, unicode.IsSpace) || !utf8.ValidString(raw) {
		return metadataErr("%s: not a valid URL", field)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.User != nil {
		return metadataErr("%s: must be an absolute http or https URL", field)
	}
	return nil
}

// checkText accepts short, printable UTF-8 text.
func checkText(field, s string) error {
	if len(s) > maxTextLength {
		return metadataErr("%s: longer than %d bytes", field, maxTextLength)
	}
	if !utf8.ValidString(s) || hasControl(s) {
		return metadataErr("%s: must be printable UTF-8 text", field)
	}
	return nil
}

// checkJWKS parses a JSON Web Key Set with go-jose and accepts it only if it
// holds between 1 and maxJWKSKeys public keys (RSA of at least 2048 bits,
// EC or Ed25519). It returns the set compacted.
func checkJWKS(raw json.RawMessage) (json.RawMessage, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, metadataErr("jwks: not a valid JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return nil, metadataErr("jwks: the key set has no keys")
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, metadataErr("jwks: more than %d keys", maxJWKSKeys)
	}
	for i, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, metadataErr("jwks: key %d is not a public key (private and symmetric keys are refused)", i)
		}
		if pub, ok := k.Key.(*rsa.PublicKey); ok && pub.N.BitLen() < minRSABits {
			return nil, metadataErr("jwks: RSA key %d is shorter than %d bits", i, minRSABits)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, metadataErr("jwks: key %d has use %q; only signing keys are accepted", i, clip(k.Use))
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, metadataErr("jwks: not valid JSON")
	}
	return buf.Bytes(), nil
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// dedupe removes repeated entries, keeping the first of each.
func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// clip shortens client-supplied text quoted back in an error description.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
