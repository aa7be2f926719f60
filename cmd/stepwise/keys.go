package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

func newKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token signing keys"}
	cmd.AddCommand(newKeysListCommand(g), newKeysRotateCommand(g))
	return cmd
}

func newKeysListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List signing keys: the active one and retired ones still published in JWKS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), g, func(s storage.Storage) error {
				keys, err := oauth.ListKeys(cmd.Context(), s, time.Now())
				if err != nil {
					return err
				}
				if asJSON {
					if keys == nil {
						keys = []oauth.KeyInfo{}
					}
					return writeJSON(g.stdout, keys)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE")
				for _, k := range keys {
					state := "active"
					switch {
					case !k.Active && k.Published:
						state = "retired, published until " + k.PublishUntil.Format(time.RFC3339)
					case !k.Active:
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.Format(time.RFC3339), state)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysRotateCommand(g *globals) *cobra.Command {
	var alg string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Start signing with a new key; the old one stays in JWKS until its tokens expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.oauthConfig()
			if err != nil {
				return err
			}
			if alg != "" {
				cfg.SigningAlgorithm = alg
			}
			return withStore(cmd.Context(), g, func(s storage.Storage) error {
				k, err := oauth.RotateKeys(cmd.Context(), s, cfg)
				if err != nil {
					return fmt.Errorf("rotate keys: %w", err)
				}
				if asJSON {
					return writeJSON(g.stdout, k)
				}
				fmt.Fprintf(g.stdout, "new signing key %s (%s); running servers switch to it within a minute\n", k.ID, k.Algorithm)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&alg, "alg", "", "algorithm of the new key: ES256 (default) or RS256")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
