// Command stepwise is the Stepwise identity provider: one binary that serves
// the OAuth 2.0 / OpenID Connect endpoints and manages clients, users, keys
// and risk decisions from the command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepwise:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific process exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// globals are the flags every sub-command shares (DESIGN.md: CLI commands take
// the same --db, --issuer and --config flags as serve).
type globals struct {
	db       string
	issuer   string
	config   string
	geoip    []string
	mds      string
	logLevel string

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "stepwise",
		Short:         "An OpenID Connect provider whose tokens say how strongly the user authenticated",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.db, "db", "stepwise.db", "SQLite file path, or a postgres:// DSN")
	pf.StringVar(&g.issuer, "issuer", "", "issuer URL (default http://localhost:8080, or the config file's issuer)")
	pf.StringVar(&g.config, "config", "", "YAML configuration file")
	pf.StringArrayVar(&g.geoip, "geoip", nil, "MaxMind-format mmdb file (may repeat)")
	pf.StringVar(&g.mds, "mds", "", "FIDO MDS3 metadata BLOB file: passkeys are registered with attestation checked against it (read once, never fetched)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")

	root.AddCommand(
		newServeCommand(g),
		newMigrateCommand(g),
		newClientCommand(g),
		newUserCommand(g),
		newKeysCommand(g),
		newRiskCommand(g),
		newBenchCommand(g),
	)
	return root
}

// applyEnv fills every flag not given on the command line from STEPWISE_<NAME>
// (dashes become underscores), so containers can be configured by environment.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "STEPWISE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			if err := sv.Replace(strings.Split(v, ",")); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

func (g *globals) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}
