package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

func newClientCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients"}
	cmd.AddCommand(
		newClientCreateCommand(g),
		newClientListCommand(g),
		newClientGetCommand(g),
		newClientUpdateCommand(g),
		newClientDeleteCommand(g),
		newClientRotateSecretCommand(g),
		newClientRegistrationTokenCommand(g),
	)
	return cmd
}

// clientFlags are the metadata flags shared by create and update.
type clientFlags struct {
	name                   string
	redirectURIs           []string
	postLogoutRedirectURIs []string
	scopes                 []string
	grantTypes             []string
	responseTypes          []string
	authMethod             string
	audience               []string
	jwksFile               string
	requirePKCE            bool
	requirePAR             bool
	accessTokenFormat      string
	applicationType        string
}

func (c *clientFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.name, "name", "", "human-readable client name")
	f.StringArrayVar(&c.redirectURIs, "redirect-uri", nil, "redirect URI, matched exactly (may repeat)")
	f.StringArrayVar(&c.postLogoutRedirectURIs, "post-logout-redirect-uri", nil, "post-logout redirect URI (may repeat)")
	f.StringArrayVar(&c.scopes, "scope", nil, "allowed scope (may repeat, or a space-separated list)")
	f.StringArrayVar(&c.grantTypes, "grant-type", nil, "authorization_code, refresh_token or client_credentials (may repeat)")
	f.StringArrayVar(&c.responseTypes, "response-type", nil, "response type (default code for authorization_code clients)")
	f.StringVar(&c.authMethod, "auth-method", "", "client_secret_basic (default), client_secret_post, private_key_jwt or none")
	f.StringArrayVar(&c.audience, "audience", nil, "resource server the client's tokens may target (may repeat)")
	f.StringVar(&c.jwksFile, "jwks-file", "", "JSON Web Key Set file with the client's public keys (private_key_jwt)")
	f.BoolVar(&c.requirePKCE, "require-pkce", false, "require PKCE from this confidential client (always required for public clients)")
	f.BoolVar(&c.requirePAR, "require-par", false, "require pushed authorization requests (RFC 9126)")
	f.StringVar(&c.accessTokenFormat, "access-token-format", "", "opaque (default) or jwt (RFC 9068)")
	f.StringVar(&c.applicationType, "application-type", "", "web (default) or native")
}

// apply copies the flags that were given onto m, so update changes only what
// the operator named.
func (c *clientFlags) apply(f *pflag.FlagSet, m *oauth.Metadata) error {
	set := func(name string) bool { return f.Changed(name) }
	if set("name") {
		m.ClientName = c.name
	}
	if set("redirect-uri") {
		m.RedirectURIs = c.redirectURIs
	}
	if set("post-logout-redirect-uri") {
		m.PostLogoutRedirectURIs = c.postLogoutRedirectURIs
	}
	if set("scope") {
		m.Scope = splitScopes(c.scopes)
	}
	if set("grant-type") {
		m.GrantTypes = c.grantTypes
		if !set("response-type") {
			// The old response types may contradict the new grants; let
			// validation derive them again.
			m.ResponseTypes = nil
		}
	}
	if set("response-type") {
		m.ResponseTypes = c.responseTypes
	}
	if set("auth-method") {
		m.TokenEndpointAuthMethod = c.authMethod
	}
	if set("audience") {
		m.Audience = c.audience
	}
	if set("require-pkce") {
		m.RequirePKCE = c.requirePKCE
	}
	if set("require-par") {
		m.RequirePAR = c.requirePAR
	}
	if set("access-token-format") {
		m.AccessTokenFormat = c.accessTokenFormat
	}
	if set("application-type") {
		m.ApplicationType = c.applicationType
	}
	if set("jwks-file") {
		data, err := os.ReadFile(c.jwksFile)
		if err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
		if !json.Valid(data) {
			return fmt.Errorf("--jwks-file %s: not valid JSON", c.jwksFile)
		}
		m.JWKS = data
	}
	return nil
}

// splitScopes accepts both repeated --scope flags and space-separated lists.
func splitScopes(in []string) oauth.ScopeList {
	var out oauth.ScopeList
	for _, s := range in {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

// withRegistry opens the store and a client registry that hashes secrets
// exactly as the server checks them.
func withRegistry(ctx context.Context, g *globals, fn func(*oauth.ClientRegistry) error) error {
	return withStore(ctx, g, func(s storage.Storage) error {
		secret, err := oauth.LoadSystemSecret(ctx, s)
		if err != nil {
			return err
		}
		hasher, err := oauth.NewClientSecretHasher(secret)
		if err != nil {
			return err
		}
		return fn(oauth.NewClientRegistry(s, hasher))
	})
}

func newClientCreateCommand(g *globals) *cobra.Command {
	var cf clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --name N [--redirect-uri U] [--scope S] [--grant-type G] [--auth-method M]",
		Short: "Register a client; its secret is printed once and never stored in clear",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m oauth.Metadata
			if err := cf.apply(cmd.Flags(), &m); err != nil {
				return err
			}
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				c, err := reg.Create(cmd.Context(), m)
				if err != nil {
					return fmt.Errorf("create client: %w", err)
				}
				return printClient(g.stdout, c, asJSON)
			})
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the client as RFC 7591 JSON")
	return cmd
}

func newClientListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				clients, err := reg.List(cmd.Context())
				if err != nil {
					return fmt.Errorf("list clients: %w", err)
				}
				if asJSON {
					if clients == nil {
						clients = []oauth.Registered{}
					}
					return writeJSON(g.stdout, clients)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT ID\tNAME\tGRANT TYPES\tAUTH METHOD")
				for _, c := range clients {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ClientID, c.ClientName, strings.Join(c.GrantTypes, ","), c.TokenEndpointAuthMethod)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientGetCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get CLIENT_ID",
		Short: "Show one client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				c, err := reg.Get(cmd.Context(), args[0])
				if err != nil {
					return clientError(args[0], err)
				}
				return printClient(g.stdout, c, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientUpdateCommand(g *globals) *cobra.Command {
	var cf clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID [flags]",
		Short: "Change a client's metadata; flags not given keep their values",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				cur, err := reg.Get(cmd.Context(), args[0])
				if err != nil {
					return clientError(args[0], err)
				}
				m := cur.Metadata
				if err := cf.apply(cmd.Flags(), &m); err != nil {
					return err
				}
				c, err := reg.Update(cmd.Context(), args[0], m)
				if err != nil {
					return clientError(args[0], err)
				}
				return printClient(g.stdout, c, asJSON)
			})
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientDeleteCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				if err := reg.Delete(cmd.Context(), args[0]); err != nil {
					return clientError(args[0], err)
				}
				if asJSON {
					return writeJSON(g.stdout, map[string]string{"deleted": args[0]})
				}
				fmt.Fprintf(g.stdout, "deleted client %s\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientRotateSecretCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Issue a new client secret (the old one stops working)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				c, err := reg.RotateSecret(cmd.Context(), args[0])
				if err != nil {
					return clientError(args[0], err)
				}
				return printClient(g.stdout, c, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientRegistrationTokenCommand(g *globals) *cobra.Command {
	var expires time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "registration-token [--expires 24h]",
		Short: "Issue an initial access token for RFC 7591 dynamic registration (printed as the last line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires <= 0 {
				return errors.New("--expires must be positive")
			}
			return withRegistry(cmd.Context(), g, func(reg *oauth.ClientRegistry) error {
				tok, err := reg.CreateRegistrationToken(cmd.Context(), expires)
				if err != nil {
					return fmt.Errorf("create registration token: %w", err)
				}
				if asJSON {
					return writeJSON(g.stdout, map[string]any{
						"initial_access_token": tok,
						"expires_at":           time.Now().Add(expires).UTC().Format(time.RFC3339),
					})
				}
				fmt.Fprintf(g.stderr, "initial access token, valid for %s; send it as 'Authorization: Bearer' to %s:\n", expires, oauth.RegistrationPath)
				fmt.Fprintln(g.stdout, tok)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&expires, "expires", 24*time.Hour, "how long the token is valid")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func clientError(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no client %q", id)
	}
	return fmt.Errorf("client %s: %w", id, err)
}

func printClient(w io.Writer, c oauth.Registered, asJSON bool) error {
	if asJSON {
		return writeJSON(w, c)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("client_id", c.ClientID)
	row("client_secret", c.ClientSecret)
	row("name", c.ClientName)
	row("redirect_uris", strings.Join(c.RedirectURIs, " "))
	row("grant_types", strings.Join(c.GrantTypes, " "))
	row("scope", strings.Join(c.Scope, " "))
	row("auth_method", c.TokenEndpointAuthMethod)
	row("access_token_format", c.AccessTokenFormat)
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.ClientSecret != "" {
		fmt.Fprintln(w, "(the secret is shown only now; store it safely)")
	}
	return nil
}
