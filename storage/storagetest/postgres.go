package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/postgres"
)

// DefaultPostgresDSN is the test PostgreSQL: local, trust auth.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN returns the DSN of the test PostgreSQL: $STEPWISE_TEST_POSTGRES_DSN,
// or DefaultPostgresDSN.
func PostgresDSN() string {
	if dsn := os.Getenv("STEPWISE_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return DefaultPostgresDSN
}

// requireAll reports whether an unavailable backend must fail the test
// instead of skipping it (STEPWISE_REQUIRE_ALL=1, for CI).
func requireAll() bool { return os.Getenv("STEPWISE_REQUIRE_ALL") == "1" }

// Postgres returns a fresh, migrated store in a schema of its own in the test
// PostgreSQL, so tests may run in parallel; the schema is dropped when the
// test ends. If PostgreSQL is unreachable the test is skipped, or fails
// when STEPWISE_REQUIRE_ALL=1.
func Postgres(t testing.TB) storage.Storage {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, PostgresSchema(t))
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	// Registered after PostgresSchema's cleanup, so it runs first: the pool
	// must be closed before its schema is dropped.
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return s
}

// PostgresSchema creates an empty schema in the test PostgreSQL, drops it
// when the test ends, and returns a DSN whose search_path selects it. It is
// for tests that drive postgres.Open and Migrate themselves; it skips or
// fails like Postgres when PostgreSQL is unreachable.
func PostgresSchema(t testing.TB) (dsn string) {
	t.Helper()
	ctx := context.Background()
	dsn = PostgresDSN()

	var b [8]byte
	rand.Read(b[:])
	schema := "stepwise_test_" + hex.EncodeToString(b[:])
	if err := adminExec(ctx, dsn, `CREATE SCHEMA `+schema); err != nil {
		if requireAll() {
			t.Fatalf("storagetest: postgres unavailable and STEPWISE_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("storagetest: postgres unavailable (set STEPWISE_TEST_POSTGRES_DSN): %v", oneLine(err))
	}
	t.Cleanup(func() {
		if err := adminExec(context.Background(), dsn, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("storagetest: drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(dsn, schema)
}

// adminExec runs one statement on a short-lived connection, so that a test
// holds no connection beyond its store's pool.
func adminExec(ctx context.Context, dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// withSearchPath adds a search_path runtime parameter to dsn, in URL or
// key=value form.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

// oneLine flattens a multi-line driver error for a skip message.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
