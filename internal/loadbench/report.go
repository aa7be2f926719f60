package loadbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// Report is a whole run, as written to --json.
type Report struct {
	Started     time.Time `json:"started"`
	Backend     string    `json:"backend"`
	GoVersion   string    `json:"go_version"`
	CPUs        int       `json:"cpus"`
	Duration    string    `json:"duration"`
	Rounds      int       `json:"rounds"`
	Concurrency int       `json:"concurrency"`
	SeedUsers   int       `json:"seed_users"`
	SeedTokens  int       `json:"seed_tokens"`
	// Ceiling is the bare handler's ops/s that ratios are taken against:
	// the mean of its measurements before and after the other workloads.
	Ceiling float64  `json:"ceiling_ops_per_second"`
	IdleRSS int64    `json:"idle_rss_bytes"`
	Results []Result `json:"results"`
	Notes   []string `json:"notes,omitempty"`
}

// WriteTable prints the results as an aligned table, then the notes.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\treq/op\tops/s\tp50\tp99\terrors\tcpu/op\tpeak RSS\t× bare\t× bare (cpu)\t")
	for _, res := range r.Results {
		if res.Skipped != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\tskipped\t\n", res.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\t%.3f\t%.3f\t\n", res.Name, res.Requests, res.PerSecond,
			ms(res.P50), ms(res.P99), res.Errors, ms(res.CPUPerOp), mib(res.PeakRSS), res.Ratio, res.CPURatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nbackend %s, concurrency %d, %s per workload in %d interleaved rounds, %d CPUs, %s; idle RSS %s (whole process, load generator included)\n",
		r.Backend, r.Concurrency, r.Duration, r.Rounds, r.CPUs, r.GoVersion, mib(r.IdleRSS))
	for _, res := range r.Results {
		switch {
		case res.Skipped != "":
			fmt.Fprintf(w, "- %s: skipped: %s\n", res.Name, res.Skipped)
		case res.Note != "":
			fmt.Fprintf(w, "- %s: %s\n", res.Name, res.Note)
		}
		if res.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", res.FirstError)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	return nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	default:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
