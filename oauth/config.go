package oauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Config configures the OAuth 2.0 / OpenID Connect core. Every duration has a
// default; only Issuer is required.
type Config struct {
	// Issuer is the issuer identifier (an absolute URL without query or
	// fragment, e.g. http://localhost:8080). Every endpoint URL is derived
	// from it.
	Issuer string

	// Ladder is the assurance ladder; the zero value means DefaultLadder.
	Ladder Ladder

	// AccessTokenLifespan defaults to 15 minutes.
	AccessTokenLifespan time.Duration
	// RefreshTokenLifespan defaults to 30 days.
	RefreshTokenLifespan time.Duration
	// AuthCodeLifespan defaults to 1 minute.
	AuthCodeLifespan time.Duration
	// IDTokenLifespan defaults to 1 hour.
	IDTokenLifespan time.Duration
	// RefreshGracePeriod is how long a rotated refresh token may be used again
	// without being treated as reuse (two tabs refreshing at once). It
	// defaults to 5 seconds; a negative value disables the grace.
	RefreshGracePeriod time.Duration
	// AuthRequestLifespan bounds how long a paused authorization request
	// (sign-in, step-up, consent) can be resumed. Defaults to 15 minutes.
	AuthRequestLifespan time.Duration
	// PARLifespan is the lifetime of a pushed request_uri. Defaults to 90s.
	PARLifespan time.Duration

	// SystemSecret is the root secret (at least 32 bytes) from which the HMAC
	// key for opaque tokens and the client-secret hashing key are derived.
	// When nil, New loads it from storage with LoadSystemSecret (creating it
	// on first start), so the CLI and every replica share it.
	SystemSecret []byte

	// SigningAlgorithm is the algorithm of newly generated signing keys:
	// "ES256" (default) or "RS256".
	SigningAlgorithm string
	// KeyRefreshInterval is how often signing keys are re-read from storage,
	// so a rotation done by the CLI or another replica is picked up.
	// Defaults to 1 minute.
	KeyRefreshInterval time.Duration

	// ClientMinACR is the minimum acr per client ID (clients.<id>.min_acr in
	// the YAML configuration).
	ClientMinACR map[string]string
	// ClientCacheTTL bounds how stale a cached client may be. Defaults to 10s.
	ClientCacheTTL time.Duration

	// Gate, when set, is consulted on every authorization and
	// client_credentials request and may tighten the requirement or deny
	// (the risk engine plugs in here).
	Gate Gate

	// MaxBodyBytes caps request bodies on every endpoint. Defaults to 64 KiB.
	MaxBodyBytes int64

	// DPoP configures sender-constrained tokens (RFC 9449; dpop.go).
	DPoP DPoPConfig

	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Default lifetimes.
const (
	DefaultAccessTokenLifespan  = 15 * time.Minute
	DefaultRefreshTokenLifespan = 30 * 24 * time.Hour
	DefaultAuthCodeLifespan     = time.Minute
	DefaultIDTokenLifespan      = time.Hour
	DefaultRefreshGracePeriod   = 5 * time.Second
	DefaultAuthRequestLifespan  = 15 * time.Minute
	DefaultPARLifespan          = 90 * time.Second
)

// withDefaults returns a copy of c with every zero field defaulted, or an
// error when a set field is invalid.
func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.Issuer)
	if c.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return c, fmt.Errorf("oauth config: issuer %q must be an absolute http(s) URL without query or fragment", c.Issuer)
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if c.Ladder.Name(LevelPassword) == "" {
		c.Ladder = DefaultLadder()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AccessTokenLifespan, DefaultAccessTokenLifespan)
	def(&c.RefreshTokenLifespan, DefaultRefreshTokenLifespan)
	def(&c.AuthCodeLifespan, DefaultAuthCodeLifespan)
	def(&c.IDTokenLifespan, DefaultIDTokenLifespan)
	def(&c.RefreshGracePeriod, DefaultRefreshGracePeriod)
	def(&c.AuthRequestLifespan, DefaultAuthRequestLifespan)
	def(&c.PARLifespan, DefaultPARLifespan)
	def(&c.KeyRefreshInterval, time.Minute)
	def(&c.ClientCacheTTL, 10*time.Second)
	if c.RefreshGracePeriod < 0 {
		c.RefreshGracePeriod = 0
	}
	switch c.SigningAlgorithm {
	case "":
		c.SigningAlgorithm = "ES256"
	case "ES256", "RS256":
	default:
		return c, fmt.Errorf("oauth config: signing algorithm %q: want ES256 or RS256", c.SigningAlgorithm)
	}
	if c.SystemSecret != nil && len(c.SystemSecret) < 32 {
		return c, errors.New("oauth config: system secret must be at least 32 bytes")
	}
	for id, acr := range c.ClientMinACR {
		if _, ok := c.Ladder.Level(acr); !ok {
			return c, fmt.Errorf("oauth config: client %q min_acr %q is not on the ladder", id, acr)
		}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// maxTokenLifespan is how long a token signed by a key can still be
// presented after the key is retired: the longer of the ID token and JWT
// access token lifetimes, plus the key refresh interval, because a running
// replica keeps signing with the old key until it next reloads the keys.
func (c Config) maxTokenLifespan() time.Duration {
	return max(c.IDTokenLifespan, c.AccessTokenLifespan) + c.KeyRefreshInterval
}

func (c Config) logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
