package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/storage"
)

// riskEventType is the audit event type of a risk decision.
const riskEventType = "risk.decision"

func newRiskCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "risk", Short: "Inspect and evaluate risk decisions"}
	cmd.AddCommand(newRiskEventsCommand(g), newRiskExplainCommand(g))
	cmd.AddCommand(newRiskToolCommands(g)...)
	return cmd
}

// eventView is the JSON shape of an audit event on the command line.
type eventView struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Time      time.Time       `json:"time"`
	UserID    string          `json:"user_id,omitempty"`
	ClientID  string          `json:"client_id,omitempty"`
	SessionID string          `json:"session_id,omitempty"`
	IPAddress string          `json:"ip_address,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

func viewEvent(e storage.Event) eventView {
	v := eventView{ID: e.ID, Type: e.Type, Time: e.Time, UserID: e.UserID, ClientID: e.ClientID,
		SessionID: e.SessionID, IPAddress: e.IPAddress}
	if json.Valid(e.Data) {
		v.Data = e.Data
	}
	return v
}

func newRiskEventsCommand(g *globals) *cobra.Command {
	var user string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events [--user U]",
		Short: "List recent risk decisions (recorded in monitor mode too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(s storage.Storage) error {
				f := storage.EventFilter{Type: riskEventType, Limit: limit}
				if user != "" {
					u, err := findUser(ctx, s, user)
					if err != nil {
						return err
					}
					f.UserID = u.ID
				}
				events, err := s.ListEvents(ctx, f)
				if err != nil {
					return fmt.Errorf("list risk events: %w", err)
				}
				if asJSON {
					views := make([]eventView, 0, len(events))
					for _, e := range events {
						views = append(views, viewEvent(e))
					}
					return writeJSON(g.stdout, views)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "EVENT ID\tTIME\tUSER\tCLIENT\tSCORE\tDECISION\tWHY")
				for _, e := range events {
					var d decisionSummary
					_ = json.Unmarshal(e.Data, &d) // a malformed row still lists, with blanks
					decision := d.Decision
					if decision != "" && !d.Enforced {
						decision += " (monitor)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%s\t%s\n", e.ID, e.Time.Format(time.RFC3339),
						e.UserID, e.ClientID, d.Score, decision, d.Explanation)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only this user's decisions (username or ID)")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events at most")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// decisionSummary is the part of a stored decision the listing shows.
type decisionSummary struct {
	Score       float64 `json:"score"`
	Decision    string  `json:"decision"`
	Enforced    bool    `json:"enforced"`
	Explanation string  `json:"explanation"`
}

func newRiskExplainCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain EVENT_ID",
		Short: "Show one risk decision with every factor's contribution",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(s storage.Storage) error {
				e, err := s.GetEvent(ctx, args[0])
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("no event %q", args[0])
				}
				if err != nil {
					return fmt.Errorf("get event: %w", err)
				}
				if asJSON || e.Type != riskEventType {
					return writeJSON(g.stdout, viewEvent(e))
				}
				return explainDecision(g.stdout, e)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
