package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/web/password"
)

func newUserCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage user accounts"}
	cmd.AddCommand(newUserCreateCommand(g), newUserListCommand(g), newUserGetCommand(g), newUserDeleteCommand(g))
	cmd.AddCommand(newUserEnrollLinkCommand(g))
	return cmd
}

// userView is the JSON shape of a user on the command line. The password
// hash never leaves the server.
type userView struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	HasPassword bool      `json:"has_password"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"created_at"`
}

func viewUser(u storage.User) userView {
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName,
		HasPassword: u.PasswordHash != "", Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func newUserCreateCommand(g *globals) *cobra.Command {
	var username, email, displayName string
	var passwordStdin, asJSON bool
	cmd := &cobra.Command{
		Use:   "create --username U [--email E] [--password-stdin]",
		Short: "Create a user; the password, if any, is read from standard input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			username = strings.TrimSpace(username)
			if username == "" {
				return errors.New("--username is required")
			}
			u := storage.User{ID: uuid.NewString(), Username: username, Email: strings.TrimSpace(email),
				DisplayName: displayName, CreatedAt: time.Now().UTC()}
			u.UpdatedAt = u.CreatedAt
			if passwordStdin {
				pw, err := readPassword(g.stdin)
				if err != nil {
					return err
				}
				if u.PasswordHash, err = password.Hash(pw); err != nil {
					return fmt.Errorf("hash password: %w", err)
				}
			}
			return withStore(cmd.Context(), g, func(s storage.Storage) error {
				if err := s.CreateUser(cmd.Context(), u); err != nil {
					if errors.Is(err, storage.ErrAlreadyExists) {
						return fmt.Errorf("user %q already exists", username)
					}
					return fmt.Errorf("create user: %w", err)
				}
				return printUser(g.stdout, u, asJSON)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "unique user name")
	f.StringVar(&email, "email", "", "e-mail address")
	f.StringVar(&displayName, "display-name", "", "name shown to the user and in ID tokens")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (first line)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// readPassword takes the first line of r, so `echo pw | stepwise user create`
// and a here-string both work; trailing CR/LF are not part of the password.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("--password-stdin: standard input held no password")
	}
	if len(pw) < 8 {
		return "", errors.New("password must be at least 8 characters")
	}
	return pw, nil
}

func newUserListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), g, func(s storage.Storage) error {
				users, err := s.ListUsers(cmd.Context())
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				if asJSON {
					views := make([]userView, 0, len(users))
					for _, u := range users {
						views = append(views, viewUser(u))
					}
					return writeJSON(g.stdout, views)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tCREATED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Email, u.CreatedAt.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUserGetCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get USERNAME|ID",
		Short: "Show one user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), g, func(s storage.Storage) error {
				u, err := findUser(cmd.Context(), s, args[0])
				if err != nil {
					return err
				}
				return printUser(g.stdout, u, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUserDeleteCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete USERNAME|ID",
		Short: "Delete a user and end their sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(s storage.Storage) error {
				u, err := findUser(ctx, s, args[0])
				if err != nil {
					return err
				}
				sessions, err := s.ListUserSessions(ctx, u.ID)
				if err != nil {
					return fmt.Errorf("list sessions: %w", err)
				}
				for _, sess := range sessions {
					if _, err := s.DeleteRequestsBySession(ctx, sess.ID); err != nil {
						return fmt.Errorf("revoke tokens of session: %w", err)
					}
					if err := s.DeleteSession(ctx, sess.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
						return fmt.Errorf("delete session: %w", err)
					}
				}
				if err := s.DeleteUser(ctx, u.ID); err != nil {
					return fmt.Errorf("delete user: %w", err)
				}
				if asJSON {
					return writeJSON(g.stdout, map[string]any{"deleted": u.ID})
				}
				fmt.Fprintf(g.stdout, "deleted user %s (%s)\n", u.Username, u.ID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// findUser accepts a username or a user ID.
func findUser(ctx context.Context, s storage.Users, ref string) (storage.User, error) {
	u, err := s.GetUserByUsername(ctx, ref)
	if errors.Is(err, storage.ErrNotFound) {
		u, err = s.GetUser(ctx, ref)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return u, fmt.Errorf("no user %q", ref)
	}
	if err != nil {
		return u, fmt.Errorf("find user %q: %w", ref, err)
	}
	return u, nil
}

func printUser(w io.Writer, u storage.User, asJSON bool) error {
	if asJSON {
		return writeJSON(w, viewUser(u))
	}
	fmt.Fprintf(w, "id:       %s\nusername: %s\n", u.ID, u.Username)
	if u.Email != "" {
		fmt.Fprintf(w, "email:    %s\n", u.Email)
	}
	fmt.Fprintf(w, "password: %t\ncreated:  %s\n", u.PasswordHash != "", u.CreatedAt.Format(time.RFC3339))
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withStore opens the configured store for one command and closes it after.
func withStore(ctx context.Context, g *globals, fn func(storage.Storage) error) error {
	s, err := openStore(ctx, g.db)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}
