package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the pending migrations and reports how many ran.
//
// goose has no lock for SQLite, so two processes migrating one fresh file at
// once (a server and a CLI started together) race: both see a migration
// pending, one applies it and the other, once SQLite's write lock lets it
// in, fails on the tables the first created. Each migration runs in its own
// transaction and SQLite DDL is transactional, so the loser has changed
// nothing; running Up again finds the work done. Migrate therefore retries a
// few times before giving up.
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("migrate sqlite: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return 0, fmt.Errorf("migrate sqlite: %w", err)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		res, err := p.Up(ctx)
		applied += len(res)
		if pe := (*goose.PartialError)(nil); errors.As(err, &pe) {
			applied += len(pe.Applied)
		}
		if err == nil {
			break
		}
		if attempt == attempts || ctx.Err() != nil {
			return applied, fmt.Errorf("migrate sqlite: %w", err)
		}
		select {
		case <-ctx.Done():
			return applied, fmt.Errorf("migrate sqlite: %w", ctx.Err())
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
	s.warmUp(ctx)
	return applied, nil
}
