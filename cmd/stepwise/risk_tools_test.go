package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIRiskSimulateReplayReport(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	logins, scores := filepath.Join(dir, "logins.csv"), filepath.Join(dir, "scores.csv")
	c.run("", "risk", "simulate", "--output", logins, "--users", "300", "--days", "60", "--seed", "3")
	cfg := filepath.Join(dir, "stepwise.yaml")
	if err := os.WriteFile(cfg, []byte(`scopes:
  payments:write:
    step_up: {risk_at_least: 40, acr: phr, max_age: 300}
    deny: {risk_at_least: 90}
  admin:
    step_up: {risk_at_least: 10}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.run("", "--config", cfg, "risk", "replay", "--input", logins, "--output", scores, "--scope", "payments:write")
	if !strings.Contains(out, "scored") || !strings.Contains(out, "scope payments:write") {
		t.Fatalf("replay: %s", out)
	}
	head, err := os.ReadFile(scores)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(head), "\n", 2)[0]
	for _, col := range []string{"risk_score", "decision", "top_factor", "Login Timestamp"} {
		if !strings.Contains(first, col) {
			t.Fatalf("scored header lacks %s: %s", col, first)
		}
	}
	rep := c.run("", "risk", "report", "--input", scores)
	for _, want := range []string{"naive", "vpn", "targeted", "baseline new-IP"} {
		if !strings.Contains(rep, want) {
			t.Fatalf("report lacks %q:\n%s", want, rep)
		}
	}
	if _, err := c.try("", "--config", cfg, "risk", "replay", "--input", logins, "--output", scores, "--scope", "nope"); err == nil ||
		!strings.Contains(err.Error(), "admin, payments:write") {
		t.Fatalf("unknown scope: %v", err)
	}
	if _, err := c.try("", "risk", "replay", "--input", logins); err == nil {
		t.Fatal("replay without --output succeeded")
	}
}

func TestRiskConfigRejectsUnknownACR(t *testing.T) {
	fc, err := parseConfig(strings.NewReader("scopes: {a: {step_up: {risk_at_least: 40, acr: phrr}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ladder, _ := fc.ladder()
	if _, err := fc.scopePolicies(ladder); err == nil || !strings.Contains(err.Error(), "phrr") {
		t.Fatalf("want an error naming the acr, got %v", err)
	}
	if _, err := parseConfig(strings.NewReader("risk: {deny_networks: [not-a-net]}\n")); err == nil {
		t.Fatal("bad deny network accepted")
	}
	fc, err = parseConfig(strings.NewReader("risk: {deny_networks: [192.0.2.0/24, 198.51.100.9], deny_asns: [64666]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fc.riskEngine(ladder) == nil {
		t.Fatal("no engine")
	}
}
