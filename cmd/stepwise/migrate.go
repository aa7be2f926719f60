package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (serve also does this on start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openBackend(cmd.Context(), g.db)
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := s.Migrate(cmd.Context())
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintf(g.stdout, "applied %d migration(s)\n", n)
			return nil
		},
	}
}
