package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/adaptive/geo"
	"github.com/stepwise-id/stepwise/adaptive/replay"
	"github.com/stepwise-id/stepwise/adaptive/sim"
	"github.com/stepwise-id/stepwise/storage"
)

// newRiskToolCommands are the operators' offline tools: generate a
// simulated login log, score a log as the live server would, and report
// friction against catch rate.
func newRiskToolCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newRiskSimulateCommand(g), newRiskReplayCommand(g), newRiskReportCommand(g)}
}

// explainDecision prints a stored risk decision with every factor.
func explainDecision(w io.Writer, e storage.Event) error {
	var d adaptive.Decision
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("decode risk decision %s: %w", e.ID, err)
	}
	if d.ID == "" {
		d.ID = e.ID
	}
	if err := d.WriteText(w); err != nil {
		return err
	}
	if e.IPAddress != "" {
		if _, err := fmt.Fprintf(w, "address  %s\n", e.IPAddress); err != nil {
			return err
		}
	}
	return nil
}

func newRiskSimulateCommand(g *globals) *cobra.Command {
	var out string
	var o sim.Options
	cmd := &cobra.Command{
		Use:   "simulate --output FILE",
		Short: "Generate a simulated login log (RBA dataset CSV) with legitimate users and three attacker kinds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--output is required")
			}
			p := newProgress(g.stderr, "generated")
			o.Progress = p.update
			err := writeFile(out, func(w io.Writer) error { return sim.Generate(cmd.Context(), w, o) })
			p.done()
			if err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
			fmt.Fprintf(g.stdout, "wrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "output", "", "CSV file to write (- for stdout)")
	f.IntVar(&o.Users, "users", 0, "number of users (default 20000)")
	f.IntVar(&o.Days, "days", 0, "days covered (default 300)")
	f.Uint64Var(&o.Seed, "seed", 1, "random seed (same seed, same file)")
	f.Float64Var(&o.LoginsPerUser, "logins-per-user", 0, "mean successful logins per user (default 50)")
	f.IntVar(&o.AttacksPerKind, "attacks-per-kind", 0, "attack sessions per attacker kind (default users/3)")
	return cmd
}

func newRiskReplayCommand(g *globals) *cobra.Command {
	var in, out, scopeName string
	var skipBad bool
	cmd := &cobra.Command{
		Use:   "replay --input logins.csv --output scores.csv [--scope S]",
		Short: "Score a login log offline, oldest first, building history as the live server would",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if in == "" || out == "" {
				return errors.New("--input and --output are required")
			}
			fc, _, err := g.settings()
			if err != nil {
				return err
			}
			ladder, err := fc.ladder()
			if err != nil {
				return fmt.Errorf("config: %w", err)
			}
			policy, err := replayPolicy(fc, scopeName)
			if err != nil {
				return err
			}
			o := replay.Options{Engine: fc.riskEngine(ladder), Scope: scopeName, Policy: &policy, SkipBadRows: skipBad}
			if len(fc.GeoIP) > 0 {
				db, err := geo.Open(fc.GeoIP...)
				if err != nil {
					return fmt.Errorf("geoip: %w", err)
				}
				defer db.Close()
				o.Enrich = db.Apply
			}
			p := newProgress(g.stderr, "scored")
			o.Progress, o.ProgressEvery = p.update, 50_000
			var st replay.Stats
			err = readFile(in, func(r io.Reader) error {
				return writeFile(out, func(w io.Writer) error {
					var err error
					st, err = replay.Run(ctx, r, w, o)
					return err
				})
			})
			p.done()
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			fmt.Fprintf(g.stdout, "scored %d of %d rows (%d users, %d skipped) with policy %q; wrote %s\n",
				st.Scored, st.Rows, st.Users, st.Skipped, policy.Name, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "input", "", "login log CSV (RBA dataset columns; - for stdin)")
	f.StringVar(&out, "output", "", "scored CSV to write (- for stdout)")
	f.StringVar(&scopeName, "scope", "", "decide under this scope's policy from --config (default: the payments:write example policy)")
	f.BoolVar(&skipBad, "skip-bad-rows", false, "count malformed rows instead of stopping")
	return cmd
}

// replayPolicy is the policy a replay decides under: the named scope's from
// the config file, or the DESIGN.md example when no scope is named.
func replayPolicy(fc fileConfig, name string) (adaptive.Policy, error) {
	ladder, err := fc.ladder()
	if err != nil {
		return adaptive.Policy{}, fmt.Errorf("config: %w", err)
	}
	policies, err := fc.scopePolicies(ladder)
	if err != nil {
		return adaptive.Policy{}, err
	}
	if name == "" {
		if p, ok := policies["payments:write"]; ok {
			return p, nil
		}
		p := replay.DefaultPolicy()
		if p.Name == "" {
			p.Name = "default payments:write"
		}
		return p, nil
	}
	p, ok := policies[name]
	if !ok {
		known := make([]string, 0, len(policies))
		for k := range policies {
			known = append(known, k)
		}
		slices.Sort(known)
		return p, fmt.Errorf("scope %q has no policy in the config file (configured: %s)", name, strings.Join(known, ", "))
	}
	return p, nil
}

func newRiskReportCommand(g *globals) *cobra.Command {
	var in string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report --input scores.csv",
		Short: "Friction of legitimate logins when 99.5% of each attacker kind is challenged, against the new-IP baseline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return errors.New("--input is required")
			}
			var rep replay.Report
			err := readFile(in, func(r io.Reader) error {
				var err error
				rep, err = replay.ReadReport(r)
				return err
			})
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			if asJSON {
				return writeJSON(g.stdout, rep)
			}
			return rep.Format(g.stdout)
		},
	}
	cmd.Flags().StringVar(&in, "input", "", "scored CSV (the output of risk replay; - for stdin)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// readFile opens path ("-" is stdin) for fn.
func readFile(path string, fn func(io.Reader) error) error {
	if path == "-" {
		return fn(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(bufio.NewReaderSize(f, 1<<20))
}

// writeFile creates path ("-" is stdout) for fn, buffered, and reports a
// failed flush or close: a truncated output must not look like success.
func writeFile(path string, fn func(io.Writer) error) (err error) {
	var f *os.File
	if path == "-" {
		f = os.Stdout
	} else {
		if f, err = os.Create(path); err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("close %s: %w", path, cerr)
			}
		}()
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// progress reports rows on stderr: one line rewritten in place on a
// terminal, a line every few seconds otherwise (logs, CI).
type progress struct {
	w     io.Writer
	what  string
	tty   bool
	start time.Time
	last  time.Time
	rows  int
}

func newProgress(w io.Writer, what string) *progress {
	return &progress{w: w, what: what, tty: isTerminal(w), start: time.Now()}
}

func (p *progress) update(rows int) {
	p.rows = rows
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "\r%s %d rows (%s, %.0f rows/s)\x1b[K", p.what, rows, now.Sub(p.start).Round(time.Second), p.rate(now))
		return
	}
	if now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "%s %d rows (%s, %.0f rows/s)\n", p.what, rows, now.Sub(p.start).Round(time.Second), p.rate(now))
}

func (p *progress) rate(now time.Time) float64 {
	if s := now.Sub(p.start).Seconds(); s > 0 {
		return float64(p.rows) / s
	}
	return 0
}

func (p *progress) done() {
	now := time.Now()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s %d rows in %s\x1b[K\n", p.what, p.rows, now.Sub(p.start).Round(time.Millisecond))
		return
	}
	fmt.Fprintf(p.w, "%s %d rows in %s\n", p.what, p.rows, now.Sub(p.start).Round(time.Millisecond))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
