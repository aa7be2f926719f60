package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// cli runs the stepwise command line in-process against one database.
type cli struct {
	t  *testing.T
	db string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, db: filepath.Join(t.TempDir(), "stepwise.db")}
}

// run executes args and returns stdout; it fails the test on error.
func (c *cli) run(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.try(stdin, args...)
	if err != nil {
		c.t.Fatalf("stepwise %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *cli) try(stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := newRootCommand(strings.NewReader(stdin), &stdout, &stderr)
	cmd.SetArgs(append([]string{"--db", c.db}, args...))
	err := cmd.ExecuteContext(c.t.Context())
	return stdout.String(), err
}

func TestCLIClientLifecycle(t *testing.T) {
	c := newCLI(t)
	out := c.run("", "client", "create", "--name", "Web app", "--redirect-uri", "https://app.example.com/cb",
		"--scope", "openid profile", "--scope", "email", "--grant-type", "authorization_code",
		"--grant-type", "refresh_token", "--auth-method", "client_secret_basic", "--json")
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("client create --json printed %q: %v", out, err)
	}
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if id == "" || len(secret) < 43 { // 32 bytes, base64url
		t.Fatalf("client_id %q, client_secret of %d chars", id, len(secret))
	}
	if created["scope"] != "openid profile email" {
		t.Fatalf("scope = %v, want the repeated and space-separated values joined", created["scope"])
	}
	if uris, _ := created["redirect_uris"].([]any); len(uris) != 1 || uris[0] != "https://app.example.com/cb" {
		t.Fatalf("redirect_uris = %v", created["redirect_uris"])
	}

	got := c.run("", "client", "get", id, "--json")
	if strings.Contains(got, secret) || strings.Contains(got, "client_secret\"") {
		t.Fatalf("client get shows the secret: %s", got)
	}
	list := c.run("", "client", "list", "--json")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(list), &listed); err != nil || len(listed) != 1 || listed[0]["client_id"] != id {
		t.Fatalf("client list --json = %s (%v)", list, err)
	}

	updated := c.run("", "client", "update", id, "--name", "Renamed", "--json")
	var u map[string]any
	_ = json.Unmarshal([]byte(updated), &u)
	if u["client_name"] != "Renamed" || u["scope"] != "openid profile email" {
		t.Fatalf("update changed more than the name: %s", updated)
	}

	c.run("", "client", "delete", id)
	if _, err := c.try("", "client", "get", id); err == nil {
		t.Fatal("deleted client still found")
	}
}

func TestCLIClientCreateRejectsBadMetadata(t *testing.T) {
	c := newCLI(t)
	cases := [][]string{
		{"--name", "x", "--grant-type", "authorization_code"}, // no redirect URI
		{"--name", "x", "--redirect-uri", "https://a.example/cb#frag"},
		{"--name", "x", "--grant-type", "password"},
		{"--name", "x", "--grant-type", "client_credentials", "--auth-method", "none"},
		{"--name", "x", "--grant-type", "client_credentials", "--auth-method", "client_secret_jwt"},
	}
	for _, args := range cases {
		if _, err := c.try("", append([]string{"client", "create"}, args...)...); err == nil {
			t.Errorf("client create %v succeeded", args)
		}
	}
}

func TestCLIMachineClientNeedsNoRedirect(t *testing.T) {
	c := newCLI(t)
	out := c.run("", "client", "create", "--name", "svc", "--grant-type", "client_credentials", "--scope", "api.read", "--json")
	if !strings.Contains(out, `"client_secret"`) {
		t.Fatalf("machine client: %s", out)
	}
}

func TestCLIRegistrationTokenIsLastLine(t *testing.T) {
	c := newCLI(t)
	out := strings.TrimSpace(c.run("", "client", "registration-token", "--expires", "1h"))
	lines := strings.Split(out, "\n")
	if tok := lines[len(lines)-1]; len(tok) < 32 || strings.ContainsAny(tok, " \t") {
		t.Fatalf("last line %q is not a token", tok)
	}
}

func TestCLIUsers(t *testing.T) {
	c := newCLI(t)
	out := c.run("s3cret-password\n", "user", "create", "--username", "bob", "--email", "bob@example.com", "--password-stdin", "--json")
	var u map[string]any
	if err := json.Unmarshal([]byte(out), &u); err != nil || u["username"] != "bob" || u["has_password"] != true {
		t.Fatalf("user create: %s (%v)", out, err)
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, "s3cret") {
		t.Fatal("user create printed the password or its hash")
	}
	if _, err := c.try("x\n", "user", "create", "--username", "bob", "--password-stdin"); err == nil {
		t.Fatal("a duplicate username or a short password was accepted")
	}
	if _, err := c.try("", "user", "create", "--username", "bob"); err == nil {
		t.Fatal("duplicate username accepted")
	}
	if got := c.run("", "user", "get", "bob", "--json"); !strings.Contains(got, "bob@example.com") {
		t.Fatalf("user get: %s", got)
	}
	c.run("", "user", "delete", "bob")
	if _, err := c.try("", "user", "get", "bob"); err == nil {
		t.Fatal("deleted user still found")
	}
}

func TestCLIKeysRotate(t *testing.T) {
	c := newCLI(t)
	c.run("", "keys", "rotate") // first key
	c.run("", "keys", "rotate") // second; the first stays published
	var keys []map[string]any
	if err := json.Unmarshal([]byte(c.run("", "keys", "list", "--json")), &keys); err != nil {
		t.Fatal(err)
	}
	active, published := 0, 0
	for _, k := range keys {
		if k["Active"] == true {
			active++
		}
		if k["Published"] == true {
			published++
		}
	}
	if active != 1 || published < 2 {
		t.Fatalf("after two rotations: %d active, %d published: %v", active, published, keys)
	}
}

func TestCLIMigrateIsIdempotent(t *testing.T) {
	c := newCLI(t)
	c.run("", "migrate")
	if out := c.run("", "migrate"); !strings.Contains(out, "applied 0") {
		t.Fatalf("second migrate: %q", out)
	}
}

func TestCLIEnvironmentVariables(t *testing.T) {
	c := newCLI(t)
	t.Setenv("STEPWISE_DB", c.db)
	var stdout, stderr bytes.Buffer
	cmd := newRootCommand(strings.NewReader(""), &stdout, &stderr)
	cmd.SetArgs([]string{"client", "create", "--name", "svc", "--grant-type", "client_credentials", "--json"})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The client landed in the database named by STEPWISE_DB.
	if out := c.run("", "client", "list", "--json"); !strings.Contains(out, `"svc"`) {
		t.Fatalf("STEPWISE_DB ignored: %s", out)
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"empty", "", ""},
		{"design example", `
issuer: http://localhost:8080
trusted_proxies: [127.0.0.1/32, "::1/128"]
acr_ladder: [urn:stepwise:acr:pwd, urn:stepwise:acr:passkey, phr, phrh]
stepped_up_lifetime: 15m
risk: {mode: enforce, history_days: 180, impossible_travel_kmh: 900}
scopes:
  payments:write:
    min_acr: urn:stepwise:acr:pwd
    step_up: {risk_at_least: 40, acr: phr, max_age: 300}
    deny: {risk_at_least: 90}
clients:
  billing-app: {min_acr: phr, machine_risk: allow_and_flag}
routes:
  - match: "POST /payments/{rest...}"
    scopes: [payments:write]
    acr: phr
    max_age: 300
`, ""},
		{"unknown key", "isuer: http://x\n", "isuer"},
		{"bad mode", "risk: {mode: yolo}\n", "risk.mode"},
		{"bad proxy", "trusted_proxies: [nope]\n", "trusted_proxies"},
		{"bad duration", "stepped_up_lifetime: soon\n", "duration"},
		{"risk out of range", "scopes: {a: {deny: {risk_at_least: 101}}}\n", "outside"},
		{"bad machine risk", "clients: {a: {machine_risk: maybe}}\n", "machine_risk"},
		{"bad route", "routes: [{match: payments}]\n", "routes[0]"},
		{"seconds duration", "stepped_up_lifetime: 900\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(strings.NewReader(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.name == "seconds duration" && c.SteppedUpLifetime.D() != 15*time.Minute {
					t.Fatalf("900 parsed as %v", c.SteppedUpLifetime.D())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	cases := map[string]string{
		"postgres://u:pw@h/db": "postgres://u:***@h/db",
		"postgres://u@h/db":    "postgres://u@h/db",
		"stepwise.db":          "stepwise.db",
	}
	for in, want := range cases {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServeRefusesABadMDSFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "mds.jwt")
	if err := os.WriteFile(bad, []byte("not a metadata blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := fileConfig{MDS: bad}
	if _, err := newServer(t.Context(), storagetest.SQLite(t), fc, "http://localhost:8080", slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "--mds") {
		t.Fatalf("newServer with a bad --mds file: %v, want an error naming --mds", err)
	}
}
