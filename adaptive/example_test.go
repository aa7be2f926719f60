package adaptive_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
)

// A user with a week of logins from home asks for payments:write from a
// VPN exit on a hosting network abroad.
func ExampleEngine_Evaluate() {
	e := adaptive.New(adaptive.Config{})
	pop := adaptive.NewPopulation()
	p := adaptive.NewProfile()
	home := adaptive.Signals{
		UserID: "alice", IP: netip.MustParseAddr("192.0.2.10"), ASN: 2119, Country: "NO",
		Browser: "Firefox", BrowserVersion: "131.0", OS: "Linux", Device: "desktop",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
	}
	start := time.Date(2026, 5, 1, 18, 0, 0, 0, time.UTC)
	for i := range 7 {
		home.Time = start.AddDate(0, 0, i)
		e.Observe(home, p, pop) // only successful logins
	}
	policy := adaptive.Policy{
		Name:   "scope payments:write",
		MinACR: "urn:stepwise:acr:pwd",
		StepUp: &adaptive.StepUpRule{RiskAtLeast: 40, ACR: "phr", MaxAge: 300},
		Deny:   &adaptive.DenyRule{RiskAtLeast: 90},
	}

	again := home
	again.Time = start.AddDate(0, 0, 7)
	d := e.Evaluate(context.Background(), again, p, pop, policy)
	fmt.Println(d.Action)

	away := again
	away.IP, away.ASN, away.Country, away.NetworkType = netip.MustParseAddr("203.0.113.5"), 9009, "RO", adaptive.NetworkHosting
	d = e.Evaluate(context.Background(), away, p, pop, policy)
	fmt.Println(d.Action, d.ACR, d.MaxAge, d.TopFactor())
	// Output:
	// allow
	// step_up phr 300 new_country
}
