package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/conformance"
	"github.com/stepwise-id/stepwise/storage/sqlite"
)

func newStore(t testing.TB) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Storage { return newStore(t) })
}

func TestConcurrency(t *testing.T) {
	conformance.RunConcurrencyTests(t, func(t *testing.T) storage.Storage { return newStore(t) })
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Migrate(ctx)
	if err != nil || n == 0 {
		t.Fatalf("first migrate: applied %d, err %v", n, err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Migrate(ctx); err != nil || n != 0 {
		t.Fatalf("second migrate: applied %d, err %v; want 0, nil", n, err)
	}
	if _, err := s.GetClient(ctx, "app"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
}

func TestOpenRejectsMemory(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), ":memory:"); err == nil {
		t.Fatal("want an error for :memory:")
	}
}

// BenchmarkStorage runs the shared hot-path benchmarks:
//
//	go test -run '^$' -bench . ./storage/sqlite/
func BenchmarkStorage(b *testing.B) {
	conformance.RunBenchmarks(b, func(b *testing.B) storage.Storage { return newStore(b) })
}

// TestTwoStoresOneFile stands in for the CLI writing while the server runs:
// two Stores (two writer connections) on one file must still serialise
// read-modify-write through SQLite's own lock.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores [2]*sqlite.Store
	for i := range stores {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	// Both migrate at once, as a server and a CLI started together would.
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { _, errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate store %d: %v", i, err)
		}
	}
	if err := stores[0].CreateClient(ctx, storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs = make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = stores[i%2].UpdateClient(ctx, "app", func(c storage.Client) (storage.Client, error) {
				time.Sleep(time.Millisecond)
				c.Scopes = append(c.Scopes, fmt.Sprint(i))
				return c, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	c, err := stores[1].GetClient(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scopes) != n {
		t.Fatalf("%d scopes after %d updates from two stores", len(c.Scopes), n)
	}
}

// TestOpenRelativePath covers the default `--db ./stepwise.db`: a relative
// path must name a file in the working directory, not a URI authority.
func TestOpenRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, p := range []string{"stepwise.db", "./other.db", "with space?and#hash%.db"} {
		s, err := sqlite.Open(ctx, p)
		if err != nil {
			t.Fatalf("open %q: %v", p, err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate %q: %v", p, err)
		}
		s.Close()
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("open %q did not create it in the working directory: %v", p, err)
		}
	}
}
