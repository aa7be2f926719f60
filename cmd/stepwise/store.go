package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/postgres"
	"github.com/stepwise-id/stepwise/storage/sqlite"
)

// migratingStore is what both backends offer beyond storage.Storage.
type migratingStore interface {
	storage.Storage
	Migrate(ctx context.Context) (int, error)
}

// openStore opens the backend named by dsn (a postgres:// or postgresql://
// DSN, else a SQLite file path) and brings its schema up to date, so that
// every sub-command works on a fresh database.
func openStore(ctx context.Context, dsn string) (storage.Storage, error) {
	s, err := openBackend(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate %s: %w", redactDSN(dsn), err)
	}
	return s, nil
}

func openBackend(ctx context.Context, dsn string) (migratingStore, error) {
	if dsn == "" {
		return nil, fmt.Errorf("--db is empty")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", redactDSN(dsn), err)
		}
		return s, nil
	}
	s, err := sqlite.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	return s, nil
}

// redactDSN hides a password in a DSN so it never reaches logs or errors.
func redactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dsn
	}
	if user, _, hasPass := strings.Cut(creds, ":"); hasPass {
		return scheme + "://" + user + ":***@" + host
	}
	return dsn
}
