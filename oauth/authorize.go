package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/stepwise-id/stepwise/storage"
)

// ErrUnmetAuthenticationRequirements is the OpenID Connect Core errata error
// for "the user could not reach the requested assurance".
var ErrUnmetAuthenticationRequirements = &fosite.RFC6749Error{
	ErrorField:       "unmet_authentication_requirements",
	DescriptionField: "The authorization server is unable to meet the requested authentication requirements.",
	CodeField:        http.StatusBadRequest,
}

// maxAuthnAttempts bounds how often one paused request sends the browser to
// sign in before giving up with unmet_authentication_requirements, so a
// browser-facing layer that never records an outcome cannot loop forever.
const maxAuthnAttempts = 3

// authState is what a paused request remembers (storage.AuthRequest.Data).
type authState struct {
	// PAR records that the request arrived through a pushed request_uri;
	// the stored form already has the pushed parameters merged in, because
	// fosite consumed the request_uri on first use.
	PAR           bool        `json:"par,omitempty"`
	AuthnAttempts int         `json:"authn,omitempty"`
	ConsentAsked  bool        `json:"consent,omitempty"`
	Requirement   Requirement `json:"requirement"`
}

func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if e := p.readForm(w, r); e != nil {
		p.writeAuthorizeError(r.Context(), w, fosite.NewAuthorizeRequest(), e)
		return
	}
	if unsignedRequestObject(r.Form.Get("request")) {
		p.writeAuthorizeError(r.Context(), w, fosite.NewAuthorizeRequest(), fosite.ErrInvalidRequestObject.WithHint("Unsigned (alg none) request objects are not accepted."))
		return
	}
	prefix := p.fcfg.GetPushedAuthorizeRequestURIPrefix(r.Context())
	viaPAR := strings.HasPrefix(r.Form.Get("request_uri"), prefix)
	p.authorize(w, r, r, nil, authState{PAR: viaPAR})
}

// serveResume continues a paused authorization request once the browser
// signed in, stepped up or answered the consent page.
func (p *Provider) serveResume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	a, err := p.store.GetAuthRequest(ctx, id)
	if err != nil || !p.cfg.Now().Before(a.ExpiresAt) {
		if err != nil && !isNotFound(err) {
			p.log.ErrorContext(ctx, "load auth request", "err", err)
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error":             "invalid_request",
			"error_description": "The authorization request is unknown or has expired; start again from the application.",
		})
		return
	}
	var st authState
	if len(a.Data) > 0 {
		if err := json.Unmarshal(a.Data, &st); err != nil {
			p.log.ErrorContext(ctx, "decode auth request state", "err", err)
		}
	}
	form, err := url.ParseQuery(a.Form)
	if err != nil {
		p.log.ErrorContext(ctx, "decode auth request form", "err", err)
		_ = p.store.DeleteAuthRequest(ctx, a.ID)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	// Replay the stored parameters through fosite as a fresh GET, so every
	// check (client, redirect URI, scopes, PKCE) runs again.
	replay := r.Clone(ctx)
	replay.Method = http.MethodGet
	replay.URL = &url.URL{Path: PathAuthorize, RawQuery: form.Encode()}
	replay.Body = http.NoBody
	replay.ContentLength = 0
	replay.Header = r.Header.Clone()
	replay.Header.Del("Content-Type")
	replay.Form, replay.PostForm, replay.MultipartForm = nil, nil, nil
	if err := replay.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	p.authorize(w, r, replay, &a, st)
}

// authorize runs the authorization endpoint. browser is the live request
// (cookies, IP); r carries the authorization parameters (the same request,
// or a replay of a paused one).
func (p *Provider) authorize(w http.ResponseWriter, browser, r *http.Request, pending *storage.AuthRequest, st authState) {
	ctx := r.Context()
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.finish(ctx, pending)
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	fail := func(err error) {
		p.finish(ctx, pending)
		p.writeAuthorizeError(ctx, w, ar, err)
	}
	rp, ok := ar.GetClient().(*relyingParty)
	if !ok {
		fail(fosite.ErrServerError.WithDebug("unexpected client type"))
		return
	}
	form := ar.GetRequestForm()
	if rp.c.RequirePAR && !st.PAR {
		fail(fosite.ErrInvalidRequest.WithHint("This client must use pushed authorization requests (RFC 9126)."))
		return
	}
	if rp.c.RequirePKCE && form.Get("code_challenge") == "" {
		fail(fosite.ErrInvalidRequest.WithHint("This client must send a PKCE code_challenge (S256)."))
		return
	}
	if err := checkDPoPJKT(form); err != nil { // RFC 9449 §10 (dpop.go)
		fail(err)
		return
	}
	if pending != nil {
		switch pending.Outcome {
		case "denied":
			fail(fosite.ErrAccessDenied.WithHint("The user refused the request."))
			return
		case "unmet":
			fail(ErrUnmetAuthenticationRequirements.WithHint("The user could not reach the required assurance level."))
			return
		}
	}

	now := p.cfg.Now().UTC()
	requestedAt := now
	if pending != nil {
		// fosite's prompt/max_age checks compare auth_time with the time the
		// request was first received. Truncated to the second because
		// auth_time travels in whole seconds.
		requestedAt = pending.CreatedAt.UTC().Truncate(time.Second)
	}
	req, err := p.protocolRequirement(rp.GetID(), form, requestedAt)
	if err != nil {
		fail(err)
		return
	}
	login, err := p.ui.CurrentLogin(browser)
	if err != nil {
		p.log.WarnContext(ctx, "read current login", "err", err)
		login = nil
	}
	if login != nil && pending != nil && pending.SessionID != "" && login.SessionID != pending.SessionID {
		// The paused request is bound to the browser session that first
		// signed in for it; another session must authenticate afresh.
		login = nil
	}
	v, rerr := p.evaluate(ctx, GateRequest{
		HTTP: browser, GrantType: "authorization_code", ClientID: rp.GetID(),
		Scopes: ar.GetRequestedScopes(), Login: login, Requirement: req,
	})
	if rerr != nil {
		fail(rerr)
		return
	}
	req = v.Requirement
	prompt := form.Get("prompt")
	fresh := pending == nil && (hasPrompt(prompt, "login") || hasPrompt(prompt, "select_account"))
	if fresh || !p.satisfies(login, req) {
		if hasPrompt(prompt, "none") {
			fail(fosite.ErrLoginRequired.WithHint("The user must authenticate (or step up) but prompt=none was requested."))
			return
		}
		if st.AuthnAttempts >= maxAuthnAttempts {
			fail(ErrUnmetAuthenticationRequirements.WithHint("The required assurance level was not reached."))
			return
		}
		st.AuthnAttempts++
		st.Requirement = req
		a, err := p.pause(ctx, ar, pending, st, now, nil)
		if err != nil {
			fail(err)
			return
		}
		p.ui.Authenticate(w, browser, p.pendingFor(a, rp, ar, req))
		return
	}

	user, err := p.store.GetUser(ctx, login.Subject)
	if err != nil || user.Disabled {
		if err != nil && !isNotFound(err) {
			fail(fosite.ErrServerError.WithWrap(err))
			return
		}
		fail(fosite.ErrAccessDenied.WithHint("The account is not available."))
		return
	}

	scopes := ar.GetRequestedScopes()
	needConsent := hasPrompt(prompt, "consent") && !st.ConsentAsked
	if !needConsent {
		covered, err := p.consentCovers(ctx, login.Subject, rp.GetID(), scopes)
		if err != nil {
			fail(fosite.ErrServerError.WithWrap(err))
			return
		}
		if !covered {
			if st.ConsentAsked {
				fail(fosite.ErrAccessDenied.WithHint("The user did not approve the requested scopes."))
				return
			}
			needConsent = true
		}
	}
	if needConsent {
		if hasPrompt(prompt, "none") {
			fail(fosite.ErrConsentRequired.WithHint("The user must approve the request but prompt=none was requested."))
			return
		}
		st.ConsentAsked = true
		st.Requirement = req
		a, err := p.pause(ctx, ar, pending, st, now, login)
		if err != nil {
			fail(err)
			return
		}
		p.ui.Consent(w, browser, p.pendingFor(a, rp, ar, req))
		return
	}

	for _, s := range scopes {
		if s == ScopeOfflineAccess && !rp.GetGrantTypes().Has("refresh_token") {
			continue
		}
		ar.GrantScope(s)
	}
	grantAudience(ar, rp)
	sess := newSession(p.cfg.Issuer)
	sess.ClientID = rp.GetID()
	sess.setLogin(login, requestedAt)
	sess.RiskDecision = v.DecisionID
	sess.DPoPJKT = form.Get("dpop_jkt") // binds the code (RFC 9449 §10)
	if far, ok := ar.(*fosite.AuthorizeRequest); ok {
		far.RequestedAt = requestedAt
	}
	resp, err := p.oauth.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		fail(err)
		return
	}
	// RFC 9207: tell the client which issuer answered (mix-up defence).
	resp.AddParameter("iss", p.cfg.Issuer)
	p.finish(ctx, pending)
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// grantAudience grants the requested (already validated) audience, or the
// client's registered audience when none was requested.
func grantAudience(ar fosite.Requester, rp *relyingParty) {
	aud := ar.GetRequestedAudience()
	if len(aud) == 0 {
		aud = rp.c.Audience
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
}

func (p *Provider) pendingFor(a *storage.AuthRequest, rp *relyingParty, ar fosite.AuthorizeRequester, req Requirement) Pending {
	return Pending{
		ID:          a.ID,
		ClientID:    rp.GetID(),
		ClientName:  rp.c.Name,
		Scopes:      slices.Clone([]string(ar.GetRequestedScopes())),
		Requirement: req,
		ResumeURL:   PathAuthorizeResume + "?id=" + url.QueryEscape(a.ID),
		LoginHint:   ar.GetRequestForm().Get("login_hint"),
	}
}

// pause stores (or updates) the paused request.
func (p *Provider) pause(ctx context.Context, ar fosite.AuthorizeRequester, pending *storage.AuthRequest, st authState, now time.Time, login *Login) (*storage.AuthRequest, error) {
	// Only a consent pause binds the request: the login is final by then,
	// whereas a sign-in or step-up may legitimately rotate the session ID.
	var sid string
	if login != nil {
		sid = login.SessionID
	}
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if pending != nil {
		err := p.store.UpdateAuthRequest(ctx, pending.ID, func(a storage.AuthRequest) (storage.AuthRequest, error) {
			a.Data = data
			if a.SessionID == "" {
				a.SessionID = sid
			}
			return a, nil
		})
		if err != nil {
			return nil, fosite.ErrServerError.WithWrap(fmt.Errorf("update auth request: %w", err))
		}
		pending.Data = data
		if pending.SessionID == "" {
			pending.SessionID = sid
		}
		return pending, nil
	}
	form := url.Values{}
	for k, v := range ar.GetRequestForm() {
		form[k] = slices.Clone(v)
	}
	if st.PAR {
		// The request_uri is consumed; the merged parameters replace it.
		form.Del("request_uri")
	}
	for _, k := range secretFormKeys {
		form.Del(k)
	}
	id, err := randomID()
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	a := storage.AuthRequest{
		ID:        id,
		ClientID:  ar.GetClient().GetID(),
		SessionID: sid,
		Form:      form.Encode(),
		Data:      data,
		CreatedAt: now,
		ExpiresAt: now.Add(p.cfg.AuthRequestLifespan),
	}
	if err := p.store.CreateAuthRequest(ctx, a); err != nil {
		return nil, fosite.ErrServerError.WithWrap(fmt.Errorf("store auth request: %w", err))
	}
	return &a, nil
}

// finish deletes a paused request once it produced a code or an error, so
// its resume URL cannot be replayed.
func (p *Provider) finish(ctx context.Context, pending *storage.AuthRequest) {
	if pending == nil {
		return
	}
	if err := p.store.DeleteAuthRequest(ctx, pending.ID); err != nil && !isNotFound(err) {
		p.log.WarnContext(ctx, "delete auth request", "err", err)
	}
}

// consentCovers reports whether the remembered consent includes every scope.
// openid alone needs no consent: it only says who the user is to the client
// the user is signing in to.
func (p *Provider) consentCovers(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	need := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return s == ScopeOpenID })
	if len(need) == 0 {
		return true, nil
	}
	c, err := p.store.GetConsent(ctx, userID, clientID)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load consent: %w", err)
	}
	for _, s := range need {
		if !slices.Contains(c.Scopes, s) {
			return false, nil
		}
	}
	return true, nil
}

// writeAuthorizeError redirects the error to the client when the redirect URI
// was validated (adding state and iss, RFC 9207), and otherwise shows it.
func (p *Provider) writeAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.log.ErrorContext(ctx, "authorize failed", "err", err)
	}
	if ar == nil {
		ar = fosite.NewAuthorizeRequest()
	}
	if !ar.IsRedirectURIValid() {
		p.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	noStore(w)
	values := rfc.WithExposeDebug(false).ToValues()
	values.Set("state", ar.GetState())
	values.Set("iss", p.cfg.Issuer)
	redirect := *ar.GetRedirectURI()
	redirect.Fragment = ""
	switch ar.GetResponseMode() {
	case fosite.ResponseModeFormPost:
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		fosite.WriteAuthorizeFormPostResponse(redirect.String(), values, fosite.GetPostFormHTMLTemplate(ctx, p.oauth), w)
		return
	case fosite.ResponseModeFragment:
		w.Header().Set("Location", redirect.String()+"#"+values.Encode())
	default:
		q := redirect.Query()
		for k, v := range values {
			q[k] = v
		}
		redirect.RawQuery = q.Encode()
		w.Header().Set("Location", redirect.String())
	}
	w.WriteHeader(http.StatusSeeOther)
}

func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// errorsIsInactive reports a storage "already used" condition hidden in a
// fosite error chain.
func errorsIsInactive(err error) bool {
	// ErrInvalidatedAuthorizeCode arrives when a concurrent exchange
	// deactivated the code between fosite's two reads of it.
	return errors.Is(err, storage.ErrInactive) || errors.Is(err, fosite.ErrInactiveToken) ||
		errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)
}

// unsignedRequestObject reports whether a JAR request object declares alg
// "none". fosite accepts those unless the client registered an algorithm; we
// refuse them outright, since a request object that proves nothing only
// hides parameters from inspection.
func unsignedRequestObject(obj string) bool {
	if obj == "" {
		return false
	}
	head, _, _ := strings.Cut(obj, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false // malformed: fosite rejects it with the right error
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return false
	}
	return strings.EqualFold(h.Alg, "none")
}
