package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/web"
)

// newUserEnrollLinkCommand prints a one-time URL with which a user enrols a
// passkey. The link is signed with a key derived from the system secret in
// the database, so a running server accepts it without being told; it is
// spent when a passkey is enrolled with it.
func newUserEnrollLinkCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "enroll-link USERNAME|ID",
		Short: "Print a one-time link (valid 15 minutes) with which the user enrols a passkey",
		Long: "Print a one-time link with which the user enrols a passkey in their browser.\n" +
			"The link is on the issuer's origin, works once and expires after 15 minutes.\n" +
			"It is printed as the last line of output. Treat it like a password until it is used.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, issuer, err := g.settings()
			if err != nil {
				return err
			}
			return withStore(ctx, g, func(s storage.Storage) error {
				u, err := findUser(ctx, s, args[0])
				if err != nil {
					return err
				}
				if u.Disabled {
					return fmt.Errorf("user %q is disabled", u.Username)
				}
				secret, err := oauth.LoadSystemSecret(ctx, s)
				if err != nil {
					return err
				}
				key, err := deriveCookieKey(secret)
				if err != nil {
					return err
				}
				expires := time.Now().Add(web.EnrollLinkLifetime).Truncate(time.Second)
				link, err := web.NewEnrollLink(issuer, key, u.ID, expires)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(g.stdout, map[string]any{"user_id": u.ID, "username": u.Username,
						"expires_at": expires.UTC(), "url": link})
				}
				fmt.Fprintf(g.stdout, "Passkey enrolment link for %s, valid once until %s:\n%s\n",
					u.Username, expires.UTC().Format(time.RFC3339), link)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the link is in \"url\")")
	return cmd
}
