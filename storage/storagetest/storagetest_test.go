package storagetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

func TestForEach(t *testing.T) {
	var names []string
	storagetest.ForEach(t, func(t *testing.T, s storage.Storage) {
		names = append(names, t.Name())
		ctx := context.Background()
		if err := s.CreateClient(ctx, storage.Client{ID: "app"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, "app"); err != nil {
			t.Fatal(err)
		}
	})
	if len(names) == 0 || names[0] != "TestForEach/sqlite" {
		t.Fatalf("subtests ran: %q", names)
	}
}

// TestIsolation checks that each call gets an empty store of its own, which
// is what lets tests run in parallel.
func TestIsolation(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, c := b.New(t), b.New(t)
			if err := a.CreateClient(ctx, storage.Client{ID: "app"}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetClient(ctx, "app"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("a write to one store is visible in another: %v", err)
			}
		})
	}
}
