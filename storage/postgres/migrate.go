package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the pending migrations and reports how many ran. Replicas
// starting together serialise on a session-level advisory lock; its ID is
// derived from the database and schema, so that deployments sharing a
// server in different schemas (and parallel tests) do not wait on each
// other.
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	var database, schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_database(), coalesce(current_schema(), '')`).Scan(&database, &schema); err != nil {
		return 0, fmt.Errorf("migrate postgres: %w", err)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "stepwise-migrate\x00%s\x00%s", database, schema)
	// Poll every second for up to five minutes: a replica migrating a large
	// table may hold the lock a while.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return 0, fmt.Errorf("migrate postgres: %w", err)
	}
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("migrate postgres: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return 0, fmt.Errorf("migrate postgres: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		n := len(res)
		if pe := (*goose.PartialError)(nil); errors.As(err, &pe) {
			n += len(pe.Applied)
		}
		return n, fmt.Errorf("migrate postgres: %w", err)
	}
	return len(res), nil
}
