package adaptive

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteText prints the decision for a terminal (`stepwise risk explain`):
// the one-line explanation, then every factor with its points.
func (d *Decision) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if d.ID != "" {
		fmt.Fprintf(bw, "event    %s\n", d.ID)
	}
	fmt.Fprintf(bw, "time     %s\n", d.Time.UTC().Format("2006-01-02 15:04:05Z"))
	if d.UserID != "" {
		fmt.Fprintf(bw, "user     %s\n", d.UserID)
	}
	if d.ClientID != "" || len(d.Scopes) > 0 {
		fmt.Fprintf(bw, "client   %s  scopes %s\n", d.ClientID, strings.Join(d.Scopes, " "))
	}
	fmt.Fprintf(bw, "history  %d logins in the window\n", d.HistoryLen)
	fmt.Fprintf(bw, "score    %.1f\n", d.Score)
	fmt.Fprintf(bw, "decision %s", d.Action)
	if d.ACR != "" {
		fmt.Fprintf(bw, " (acr %s", d.ACR)
		if d.MaxAge > 0 {
			fmt.Fprintf(bw, ", max_age %ds", d.MaxAge)
		}
		bw.WriteString(")")
	}
	fmt.Fprintf(bw, "  mode %s, enforced %v\n", d.Mode, d.Enforced)
	if d.Policy != "" {
		fmt.Fprintf(bw, "policy   %s\n", d.Policy)
	}
	if d.MinACR != "" {
		fmt.Fprintf(bw, "min acr  %s\n", d.MinACR)
	}
	fmt.Fprintf(bw, "why      %s\n\n%-22s %7s  %s\n", d.Explanation, "factor", "points", "detail")
	for _, f := range d.Factors {
		pts := fmt.Sprintf("%+.1f", f.Points)
		if f.Rule {
			pts = fmt.Sprintf("≥%.0f", f.Points)
		}
		fmt.Fprintf(bw, "%-22s %7s  %s\n", f.Name, pts, f.Detail)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write decision: %w", err)
	}
	return nil
}
