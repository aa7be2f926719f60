// Package replay scores a login log offline, oldest first, building each
// user's history exactly as the live server does (only successful logins
// enter it), and summarises scored logs into friction / catch-rate reports.
package replay

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/adaptive/rba"
)

// Output columns appended to every input row.
const (
	ColScore    = "risk_score"
	ColDecision = "decision"
	ColTop      = "top_factor"
)

// Options configure a replay.
type Options struct {
	// Engine scores the rows; nil means adaptive.New(adaptive.Config{}).
	Engine *adaptive.Engine
	// Scope names the requested scope in the decisions (informational).
	Scope string
	// Policy decides allow / step_up / deny; nil means DefaultPolicy.
	Policy *adaptive.Policy
	// Progress, if set, is called every ProgressEvery rows and at the end.
	Progress      func(rows int)
	ProgressEvery int
	// FailureWindow is how far back failed logins count towards the
	// account and IP failure signals; default one hour.
	FailureWindow time.Duration
	// Enrich, if set, completes each row's Signals before scoring, e.g. with
	// geo.DB.Apply to add locations (impossible travel) and network types;
	// the row's own Country and ASN columns take precedence.
	Enrich func(*adaptive.Signals) error
	// Inspect, if set, sees every scored row with its decision (for
	// explaining individual rows; the row's labels are there only because
	// the row is).
	Inspect func(row *rba.Row, d *adaptive.Decision)
	// HistoryFromAllSuccessful adds every successful row to history. By
	// default a successful row labelled Is Account Takeover that the policy
	// challenged is left out: in a deployment with step-up the attacker
	// cannot complete the passkey ceremony, so that login never succeeds
	// and never reaches the user's history. The label decides only that
	// outcome, never a score.
	HistoryFromAllSuccessful bool
	// SkipBadRows makes malformed rows count in Stats.Skipped instead of
	// stopping the replay.
	SkipBadRows bool
}

// DefaultPolicy is the example policy of DESIGN.md for payments:write.
func DefaultPolicy() adaptive.Policy {
	return adaptive.Policy{
		Name:   "default",
		MinACR: "urn:stepwise:acr:pwd",
		StepUp: &adaptive.StepUpRule{RiskAtLeast: 40, ACR: "phr", MaxAge: 300},
		Deny:   &adaptive.DenyRule{RiskAtLeast: 90},
	}
}

// Stats summarises a replay.
type Stats struct {
	Rows    int
	Scored  int
	Skipped int
	Users   int
}

// failures counts recent failed logins per key in a sliding window, in
// memory bounded by the number of keys active within the window.
type failures struct {
	window int64
	seen   map[string][]int64
}

func (f *failures) count(key string, now int64) int {
	ts := f.seen[key]
	i := 0
	for i < len(ts) && ts[i] < now-f.window {
		i++
	}
	if i == len(ts) {
		if len(ts) > 0 {
			delete(f.seen, key)
		}
		return 0
	}
	if i > 0 {
		ts = append(ts[:0], ts[i:]...)
		f.seen[key] = ts
	}
	return len(ts)
}

func (f *failures) add(key string, now int64) {
	f.seen[key] = append(f.seen[key], now)
}

// sweep drops keys with nothing inside the window, so the maps do not grow
// with the number of distinct IPs in the whole log.
func (f *failures) sweep(now int64) {
	for k, ts := range f.seen {
		if len(ts) == 0 || ts[len(ts)-1] < now-f.window {
			delete(f.seen, k)
		}
	}
}

// Run reads a CSV in the RBA dataset format from in, scores every row
// oldest first and writes it to out with risk_score, decision and top_factor
// appended. Successful rows are added to the user's history after they are
// scored; failed rows only feed the failure counters. Memory grows with the
// number of users and their windowed history, not with the number of rows.
func Run(ctx context.Context, in io.Reader, out io.Writer, o Options) (Stats, error) {
	var st Stats
	eng := o.Engine
	if eng == nil {
		eng = adaptive.New(adaptive.Config{})
	}
	pol := DefaultPolicy()
	if o.Policy != nil {
		pol = *o.Policy
	}
	if pol.Name == "" || pol.Name == "default" {
		if o.Scope != "" {
			pol.Name = "scope " + o.Scope
		}
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 50000
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Hour
	}
	rd, err := rba.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return st, fmt.Errorf("replay: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write(append(append([]string(nil), rd.Header()...), ColScore, ColDecision, ColTop)); err != nil {
		return st, fmt.Errorf("replay: write header: %w", err)
	}
	ua := adaptive.NewUAParser()
	pop := adaptive.NewPopulation()
	profiles := make(map[string]*adaptive.Profile, 1024)
	acct := &failures{window: int64(o.FailureWindow / time.Second), seen: map[string][]int64{}}
	ipf := &failures{window: acct.window, seen: map[string][]int64{}}
	var scopes []string
	if o.Scope != "" {
		scopes = []string{o.Scope}
	}
	var outRec []string
	var last time.Time
	for {
		row, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		st.Rows++
		if err != nil {
			if o.SkipBadRows {
				st.Skipped++
				continue
			}
			return st, fmt.Errorf("replay: %w", err)
		}
		if st.Rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return st, fmt.Errorf("replay: %w", err)
			}
		}
		if row.Time.Before(last.Add(-time.Minute)) && !o.SkipBadRows {
			return st, fmt.Errorf("replay: row %d: input is not sorted oldest first (%s after %s)", st.Rows, row.Time, last)
		}
		if row.Time.After(last) {
			last = row.Time
		}
		s := row.Signals(ua)
		s.Scopes = scopes
		if o.Enrich != nil {
			if err := o.Enrich(&s); err != nil {
				return st, fmt.Errorf("replay: row %d: enrich: %w", st.Rows, err)
			}
		}
		now := row.Time.Unix()
		ipKey := ""
		if row.IP.IsValid() {
			ipKey = ipString(row.IP)
		}
		s.AccountFailures = acct.count(row.UserID, now)
		if ipKey != "" {
			s.IPFailures = ipf.count(ipKey, now)
		}
		p := profiles[row.UserID]
		if p == nil {
			p = adaptive.NewProfile()
			profiles[row.UserID] = p
		}
		p.Prune(row.Time.Add(-eng.Window()))
		d := eng.Evaluate(ctx, s, p, pop, pol)
		st.Scored++
		if o.Inspect != nil {
			o.Inspect(&row, &d)
		}
		stoppedByStepUp := row.Takeover && d.Action != adaptive.ActionAllow && !o.HistoryFromAllSuccessful
		if row.Success && !stoppedByStepUp {
			eng.Observe(s, p, pop)
		} else if !row.Success {
			acct.add(row.UserID, now)
			if ipKey != "" {
				ipf.add(ipKey, now)
			}
		}
		outRec = append(outRec[:0], rd.Record()...)
		outRec = append(outRec, strconv.FormatFloat(d.Score, 'f', 1, 64), string(d.Action), d.TopFactor())
		if err := cw.Write(outRec); err != nil {
			return st, fmt.Errorf("replay: write: %w", err)
		}
		if st.Rows%o.ProgressEvery == 0 {
			if o.Progress != nil {
				o.Progress(st.Rows)
			}
			acct.sweep(now)
			ipf.sweep(now)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return st, fmt.Errorf("replay: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("replay: write: %w", err)
	}
	st.Users = len(profiles)
	if o.Progress != nil {
		o.Progress(st.Rows)
	}
	return st, nil
}

func ipString(a netip.Addr) string { return a.Unmap().String() }
