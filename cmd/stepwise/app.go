package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stepwise-id/stepwise/adaptive/geo"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/oauth/resource"
	"github.com/stepwise-id/stepwise/oauth/riskgate"
	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/web"
)

const defaultIssuer = "http://localhost:8080"

// settings resolves the config file and the issuer (flag or STEPWISE_ISSUER,
// then the file's issuer, then the default).
func (g *globals) settings() (fileConfig, string, error) {
	fc, err := loadConfig(g.config)
	if err != nil {
		return fc, "", err
	}
	fc.GeoIP = g.geoip
	fc.MDS = g.mds
	issuer := g.issuer
	if issuer == "" {
		issuer = fc.Issuer
	}
	if issuer == "" {
		issuer = defaultIssuer
	}
	return fc, issuer, nil
}

// ladder returns the configured assurance ladder.
func (fc fileConfig) ladder() (oauth.Ladder, error) {
	if len(fc.ACRLadder) == 0 {
		return oauth.DefaultLadder(), nil
	}
	return oauth.NewLadder(fc.ACRLadder)
}

// oauthConfig maps the flags and config file onto the OAuth core's Config.
func (g *globals) oauthConfig() (oauth.Config, error) {
	fc, issuer, err := g.settings()
	if err != nil {
		return oauth.Config{}, err
	}
	return fc.oauthConfig(issuer)
}

// oauthConfig maps the config file onto the OAuth core's Config.
func (fc fileConfig) oauthConfig(issuer string) (oauth.Config, error) {
	ladder, err := fc.ladder()
	if err != nil {
		return oauth.Config{}, fmt.Errorf("config: %w", err)
	}
	minACR := map[string]string{}
	for id, cp := range fc.Clients {
		if cp.MinACR != "" {
			minACR[id] = cp.MinACR
		}
	}
	return oauth.Config{
		Issuer:               issuer,
		Ladder:               ladder,
		AccessTokenLifespan:  fc.Tokens.AccessTokenLifetime.D(),
		RefreshTokenLifespan: fc.Tokens.RefreshTokenLifetime.D(),
		IDTokenLifespan:      fc.Tokens.IDTokenLifetime.D(),
		AuthCodeLifespan:     fc.Tokens.AuthCodeLifetime.D(),
		RefreshGracePeriod:   fc.Tokens.RefreshGracePeriod.D(),
		ClientMinACR:         minACR,
	}, nil
}

// server is everything `serve` runs, built from one store.
type server struct {
	store    storage.Storage
	provider *oauth.Provider
	registry *oauth.ClientRegistry
	web      *web.Server
	risk     *riskgate.Gate
	geo      *geo.DB // nil without --geoip
	handler  http.Handler
}

// Close releases what the server holds besides the store (the mmdb files).
func (s *server) Close() error {
	if s.geo == nil {
		return nil
	}
	return s.geo.Close()
}

// newServer wires the packages together: storage at the bottom, the OAuth
// core and client registry over it, the browser layer implementing the
// core's Interaction, and the browser layer's middleware (security headers,
// cross-origin checks) around everything.
func newServer(ctx context.Context, store storage.Storage, fc fileConfig, issuer string, logger *slog.Logger) (*server, error) {
	ocfg, err := fc.oauthConfig(issuer)
	if err != nil {
		return nil, err
	}
	secret, err := oauth.LoadSystemSecret(ctx, store)
	if err != nil {
		return nil, err
	}
	ocfg.SystemSecret = secret
	cookieKey, err := deriveCookieKey(secret)
	if err != nil {
		return nil, err
	}
	pcfg := passkey.Config{Issuer: ocfg.Issuer, Ladder: ocfg.Ladder.Values()}
	if fc.MDS != "" {
		// Metadata only means something for attested credentials: ask for
		// attestation, and let only an attested, listed hardware key earn
		// the device-bound rung (phrh).
		pcfg.MDSFile = fc.MDS
		pcfg.Attestation = "direct"
		pcfg.DeviceBound = passkey.DeviceBoundRule{RequireAttestation: true}
	}
	passkeys, err := passkey.New(pcfg, store, logger)
	switch {
	case err != nil && fc.MDS != "":
		return nil, fmt.Errorf("passkeys with --mds %s: %w", fc.MDS, err)
	case err != nil:
		// WebAuthn needs a domain: with an IP-address issuer the server
		// still runs, without passkeys, rather than not at all.
		logger.Warn("passkeys disabled", "err", err)
		passkeys = nil
	}
	gate, geoDB, err := newRiskGate(fc, ocfg.Ladder, logger.With("component", "risk"), store)
	if err != nil {
		return nil, err
	}
	ocfg.Gate = gate
	ws, err := web.New(web.Config{
		Issuer:            ocfg.Issuer,
		SessionLifetime:   fc.SessionLifetime.D(),
		CookieKeys:        []web.CookieKey{cookieKey},
		Ladder:            ocfg.Ladder,
		TrustedProxies:    fc.trustedProxyPrefixes(),
		Passkeys:          passkeys,
		SteppedUpLifetime: fc.SteppedUpLifetime.D(),
		OnEvent:           gate.OnEvent,
	}, store, logger.With("component", "web"))
	if err != nil {
		return nil, err
	}
	gate.SetDeviceID(ws.DeviceID)
	if err := gate.Rebuild(ctx); err != nil {
		return nil, err
	}
	provider, err := oauth.New(ocfg, store, ws, logger.With("component", "oauth"))
	if err != nil {
		return nil, err
	}
	hasher, err := oauth.NewClientSecretHasher(secret)
	if err != nil {
		return nil, err
	}
	registry := oauth.NewClientRegistry(store, hasher,
		oauth.WithRegistryLogger(logger.With("component", "registration")),
		oauth.WithRegistryOnChange(provider.InvalidateClient))

	mux := http.NewServeMux()
	provider.Register(mux)
	registry.RegisterRoutes(mux, ocfg.Issuer)
	gateway, err := newGateway(provider, fc, logger.With("component", "gateway"))
	if err != nil {
		return nil, err
	}
	// No method in the pattern: Envoy's ext_authz forwards the original
	// request's method, and nginx and Traefik send GET.
	mux.Handle(resource.GatewayPath, gateway)
	mux.Handle(resource.GatewayPath+"/", gateway)
	mux.Handle("/", ws.Handler())
	return &server{
		store:    store,
		provider: provider,
		registry: registry,
		web:      ws,
		risk:     gate,
		geo:      geoDB,
		handler:  ws.Middleware(mux),
	}, nil
}

// newGateway builds the forward-auth check (/gateway/check) over the
// provider's in-process introspection, so a revocation applies to the very
// next check and no request loops back over HTTP.
func newGateway(p *oauth.Provider, fc fileConfig, logger *slog.Logger) (*resource.Gateway, error) {
	routes, err := fc.routeTable()
	if err != nil {
		return nil, err
	}
	verifier, err := resource.NewLocalVerifier(resource.LocalConfig{Introspect: p.IntrospectAccessToken, Issuer: p.Issuer()})
	if err != nil {
		return nil, err
	}
	proofs, err := p.ResourceDPoPVerifier() // DPoP-bound tokens: replay cache shared by replicas
	if err != nil {
		return nil, err
	}
	return resource.NewGateway(resource.GatewayOptions{Options: resource.Options{Verifier: verifier, Routes: routes, Logger: logger,
		DPoP: resource.DPoPOptions{Verifier: proofs}}})
}

// deriveCookieKey derives the session-cookie keys from the system secret, so
// every replica and restart agrees on them without another secret to manage.
func deriveCookieKey(secret []byte) (web.CookieKey, error) {
	hashKey, err := hkdf.Key(sha256.New, secret, nil, "stepwise/v1/web-cookie-hash", 32)
	if err != nil {
		return web.CookieKey{}, fmt.Errorf("derive cookie key: %w", err)
	}
	blockKey, err := hkdf.Key(sha256.New, secret, nil, "stepwise/v1/web-cookie-block", 32)
	if err != nil {
		return web.CookieKey{}, fmt.Errorf("derive cookie key: %w", err)
	}
	return web.CookieKey{HashKey: hashKey, BlockKey: blockKey}, nil
}

// collectGarbage deletes expired rows every interval until ctx ends.
func collectGarbage(ctx context.Context, store storage.Storage, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			res, err := store.GarbageCollect(ctx, now)
			if err != nil {
				logger.Warn("garbage collection failed", "err", err)
				continue
			}
			if res.Total() > 0 {
				logger.Info("garbage collected", "requests", res.Requests, "sessions", res.Sessions,
					"auth_requests", res.AuthRequests, "jtis", res.AssertionJTIs, "keys", res.Keys)
			}
		}
	}
}
