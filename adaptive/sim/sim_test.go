package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/stepwise-id/stepwise/adaptive/rba"
)

func TestGenerateDeterministicAndSorted(t *testing.T) {
	o := Options{Seed: 42, Users: 300, Days: 60, LoginsPerUser: 20, AttacksPerKind: 40}
	var a, b bytes.Buffer
	if err := Generate(context.Background(), &a, o); err != nil {
		t.Fatal(err)
	}
	if err := Generate(context.Background(), &b, o); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
		t.Fatal("same options, different output")
	}
	o.Seed = 43
	var c bytes.Buffer
	if err := Generate(context.Background(), &c, o); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same output")
	}

	rd, err := rba.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	var prev rba.Row
	kinds := map[string]int{}
	n := 0
	for {
		r, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && r.Time.Before(prev.Time) {
			t.Fatalf("row %d out of order: %s before %s", n, r.Time, prev.Time)
		}
		if r.Index != int64(n) {
			t.Fatalf("index %d at row %d", r.Index, n)
		}
		if r.AttackIP != (len(r.Scenario) > 7 && r.Scenario[:7] == "attack_") {
			t.Fatalf("label and scenario disagree: %+v", r)
		}
		kinds[r.Scenario]++
		prev = r
		n++
	}
	for _, k := range []string{ScenarioHome, ScenarioMobile, AttackNaive, AttackVPN, AttackTargeted} {
		if kinds[k] == 0 {
			t.Errorf("no %s rows in %v", k, kinds)
		}
	}
}

func TestGenerateCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Generate(ctx, io.Discard, Options{Users: 2000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
