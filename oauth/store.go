package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/handler/rfc7523"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/stepwise-id/stepwise/storage"
)

// fositeStore maps fosite's storage contracts onto storage.Storage. Every
// artefact is a storage.Request row keyed by (kind, signature) and carrying
// the request ID, so a family can be revoked at once.
type fositeStore struct {
	s       storage.Storage
	clients *clientCache
	// decoded caches decoded access-token rows (decodecache.go); nil
	// disables it.
	decoded *decodeCache
	issuer  string
	grace   time.Duration
	now     func() time.Time
	log     *slog.Logger
}

var (
	_ fosite.ClientManager               = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ fosite.PARStorage                  = (*fositeStore)(nil)
	_ rfc7523.RFC7523KeyStorage          = (*fositeStore)(nil)
	_ fositestorage.Transactional        = (*fositeStore)(nil)
)

// storedRequest is the JSON form of a fosite request. The session is kept raw
// so it can be decoded into the session value fosite passes in.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`

	// Authorization-request fields, kept for pushed requests.
	ResponseTypes       []string `json:"response_types,omitempty"`
	RedirectURI         string   `json:"redirect_uri,omitempty"`
	State               string   `json:"state,omitempty"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	DefaultResponseMode string   `json:"default_response_mode,omitempty"`
}

// secretFormKeys never reach storage: a pushed request's form holds the
// client's credentials.
var secretFormKeys = []string{"client_secret", "client_assertion", "client_assertion_type"}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
	}
	if c := r.GetClient(); c != nil {
		sr.ClientID = c.GetID()
	}
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		form[k] = append([]string(nil), v...)
	}
	for _, k := range secretFormKeys {
		form.Del(k)
	}
	sr.Form = form
	if s := r.GetSession(); s != nil {
		b, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("encode session: %w", err)
		}
		sr.Session = b
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		sr.ResponseTypes = ar.GetResponseTypes()
		if u := ar.GetRedirectURI(); u != nil {
			sr.RedirectURI = u.String()
		}
		sr.State = ar.GetState()
		sr.ResponseMode = string(ar.GetResponseMode())
		sr.DefaultResponseMode = string(ar.GetDefaultResponseMode())
	}
	return json.Marshal(sr)
}

// decodeRequest rebuilds a request, decoding the session into sess.
func (s *fositeStore) decodeRequest(ctx context.Context, data []byte, sess fosite.Session) (*fosite.Request, storedRequest, error) {
	var sr storedRequest
	if sess == nil {
		if err := json.Unmarshal(data, &sr); err != nil {
			return nil, sr, fmt.Errorf("decode request: %w", err)
		}
	} else {
		// Decode the session in the same pass, straight into sess: the
		// shallower "session" field shadows storedRequest's raw one, and
		// encoding/json fills the value a non-nil interface points to.
		// Decoding into the RawMessage first and then again into sess
		// scanned the session twice; this is the introspection hot path.
		one := struct {
			*storedRequest
			Session fosite.Session `json:"session"`
		}{&sr, sess}
		if err := json.Unmarshal(data, &one); err != nil {
			return nil, sr, fmt.Errorf("decode request: %w", err)
		}
	}
	return s.buildRequest(ctx, sr, sess)
}

// decodeRow is decodeRequest for a stored row, through the decode cache.
func (s *fositeStore) decodeRow(ctx context.Context, row storage.Request, sess fosite.Session) (*fosite.Request, storedRequest, error) {
	ss, ok := sess.(*Session)
	if !ok || ss == nil {
		return s.decodeRequest(ctx, row.Data, sess)
	}
	if sr, hit := s.decoded.lookup(row, ss); hit {
		return s.buildRequest(ctx, sr, sess)
	}
	req, sr, err := s.decodeRequest(ctx, row.Data, sess)
	if err == nil {
		s.decoded.store(row, sr, ss)
	}
	return req, sr, err
}

// buildRequest makes the fosite request of a decoded row.
func (s *fositeStore) buildRequest(ctx context.Context, sr storedRequest, sess fosite.Session) (*fosite.Request, storedRequest, error) {
	client, err := s.clients.get(ctx, sr.ClientID)
	if err != nil {
		if isNotFound(err) {
			// A deleted client's tokens are dead.
			return nil, sr, fosite.ErrNotFound
		}
		return nil, sr, err
	}
	req := &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           sess,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	return req, sr, nil
}

func (s *fositeStore) create(ctx context.Context, kind storage.Kind, sig, accessSig string, r fosite.Requester, expires time.Time) error {
	data, err := encodeRequest(r)
	if err != nil {
		return err
	}
	row := storage.Request{
		Kind:            kind,
		Signature:       sig,
		RequestID:       r.GetID(),
		Active:          true,
		AccessSignature: accessSig,
		RequestedAt:     r.GetRequestedAt(),
		ExpiresAt:       expires,
		Data:            data,
	}
	if c := r.GetClient(); c != nil {
		row.ClientID = c.GetID()
	}
	if sess := r.GetSession(); sess != nil {
		row.Subject = sess.GetSubject()
		if ss, ok := sess.(*Session); ok {
			row.SessionID = ss.SessionID
		}
	}
	if row.RequestedAt.IsZero() {
		row.RequestedAt = s.now()
	}
	if err := s.s.CreateRequest(ctx, row); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	return nil
}

// expiry picks the row's expiry from the session, falling back to def.
func (s *fositeStore) expiry(r fosite.Requester, tt fosite.TokenType, def time.Duration) time.Time {
	if sess := r.GetSession(); sess != nil {
		if t := sess.GetExpiresAt(tt); !t.IsZero() {
			return t
		}
	}
	return s.now().Add(def)
}

// get loads a row; inactive rows are returned with active=false.
func (s *fositeStore) get(ctx context.Context, kind storage.Kind, sig string, sess fosite.Session) (*fosite.Request, storage.Request, error) {
	row, err := s.s.GetRequest(ctx, kind, sig)
	if err != nil {
		if isNotFound(err) {
			return nil, row, fosite.ErrNotFound
		}
		return nil, row, fmt.Errorf("load %s: %w", kind, err)
	}
	req, _, err := s.decodeRow(ctx, row, sess)
	if err != nil {
		return nil, row, err
	}
	return req, row, nil
}

func (s *fositeStore) del(ctx context.Context, kind storage.Kind, sig string) error {
	if err := s.s.DeleteRequest(ctx, kind, sig); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}

// --- fosite.ClientManager ---

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	rp, err := s.clients.get(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, fosite.ErrNotFound
		}
		return nil, err
	}
	return rp, nil
}

// ClientAssertionJWTValid always passes: the check and the record happen
// atomically in SetClientAssertionJWT, so two concurrent uses of one jti
// cannot both succeed.
func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }

func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.s.UseJTI(ctx, jti, exp, s.now())
	if errors.Is(err, storage.ErrAlreadyExists) {
		return fosite.ErrJTIKnown.WithHint("Claim 'jti' from 'client_assertion' MUST only be used once.")
	}
	if err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

// --- authorization codes ---

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAuthorizeCode, sig, "", r, s.expiry(r, fosite.AuthorizeCode, DefaultAuthCodeLifespan))
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, row, err := s.get(ctx, storage.KindAuthorizeCode, sig, sess)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		// fosite needs the request to revoke what the code issued.
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession deactivates without grace: of two concurrent
// exchanges of one code exactly one gets past here.
func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	if err := s.s.DeactivateRequest(ctx, storage.KindAuthorizeCode, sig, s.now(), time.Time{}); err != nil {
		return fmt.Errorf("invalidate code: %w", err)
	}
	return nil
}

// --- access tokens ---

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAccessToken, sig, "", r, s.expiry(r, fosite.AccessToken, DefaultAccessTokenLifespan))
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, row, err := s.get(ctx, storage.KindAccessToken, sig, sess)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.del(ctx, storage.KindAccessToken, sig)
}

// --- refresh tokens ---

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	return s.create(ctx, storage.KindRefreshToken, sig, accessSig, r, s.expiry(r, fosite.RefreshToken, DefaultRefreshTokenLifespan))
}

// GetRefreshTokenSession returns a rotated token together with
// ErrInactiveToken so fosite can revoke its family — unless it was rotated
// within the grace period, when it is still honoured once more.
func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, row, err := s.get(ctx, storage.KindRefreshToken, sig, sess)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		if s.grace > 0 && !row.DeactivatedAt.IsZero() && row.DeactivatedAt.After(s.now().Add(-s.grace)) {
			return req, nil
		}
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.del(ctx, storage.KindRefreshToken, sig)
}

func (s *fositeStore) RotateRefreshToken(ctx context.Context, _ string, sig string) error {
	now := s.now()
	var graceSince time.Time
	if s.grace > 0 {
		graceSince = now.Add(-s.grace)
	}
	err := s.s.DeactivateRequest(ctx, storage.KindRefreshToken, sig, now, graceSince)
	switch {
	case errors.Is(err, storage.ErrInactive):
		return fosite.ErrInactiveToken
	case isNotFound(err):
		return fosite.ErrNotFound
	case err != nil:
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
}

// --- revocation ---

func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := s.s.DeleteRequestsByID(ctx, storage.KindRefreshToken, requestID); err != nil {
		return fmt.Errorf("revoke refresh tokens: %w", err)
	}
	return nil
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	if _, err := s.s.DeleteRequestsByID(ctx, storage.KindAccessToken, requestID); err != nil {
		return fmt.Errorf("revoke access tokens: %w", err)
	}
	return nil
}

// --- OpenID Connect ---

// oidcKey hashes the authorization code: fosite hands over the code itself,
// and storage must never hold a replayable token.
func oidcKey(code string) string {
	h := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, storage.KindOIDC, oidcKey(code), "", r, s.expiry(r, fosite.AuthorizeCode, DefaultAuthCodeLifespan))
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.get(ctx, storage.KindOIDC, oidcKey(code), r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.del(ctx, storage.KindOIDC, oidcKey(code))
}

// --- PKCE ---

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, storage.KindPKCE, sig, "", r, s.expiry(r, fosite.AuthorizeCode, DefaultAuthCodeLifespan))
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, _, err := s.get(ctx, storage.KindPKCE, sig, sess)
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.del(ctx, storage.KindPKCE, sig)
}

// --- PAR ---

func (s *fositeStore) CreatePARSession(ctx context.Context, uri string, r fosite.AuthorizeRequester) error {
	return s.create(ctx, storage.KindPAR, uri, "", r, s.expiry(r, fosite.PushedAuthorizeRequestContext, DefaultPARLifespan))
}

func (s *fositeStore) GetPARSession(ctx context.Context, uri string) (fosite.AuthorizeRequester, error) {
	row, err := s.s.GetRequest(ctx, storage.KindPAR, uri)
	if err != nil {
		if isNotFound(err) {
			return nil, fosite.ErrNotFound
		}
		return nil, fmt.Errorf("load par: %w", err)
	}
	if !row.Active || !s.now().Before(row.ExpiresAt) {
		return nil, fosite.ErrNotFound
	}
	sess := newSession(s.issuer)
	req, sr, err := s.decodeRequest(ctx, row.Data, sess)
	if err != nil {
		return nil, err
	}
	ar := &fosite.AuthorizeRequest{
		Request:              *req,
		ResponseTypes:        sr.ResponseTypes,
		State:                sr.State,
		ResponseMode:         fosite.ResponseModeType(sr.ResponseMode),
		DefaultResponseMode:  fosite.ResponseModeType(sr.DefaultResponseMode),
		HandledResponseTypes: fosite.Arguments{},
	}
	if sr.RedirectURI != "" {
		u, err := url.Parse(sr.RedirectURI)
		if err != nil {
			return nil, fmt.Errorf("decode par redirect uri: %w", err)
		}
		ar.RedirectURI = u
	}
	return ar, nil
}

func (s *fositeStore) DeletePARSession(ctx context.Context, uri string) error {
	return s.del(ctx, storage.KindPAR, uri)
}

// --- RFC 7523 (JWT bearer grant) ---
//
// The grant is not enabled: no trust relationships are stored, so every
// lookup reports not found. The methods exist so the adapter satisfies the
// full fosite storage surface and the grant can be switched on later.

func (s *fositeStore) GetPublicKey(context.Context, string, string, string) (*jose.JSONWebKey, error) {
	return nil, fosite.ErrNotFound
}

func (s *fositeStore) GetPublicKeys(context.Context, string, string) (*jose.JSONWebKeySet, error) {
	return nil, fosite.ErrNotFound
}

func (s *fositeStore) GetPublicKeyScopes(context.Context, string, string, string) ([]string, error) {
	return nil, fosite.ErrNotFound
}

func (s *fositeStore) IsJWTUsed(ctx context.Context, jti string) (bool, error) {
	return false, nil
}

func (s *fositeStore) MarkJWTUsedForTime(ctx context.Context, jti string, exp time.Time) error {
	err := s.s.UseJTI(ctx, jti, exp, s.now())
	if errors.Is(err, storage.ErrAlreadyExists) {
		return fosite.ErrJTIKnown
	}
	return err
}

// --- storage.Transactional ---

func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) { return s.s.BeginTx(ctx) }
func (s *fositeStore) Commit(ctx context.Context) error                     { return s.s.Commit(ctx) }
func (s *fositeStore) Rollback(ctx context.Context) error                   { return s.s.Rollback(ctx) }
