package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans guards the hot and growing-table queries against full
// scans: a dropped index or a predicate the planner cannot match to a
// partial index would otherwise only show up in production latency.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		args  []any
	}{
		{getRequestQuery, []any{"k", "s"}},
		{deactivateRequestQuery, []any{1, "k", "s"}},
		{deleteRequestsByIDQuery, []any{"k", "r"}},
		{deleteRequestsBySessionQuery, []any{"s"}},
		{getClientQuery, nil},
		{getSessionQuery, nil},
		{getCredentialQuery, []any{[]byte{1}}},
		{`DELETE FROM requests WHERE expires_at < ?`, []any{1}},
		{`DELETE FROM sessions WHERE expires_at < ?`, []any{1}},
		{`DELETE FROM assertion_jtis WHERE expires_at < ?`, []any{1}},
		{`SELECT ` + eventColumns + ` FROM events WHERE 1=1 AND user_id = ? ORDER BY time DESC, id DESC LIMIT ?`, []any{"u", 100}},
		{`SELECT ` + eventColumns + ` FROM events WHERE 1=1 AND type = ? ORDER BY time DESC, id DESC LIMIT ?`, []any{"t", 100}},
	} {
		args := tc.args
		if args == nil {
			args = []any{"x"}
		}
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query, args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, " USING ") {
				t.Errorf("full scan in %q:\n  %s", tc.query, strings.Join(plan, "\n  "))
			}
			if strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("sort in %q:\n  %s", tc.query, strings.Join(plan, "\n  "))
			}
		}
	}
}
