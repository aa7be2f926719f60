// Command api is a sample payments API protected by Stepwise's
// resource-server middleware. Reading a payment needs a valid token with
// payments:read; making one needs payments:write from a user-verified passkey
// (acr phr) used within the last five minutes. A weaker or older
// authentication gets the RFC 9470 challenge telling the client what to ask
// Stepwise for.
//
//	STEPWISE_CLIENT_SECRET=… go run ./examples/api \
//	    -issuer http://localhost:8080 -audience https://payments.example \
//	    -client-id payments-api
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stepwise-id/stepwise/oauth/resource"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "localhost:9090", "listen address")
	issuer := flag.String("issuer", "http://localhost:8080", "Stepwise issuer")
	audience := flag.String("audience", "https://payments.example", "this API's audience (aud) value")
	clientID := flag.String("client-id", "", "confidential client for introspecting opaque tokens (secret in STEPWISE_CLIENT_SECRET)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	v, err := resource.NewRemoteVerifier(resource.RemoteConfig{
		Issuer:       *issuer,
		Audience:     *audience,
		ClientID:     *clientID,
		ClientSecret: os.Getenv("STEPWISE_CLIENT_SECRET"),
	})
	if err != nil {
		return err
	}
	api, err := newAPI(v, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *addr, Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("payments api listening", "addr", *addr, "issuer", *issuer)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// routes are what a stepwise.yaml routes: section would say.
func routes() []resource.RouteConfig {
	return []resource.RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /payments/{id}", Scopes: []string{"payments:read"}},
	}
}

// newAPI builds the protected handler.
func newAPI(v resource.TokenVerifier, log *slog.Logger) (http.Handler, error) {
	table, err := resource.ParseRoutes(routes(), resource.RoutesOptions{Default: resource.DefaultDeny})
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	mw, err := resource.NewMiddleware(resource.Options{Verifier: v, Routes: table, Logger: log})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "payment %s sent for %s (acr %s, authenticated %s ago)\n",
			r.PathValue("id"), c.Subject, c.ACR, time.Since(c.AuthTime).Round(time.Second))
	})
	mux.HandleFunc("GET /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "payment %s of %s\n", r.PathValue("id"), c.Subject)
	})
	return mw.Wrap(mux), nil
}
