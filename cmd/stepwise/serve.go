package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func newServeCommand(g *globals) *cobra.Command {
	var addr string
	var gcInterval time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the identity provider (SQLite ./stepwise.db and http://localhost:8080 by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger := g.logger()
			if _, _, err := g.settings(); err != nil {
				return err // a bad config file fails before anything is opened
			}
			store, err := openStore(ctx, g.db)
			if err != nil {
				return err
			}
			defer store.Close()
			fc, issuer, err := g.settings()
			if err != nil {
				return err
			}
			srv, err := newServer(ctx, store, fc, issuer, logger)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			hs := &http.Server{
				Handler:           srv.handler,
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       2 * time.Minute,
				MaxHeaderBytes:    64 << 10,
				ErrorLog:          nil,
			}
			go collectGarbage(ctx, store, gcInterval, logger)
			logger.Info("stepwise serving", "addr", ln.Addr().String(), "issuer", srv.provider.Issuer(), "db", redactDSN(g.db))

			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return fmt.Errorf("serve: %w", err)
			case <-ctx.Done():
			}
			logger.Info("shutting down")
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "localhost:8080", "listen address")
	cmd.Flags().DurationVar(&gcInterval, "gc-interval", 10*time.Minute, "how often expired rows are deleted")
	return cmd
}
