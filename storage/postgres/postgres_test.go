package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/conformance"
	"github.com/stepwise-id/stepwise/storage/postgres"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

func TestConformance(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Storage { return storagetest.Postgres(t) })
}

func TestConcurrency(t *testing.T) {
	conformance.RunConcurrencyTests(t, func(t *testing.T) storage.Storage { return storagetest.Postgres(t) })
}

// TestMigrateConcurrently starts several replicas on one schema at once: the
// advisory lock must serialise them so that exactly one applies each
// migration and none fails.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	dsn := storagetest.PostgresSchema(t)
	const replicas = 4
	applied := make([]int, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			s, err := postgres.Open(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			applied[i], errs[i] = s.Migrate(ctx)
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		total += applied[i]
	}
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, err := s.Migrate(ctx)
	if err != nil || again != 0 {
		t.Fatalf("migrate after replicas: applied %d, err %v; want 0, nil", again, err)
	}
	if total == 0 {
		t.Fatal("no replica applied any migration")
	}
	// Every replica sees the same, fully migrated schema.
	if err := s.CreateClient(ctx, storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStorage runs the shared hot-path benchmarks against the test
// PostgreSQL.
func BenchmarkStorage(b *testing.B) {
	conformance.RunBenchmarks(b, func(b *testing.B) storage.Storage { return storagetest.Postgres(b) })
}
