package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stepwise-id/stepwise/oauth/resource"
)

// fileConfig is the --config YAML file (DESIGN.md, "The configuration
// file"). Every key is optional; zero values mean "use the default".
type fileConfig struct {
	Issuer            string                  `yaml:"issuer"`
	TrustedProxies    []string                `yaml:"trusted_proxies"`
	ACRLadder         []string                `yaml:"acr_ladder"`
	SteppedUpLifetime duration                `yaml:"stepped_up_lifetime"`
	SessionLifetime   duration                `yaml:"session_lifetime"`
	Tokens            tokenConfig             `yaml:"tokens"`
	Risk              riskConfig              `yaml:"risk"`
	Scopes            map[string]scope        `yaml:"scopes"`
	Clients           map[string]clientPolicy `yaml:"clients"`
	Routes            []resource.RouteConfig  `yaml:"routes"`
	RoutesDefault     string                  `yaml:"routes_default"` // allow (default) or deny

	// GeoIP are the --geoip mmdb files (a flag, not a config key).
	GeoIP []string `yaml:"-"`
	// MDS is the --mds FIDO metadata BLOB file (a flag, not a config key).
	MDS string `yaml:"-"`
}

type tokenConfig struct {
	AccessTokenLifetime  duration `yaml:"access_token_lifetime"`
	RefreshTokenLifetime duration `yaml:"refresh_token_lifetime"`
	IDTokenLifetime      duration `yaml:"id_token_lifetime"`
	AuthCodeLifetime     duration `yaml:"auth_code_lifetime"`
	RefreshGracePeriod   duration `yaml:"refresh_grace_period"`
}

type riskConfig struct {
	Mode                string  `yaml:"mode"` // enforce (default) or monitor
	HistoryDays         int     `yaml:"history_days"`
	ImpossibleTravelKMH float64 `yaml:"impossible_travel_kmh"`
	// Deny lists force the highest score; allow lists (the office) cap it.
	DenyNetworks  []string `yaml:"deny_networks"`
	DenyASNs      []uint32 `yaml:"deny_asns"`
	AllowNetworks []string `yaml:"allow_networks"`
	AllowASNs     []uint32 `yaml:"allow_asns"`
}

type scope struct {
	MinACR string     `yaml:"min_acr"`
	StepUp *stepUp    `yaml:"step_up"`
	Deny   *threshold `yaml:"deny"`
}

type stepUp struct {
	RiskAtLeast int    `yaml:"risk_at_least"`
	ACR         string `yaml:"acr"`
	MaxAge      int    `yaml:"max_age"` // seconds
}

type threshold struct {
	RiskAtLeast int `yaml:"risk_at_least"`
}

type clientPolicy struct {
	MinACR      string `yaml:"min_acr"`
	MachineRisk string `yaml:"machine_risk"` // allow_and_flag, require_private_key_jwt, deny
}

// duration accepts Go duration strings ("15m") and plain seconds.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if v, err := time.ParseDuration(s); err == nil {
		*d = duration(v)
		return nil
	}
	var secs int64
	if _, err := fmt.Sscanf(s, "%d", &secs); err == nil && fmt.Sprint(secs) == s {
		*d = duration(time.Duration(secs) * time.Second)
		return nil
	}
	return fmt.Errorf("line %d: %q is not a duration (use e.g. 15m, 12h, or seconds)", n.Line, s)
}

// D returns the value as a time.Duration.
func (d duration) D() time.Duration { return time.Duration(d) }

// loadConfig reads the YAML file at path; an empty path yields the defaults.
func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err = parseConfig(f)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// parseConfig decodes and validates a config document. Unknown keys are
// errors: a misspelt policy key must not silently weaken a policy.
func parseConfig(r io.Reader) (fileConfig, error) {
	var c fileConfig
	data, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return c, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, err
	}
	return c, c.validate()
}

func (c fileConfig) validate() error {
	var errs []error
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err2 := netip.ParseAddr(p); err2 != nil {
				errs = append(errs, fmt.Errorf("trusted_proxies: %q is not a CIDR prefix or address", p))
			}
		}
	}
	for _, list := range []struct {
		key string
		v   []string
	}{{"risk.deny_networks", c.Risk.DenyNetworks}, {"risk.allow_networks", c.Risk.AllowNetworks}} {
		if _, err := parsePrefixes(list.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", list.key, err))
		}
	}
	if c.Risk.HistoryDays < 0 || c.Risk.ImpossibleTravelKMH < 0 {
		errs = append(errs, errors.New("risk: history_days and impossible_travel_kmh must not be negative"))
	}
	switch c.Risk.Mode {
	case "", "enforce", "monitor":
	default:
		errs = append(errs, fmt.Errorf("risk.mode: %q is neither enforce nor monitor", c.Risk.Mode))
	}
	for name, s := range c.Scopes {
		if s.StepUp != nil && (s.StepUp.RiskAtLeast < 0 || s.StepUp.RiskAtLeast > 100) {
			errs = append(errs, fmt.Errorf("scopes.%s.step_up.risk_at_least: %d is outside 0–100", name, s.StepUp.RiskAtLeast))
		}
		if s.Deny != nil && (s.Deny.RiskAtLeast < 0 || s.Deny.RiskAtLeast > 100) {
			errs = append(errs, fmt.Errorf("scopes.%s.deny.risk_at_least: %d is outside 0–100", name, s.Deny.RiskAtLeast))
		}
	}
	for id, cp := range c.Clients {
		switch cp.MachineRisk {
		case "", "allow_and_flag", "require_private_key_jwt", "deny":
		default:
			errs = append(errs, fmt.Errorf("clients.%s.machine_risk: %q is not allow_and_flag, require_private_key_jwt or deny", id, cp.MachineRisk))
		}
	}
	if _, err := c.routeTable(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// routeTable parses routes and routes_default for the gateway check.
func (c fileConfig) routeTable() (*resource.Table, error) {
	ladder, err := c.ladder()
	if err != nil {
		return nil, fmt.Errorf("acr_ladder: %w", err)
	}
	t, err := resource.ParseRoutes(c.Routes, resource.RoutesOptions{Default: c.RoutesDefault, Ladder: ladder})
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return t, nil
}

// trustedProxyPrefixes parses trusted_proxies, defaulting to loopback.
func (c fileConfig) trustedProxyPrefixes() []netip.Prefix {
	src := c.TrustedProxies
	if src == nil {
		src = []string{"127.0.0.1/32", "::1/128"}
	}
	out := make([]netip.Prefix, 0, len(src))
	for _, p := range src {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pfx)
		} else if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// orDefault returns d when v is zero.
func orDefault(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}
