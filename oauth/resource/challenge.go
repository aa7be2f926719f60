package resource

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Error codes of RFC 6750 §3.1 and RFC 9470 §3.
const (
	CodeInvalidRequest                 = "invalid_request"
	CodeInvalidToken                   = "invalid_token"
	CodeInsufficientScope              = "insufficient_scope"
	CodeInsufficientUserAuthentication = "insufficient_user_authentication"
)

// Challenge is a refusal, as the status and Bearer WWW-Authenticate challenge
// of RFC 6750 §3 and RFC 9470 §3. It is also an error.
type Challenge struct {
	Status      int    // 400, 401 or 403
	Code        string // empty when the request carried no token (RFC 6750 §3.1)
	Description string
	Scope       []string // insufficient_scope: what the route needs
	ACRValues   []string // insufficient_user_authentication: acceptable acr values
	MaxAge      int      // insufficient_user_authentication: seconds; 0 for none
	// Scheme is the challenge's auth scheme: "Bearer" when empty, "DPoP"
	// for tokens presented with DPoP (RFC 9449 §7.1).
	Scheme string
	// Algs is the algs parameter of a DPoP challenge; Nonce, when set, is
	// sent as DPoP-Nonce (use_dpop_nonce, RFC 9449 §9).
	Algs  []string
	Nonce string
}

// Error implements error.
func (c *Challenge) Error() string {
	if c.Code == "" {
		return "bearer token required"
	}
	if c.Description == "" {
		return c.Code
	}
	return c.Code + ": " + c.Description
}

// Header renders the WWW-Authenticate value; realm is optional.
func (c *Challenge) Header(realm string) string {
	var b strings.Builder
	if c.Scheme != "" {
		b.WriteString(c.Scheme)
	} else {
		b.WriteString("Bearer")
	}
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString("=")
		b.WriteString(quote(value))
		sep = ", "
	}
	if realm != "" {
		param("realm", realm)
	}
	if c.Code != "" {
		param("error", c.Code)
	}
	if c.Description != "" {
		param("error_description", c.Description)
	}
	if len(c.Scope) > 0 {
		param("scope", strings.Join(c.Scope, " "))
	}
	if len(c.ACRValues) > 0 {
		param("acr_values", strings.Join(c.ACRValues, " "))
	}
	if len(c.Algs) > 0 {
		param("algs", strings.Join(c.Algs, " "))
	}
	if c.MaxAge > 0 {
		// RFC 9470 §3 shows max_age as a token, unquoted.
		b.WriteString(sep)
		b.WriteString("max_age=")
		b.WriteString(strconv.Itoa(c.MaxAge))
	}
	return b.String()
}

// Write sends the challenge: status, WWW-Authenticate and a small JSON body.
func (c *Challenge) Write(w http.ResponseWriter, realm string) {
	h := w.Header()
	h.Set("WWW-Authenticate", c.Header(realm))
	if c.Nonce != "" {
		h.Set("DPoP-Nonce", c.Nonce)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(c.Status)
	body := map[string]string{"error": c.Code}
	if c.Code == "" {
		body["error"] = "unauthorized"
	}
	if c.Description != "" {
		body["error_description"] = c.Description
	}
	_ = json.NewEncoder(w).Encode(body)
}

// quote makes an RFC 9110 quoted-string. RFC 6750 allows only printable
// ASCII without '"' and '\' in its attribute values; anything else is
// escaped or replaced, so a value can never break out of its quotes or the
// header.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch < 0x20 || ch >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// bearerToken extracts the token of an Authorization: Bearer header (RFC
// 6750 §2.1). It returns a challenge without an error code when there is no
// bearer token at all, and invalid_request when the header is malformed or
// repeated.
func bearerToken(h http.Header) (string, *Challenge) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", &Challenge{Status: http.StatusUnauthorized}
	case len(vals) > 1:
		return "", &Challenge{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: "More than one Authorization header"}
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, DPoP, …) is no bearer token: ask for one.
		return "", &Challenge{Status: http.StatusUnauthorized}
	}
	token := strings.Trim(rest, " ")
	if !isB64Token(token) {
		return "", &Challenge{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: "Malformed bearer token"}
	}
	return token, nil
}

// maxTokenLen bounds a bearer token; larger ones are refused before any
// parsing or network call.
const maxTokenLen = 16 << 10

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
