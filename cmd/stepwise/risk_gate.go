package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/adaptive/geo"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/oauth/riskgate"
	"github.com/stepwise-id/stepwise/storage"
)

// riskEngine builds the risk engine from the config file's risk section
// (mode, history_days, impossible_travel_kmh, deny and allow lists) and the
// ladder. The lists were checked by validate.
func (fc fileConfig) riskEngine(ladder oauth.Ladder) *adaptive.Engine {
	deny, _ := parsePrefixes(fc.Risk.DenyNetworks)
	allow, _ := parsePrefixes(fc.Risk.AllowNetworks)
	cfg := adaptive.Config{
		Mode:                adaptive.Mode(fc.Risk.Mode),
		ImpossibleTravelKMH: fc.Risk.ImpossibleTravelKMH,
		Ladder:              ladder.Values(),
		DenyNetworks:        deny,
		DenyASNs:            fc.Risk.DenyASNs,
		AllowNetworks:       allow,
		AllowASNs:           fc.Risk.AllowASNs,
	}
	if fc.Risk.HistoryDays > 0 {
		cfg.Window = time.Duration(fc.Risk.HistoryDays) * 24 * time.Hour
	}
	return adaptive.New(cfg)
}

// parsePrefixes parses CIDR prefixes or single addresses.
func parsePrefixes(in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix or address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// scopePolicies maps scopes.<name> onto the engine's policies, checking
// every acr against the ladder: a typo must fail the start, not open a hole.
func (fc fileConfig) scopePolicies(ladder oauth.Ladder) (map[string]adaptive.Policy, error) {
	out := make(map[string]adaptive.Policy, len(fc.Scopes))
	known := func(where, acr string) error {
		if _, ok := ladder.Level(acr); acr != "" && !ok {
			return fmt.Errorf("config: %s: acr %q is not on the ladder", where, acr)
		}
		return nil
	}
	for name, sc := range fc.Scopes {
		p := adaptive.Policy{Name: "scope " + name, MinACR: sc.MinACR}
		if err := known("scopes."+name+".min_acr", sc.MinACR); err != nil {
			return nil, err
		}
		if sc.StepUp != nil {
			acr := sc.StepUp.ACR
			if acr == "" {
				acr = ladder.Name(oauth.LevelVerifiedPasskey)
			}
			if err := known("scopes."+name+".step_up.acr", acr); err != nil {
				return nil, err
			}
			p.StepUp = &adaptive.StepUpRule{RiskAtLeast: float64(sc.StepUp.RiskAtLeast), ACR: acr, MaxAge: sc.StepUp.MaxAge}
		}
		if sc.Deny != nil {
			p.Deny = &adaptive.DenyRule{RiskAtLeast: float64(sc.Deny.RiskAtLeast)}
		}
		out[name] = p
	}
	return out, nil
}

// newRiskGate builds the risk gate the OAuth core consults on every
// authorization and client_credentials request, with the --geoip files
// opened (the caller closes the returned DB; nil without --geoip).
func newRiskGate(fc fileConfig, ladder oauth.Ladder, logger *slog.Logger, store storage.Storage) (*riskgate.Gate, *geo.DB, error) {
	scopes, err := fc.scopePolicies(ladder)
	if err != nil {
		return nil, nil, err
	}
	clients := make(map[string]riskgate.ClientPolicy, len(fc.Clients))
	for id, cp := range fc.Clients {
		clients[id] = riskgate.ClientPolicy{MinACR: cp.MinACR, Machine: riskgate.MachineAction(cp.MachineRisk)}
	}
	var db *geo.DB
	if len(fc.GeoIP) > 0 {
		if db, err = geo.Open(fc.GeoIP...); err != nil {
			return nil, nil, fmt.Errorf("geoip: %w", err)
		}
	}
	gate, err := riskgate.New(riskgate.Config{
		Engine:         fc.riskEngine(ladder),
		Geo:            db,
		TrustedProxies: fc.trustedProxyPrefixes(),
		Scopes:         scopes,
		Clients:        clients,
	}, store, logger)
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		return nil, nil, err
	}
	return gate, db, nil
}
