// Package web is Stepwise's browser-facing layer: the sign-in, consent,
// sign-out and account pages, the browser session cookie, and the security
// headers and cross-origin checks applied to every response.
//
// It implements [oauth.Interaction] and [oauth.Logouter], so the OAuth core
// can ask "who is signed in?" and hand the browser over to sign in, consent
// or sign out, and take it back at the Pending.ResumeURL afterwards.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/storage"
)

//go:embed static
var staticFiles embed.FS

// Defaults for the zero values of Config.
const (
	DefaultSessionLifetime    = 12 * time.Hour
	DefaultSessionIdleTimeout = 2 * time.Hour
)

// DefaultCrossOriginBypass lists the OAuth endpoints that are called
// cross-origin by design (by client back-ends and single-page apps) and so
// are exempt from the cross-origin form check. Patterns use
// [http.ServeMux] syntax.
func DefaultCrossOriginBypass() []string {
	return []string{
		"POST /oauth2/token",
		"POST /oauth2/introspect",
		"POST /oauth2/revoke",
		"POST /oauth2/par",
		"/oauth2/register",
		"/oauth2/register/",
		"POST /oauth2/userinfo",
		// Cross-site by design, and each only does what its GET does: an
		// authorization request sent as a form POST (OIDC Core §3.1.2.1) and
		// RP-initiated logout by POST, which only shows a confirmation page.
		"POST /oauth2/authorize",
		"POST /oauth2/logout",
	}
}

// CookieKey is one pair of gorilla/securecookie keys. HashKey (32 or 64
// bytes) authenticates the cookie; BlockKey (16, 24 or 32 bytes, or nil for
// none) encrypts it.
type CookieKey struct {
	HashKey  []byte
	BlockKey []byte
}

// AccountSection renders one extra section of the /account page for user,
// such as the passkey list. It is the extension point for features that
// live beside the account basics.
type AccountSection func(ctx context.Context, user storage.User) (templ.Component, error)

// Config configures the browser-facing layer.
type Config struct {
	// Issuer is the server's public URL (http://localhost:8080). An https
	// issuer makes the session cookie Secure and __Host- prefixed and turns
	// on HSTS. Pages are served at the root of its origin.
	Issuer string
	// SessionLifetime is the absolute lifetime of a browser session from
	// its last (re-)authentication; DefaultSessionLifetime (12h) if zero.
	SessionLifetime time.Duration
	// SessionIdleTimeout ends a session unused for this long;
	// DefaultSessionIdleTimeout (2h) if zero, negative to disable.
	SessionIdleTimeout time.Duration
	// CookieKeys sign (and optionally encrypt) the session cookie. The first
	// pair is used to encode; all are tried to decode, so keys can be
	// rotated by prepending a new pair. The caller generates and persists
	// them. At least one pair is required.
	CookieKeys []CookieKey
	// Ladder names the assurance levels; oauth.DefaultLadder() if zero.
	Ladder oauth.Ladder
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// working out the client's IP address.
	TrustedProxies []netip.Prefix
	// CrossOriginBypass replaces DefaultCrossOriginBypass when non-nil.
	CrossOriginBypass []string
	// ScopeDescriptions adds or overrides the human description shown on
	// the consent page for a scope.
	ScopeDescriptions map[string]string
	// AccountSections are extra sections rendered on /account, in order.
	AccountSections []AccountSection
	// Passkeys runs the WebAuthn ceremonies; nil turns passkeys off (no
	// passkey sign-in, step-up, enrolment or passkey list).
	Passkeys *passkey.Service
	// SteppedUpLifetime is how long a step-up's elevated level lasts on a
	// session before it decays to the level of the sign-in;
	// DefaultSteppedUpLifetime (15m) if zero.
	SteppedUpLifetime time.Duration
	// Now returns the current time; time.Now if nil. For tests.
	Now func() time.Time

	// OnEvent, if set, sees every audit event after it is stored (the risk
	// engine learns sign-ins, step-ups and failures from it). It runs on
	// the request's goroutine and must be quick.
	OnEvent func(ctx context.Context, e storage.Event)
}

// Server serves the browser-facing pages and implements oauth.Interaction
// and oauth.Logouter.
type Server struct {
	store   storage.Storage
	log     *slog.Logger
	ladder  oauth.Ladder
	now     func() time.Time
	origin  string // scheme://host[:port] of the issuer
	secure  bool
	proxies []netip.Prefix

	lifetime time.Duration
	idle     time.Duration

	cookies    *sessions.CookieStore
	cookieName string
	// stateCodecs sign short-lived values carried through forms (the
	// post-logout redirect).
	stateCodecs []securecookie.Codec

	cop      *http.CrossOriginProtection
	throttle *throttle
	scopes   map[string]string
	sections []AccountSection

	passkeys  *passkey.Service // nil: passkeys off
	steppedUp time.Duration
	// enrollKeys verify enrolment-link tokens, one per cookie key pair.
	enrollKeys [][]byte

	// onEvent and deviceCodecs serve the risk engine (device.go).
	onEvent      func(context.Context, storage.Event)
	deviceCodecs []securecookie.Codec

	static fs.FS
	cssURL string
	jsURL  string
	mux    *http.ServeMux
}

var (
	_ oauth.Interaction = (*Server)(nil)
	_ oauth.Logouter    = (*Server)(nil)
)

// New builds the browser-facing layer on store.
func New(cfg Config, store storage.Storage, logger *slog.Logger) (*Server, error) {
	if store == nil {
		return nil, errors.New("web: nil storage")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("web: parse issuer: %w", err)
	}
	if (iss.Scheme != "http" && iss.Scheme != "https") || iss.Host == "" {
		return nil, fmt.Errorf("web: issuer %q must be an absolute http(s) URL", cfg.Issuer)
	}
	s := &Server{
		store:    store,
		log:      logger,
		ladder:   cfg.Ladder,
		now:      cfg.Now,
		origin:   iss.Scheme + "://" + iss.Host,
		secure:   iss.Scheme == "https",
		proxies:  cfg.TrustedProxies,
		lifetime: cfg.SessionLifetime,
		idle:     cfg.SessionIdleTimeout,
		sections: cfg.AccountSections,
		scopes:   cfg.ScopeDescriptions,

		passkeys:  cfg.Passkeys,
		steppedUp: cfg.SteppedUpLifetime,
		onEvent:   cfg.OnEvent,
	}
	if s.steppedUp <= 0 {
		s.steppedUp = DefaultSteppedUpLifetime
	}
	if s.ladder.Name(oauth.LevelPassword) == "" {
		s.ladder = oauth.DefaultLadder()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultSessionLifetime
	}
	if s.idle == 0 {
		s.idle = DefaultSessionIdleTimeout
	}

	if len(cfg.CookieKeys) == 0 {
		return nil, errors.New("web: at least one cookie key pair is required")
	}
	var pairs [][]byte
	for i, k := range cfg.CookieKeys {
		if len(k.HashKey) < 32 {
			return nil, fmt.Errorf("web: cookie key %d: hash key must be at least 32 bytes", i)
		}
		switch len(k.BlockKey) {
		case 0, 16, 24, 32:
		default:
			return nil, fmt.Errorf("web: cookie key %d: block key must be 16, 24 or 32 bytes", i)
		}
		pairs = append(pairs, k.HashKey, k.BlockKey)
		ek, err := enrollKey(k)
		if err != nil {
			return nil, err
		}
		s.enrollKeys = append(s.enrollKeys, ek)
	}
	s.cookies = sessions.NewCookieStore(pairs...)
	s.cookies.MaxAge(int(s.lifetime / time.Second))
	s.cookies.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(s.lifetime / time.Second),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	}
	s.cookieName = "stepwise_session"
	if s.secure {
		s.cookieName = "__Host-stepwise_session"
	}
	s.stateCodecs = securecookie.CodecsFromPairs(pairs...)
	for _, c := range s.stateCodecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.MaxAge(int(stateLifetime / time.Second))
			sc.SetSerializer(securecookie.JSONEncoder{})
		}
	}

	s.deviceCodecs = newDeviceCodecs(pairs)

	bypass := cfg.CrossOriginBypass
	if bypass == nil {
		bypass = DefaultCrossOriginBypass()
	}
	if s.cop, err = newCrossOriginProtection(bypass); err != nil {
		return nil, err
	}
	s.cop.SetDenyHandler(http.HandlerFunc(s.crossOriginDenied))
	s.throttle = newThrottle()

	if s.static, err = fs.Sub(staticFiles, "static"); err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	css, err := fs.ReadFile(s.static, "style.css")
	if err != nil {
		return nil, fmt.Errorf("web: read stylesheet: %w", err)
	}
	sum := sha256.Sum256(css)
	s.cssURL = "/static/style.css?v=" + hex.EncodeToString(sum[:6])
	js, err := fs.ReadFile(s.static, "js/webauthn.js")
	if err != nil {
		return nil, fmt.Errorf("web: read script: %w", err)
	}
	sum = sha256.Sum256(js)
	s.jsURL = "/static/js/webauthn.js?v=" + hex.EncodeToString(sum[:6])

	s.mux = s.routes()
	return s, nil
}

// newCrossOriginProtection builds the checker, turning a bad bypass pattern
// (which the standard library reports by panicking) into an error.
func newCrossOriginProtection(bypass []string) (cop *http.CrossOriginProtection, err error) {
	cop = http.NewCrossOriginProtection()
	for _, p := range bypass {
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("web: cross-origin bypass pattern %q: %v", p, r)
				}
			}()
			cop.AddInsecureBypassPattern(p)
		}()
		if err != nil {
			return nil, err
		}
	}
	return cop, nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.HandleFunc("GET /consent", s.consentForm)
	mux.HandleFunc("POST /consent", s.consentSubmit)
	mux.HandleFunc("GET /logout", s.logoutForm)
	mux.HandleFunc("POST /logout", s.logoutSubmit)
	mux.HandleFunc("GET /account", s.account)
	mux.HandleFunc("POST /account/sessions/revoke", s.revokeAllSessions)
	if s.passkeys != nil {
		s.passkeyRoutes(mux)
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(s.static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Handler serves the browser routes: /login, /consent, /logout, /account,
// /static/ and /healthz, and with passkeys on /enroll and /webauthn/. It
// already applies Middleware; wrapping the whole server's mux with
// Middleware as well is harmless (it runs once).
func (s *Server) Handler() http.Handler {
	return s.Middleware(s.mux)
}

func staticHandler(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r) // no directory listings
			return
		}
		// The stylesheet URL carries a content hash, so it can be cached.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
}
