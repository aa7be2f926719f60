package replay

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/stepwise-id/stepwise/adaptive/sim"
)

func generate(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := sim.Generate(context.Background(), &buf, sim.Options{Seed: 7, Users: 400, Days: 90, LoginsPerUser: 25, AttacksPerKind: 120}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRunAndReport(t *testing.T) {
	in := generate(t)
	var out bytes.Buffer
	calls := 0
	st, err := Run(context.Background(), bytes.NewReader(in), &out, Options{Scope: "payments:write", ProgressEvery: 1000, Progress: func(int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows == 0 || st.Rows != st.Scored || calls == 0 {
		t.Fatalf("stats %+v, progress calls %d", st, calls)
	}
	recs, err := csv.NewReader(bytes.NewReader(out.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != st.Rows+1 {
		t.Fatalf("%d output rows for %d input rows", len(recs)-1, st.Rows)
	}
	h := recs[0]
	if h[len(h)-3] != ColScore || h[len(h)-2] != ColDecision || h[len(h)-1] != ColTop {
		t.Fatalf("header %v", h)
	}
	r, err := ReadReport(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kinds) != 3 || r.Legit == 0 {
		t.Fatalf("report %+v", r)
	}
	for _, k := range r.Kinds {
		if k.Caught < ChallengeShare || k.Friction >= k.BaselineFriction {
			t.Errorf("%s: caught %.3f friction %.3f baseline %.3f", k.Name, k.Caught, k.Friction, k.BaselineFriction)
		}
	}
	var txt bytes.Buffer
	if err := r.Format(&txt); err != nil || !strings.Contains(txt.String(), "targeted") {
		t.Fatalf("format: %v\n%s", err, txt.String())
	}
}

// TestLabelsDoNotScore clears every label column and checks that the scores
// do not move: the labels grade the model, they never feed it.
func TestLabelsDoNotScore(t *testing.T) {
	in := generate(t)
	recs, err := csv.NewReader(bytes.NewReader(in)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, c := range recs[0] {
		idx[c] = i
	}
	for _, r := range recs[1:] {
		r[idx["Is Attack IP"]], r[idx["Is Account Takeover"]], r[idx["Scenario"]] = "false", "false", ""
	}
	var blind bytes.Buffer
	w := csv.NewWriter(&blind)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	score := func(b []byte) []string {
		var out bytes.Buffer
		if _, err := Run(context.Background(), bytes.NewReader(b), &out, Options{HistoryFromAllSuccessful: true}); err != nil {
			t.Fatal(err)
		}
		rs, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs[1:] {
			s = append(s, strings.Join(r[len(r)-3:], ","))
		}
		return s
	}
	a, b := score(in), score(blind.Bytes())
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("row %d scored %s with labels, %s without", i, a[i], b[i])
		}
	}
}

func TestRunRejectsUnsorted(t *testing.T) {
	in := "Login Timestamp,User ID,IP Address,Login Successful\n2026-01-02 00:00:00,u,192.0.2.1,true\n2026-01-01 00:00:00,u,192.0.2.1,true\n"
	if _, err := Run(context.Background(), strings.NewReader(in), &bytes.Buffer{}, Options{}); err == nil {
		t.Fatal("want error for unsorted input")
	}
	st, err := Run(context.Background(), strings.NewReader(in+"bad,row\n"), &bytes.Buffer{}, Options{SkipBadRows: true})
	if err != nil || st.Skipped != 1 {
		t.Fatalf("skip bad rows: %+v %v", st, err)
	}
}
