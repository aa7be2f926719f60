// Package storagetest gives tests in other packages fresh, migrated stores
// on every backend.
package storagetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/sqlite"
)

// Backend names a storage backend and builds fresh stores on it.
type Backend struct {
	Name string
	New  func(t testing.TB) storage.Storage
}

// Backends returns every backend: "sqlite", then "postgres".
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", New: SQLite},
		{Name: "postgres", New: Postgres},
	}
}

// ForEach runs fn as a subtest per backend, each with a fresh store. A
// backend that is unavailable skips its subtest (see Postgres).
func ForEach(t *testing.T, fn func(t *testing.T, s storage.Storage)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, b.New(t))
		})
	}
}

// SQLite returns a fresh, migrated SQLite store in t.TempDir(), closed when
// the test ends.
func SQLite(t testing.TB) storage.Storage {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stepwise.db"))
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storagetest: close sqlite: %v", err)
		}
	})
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return s
}
