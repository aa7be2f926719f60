package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stepwise-id/stepwise/internal/loadbench"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// TestBench runs every workload of `stepwise bench` very briefly and checks
// that each ran without errors and that the JSON report is complete. It
// asserts nothing about speed.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the load benchmark briefly; skipped with -short")
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				db = storagetest.PostgresSchema(t)
			}
			out := filepath.Join(t.TempDir(), "bench.json")
			var stdout, stderr bytes.Buffer
			root := newRootCommand(nil, &stdout, &stderr)
			root.SetArgs([]string{"bench", "--db", db, "--duration", "150ms", "--rounds", "1", "--warmup", "0s",
				"--concurrency", "2", "--seed-users", "50", "--seed-tokens", "50", "--json", out})
			if err := root.ExecuteContext(t.Context()); err != nil {
				t.Fatalf("bench: %v\n%s", err, stderr.String())
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var rep loadbench.Report
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) != len(allWorkloads) {
				t.Fatalf("%d results, want %d:\n%s", len(rep.Results), len(allWorkloads), stdout.String())
			}
			for _, r := range rep.Results {
				if r.Skipped != "" {
					continue
				}
				if r.Ops == 0 || r.Errors != 0 {
					t.Errorf("%s: %d operations, %d errors (first: %s)", r.Name, r.Ops, r.Errors, r.FirstError)
				}
			}
			if !bytes.Contains(stdout.Bytes(), []byte("× bare")) {
				t.Errorf("no table on stdout:\n%s", stdout.String())
			}
		})
	}
}
