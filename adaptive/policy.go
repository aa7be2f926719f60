package adaptive

import (
	"fmt"
	"strings"
)

// Action is what a Decision tells the caller to do.
type Action string

// Actions, weakest first.
const (
	ActionAllow  Action = "allow"
	ActionStepUp Action = "step_up"
	ActionDeny   Action = "deny"
)

// Mode says whether decisions are enforced or only recorded.
type Mode string

// Modes. Monitor (shadow mode) lets operators tune thresholds on live
// traffic before anything is enforced.
const (
	ModeEnforce Mode = "enforce"
	ModeMonitor Mode = "monitor"
)

// StepUpRule demands a fresh ceremony at ACR within MaxAge seconds once the
// risk score reaches RiskAtLeast.
type StepUpRule struct {
	RiskAtLeast float64 `json:"risk_at_least" yaml:"risk_at_least"`
	ACR         string  `json:"acr" yaml:"acr"`
	MaxAge      int     `json:"max_age,omitempty" yaml:"max_age"` // seconds
}

// DenyRule refuses the request once the risk score reaches RiskAtLeast.
type DenyRule struct {
	RiskAtLeast float64 `json:"risk_at_least" yaml:"risk_at_least"`
}

// Policy is the requirement of one scope or one client (the YAML under
// `scopes:` or `clients:`). The caller may also turn a request's acr_values
// and max_age into a Policy; Evaluate combines all of them, strictest wins.
type Policy struct {
	// Name identifies the policy in explanations, e.g. "scope payments:write".
	Name   string      `json:"name,omitempty" yaml:"-"`
	MinACR string      `json:"min_acr,omitempty" yaml:"min_acr"`
	StepUp *StepUpRule `json:"step_up,omitempty" yaml:"step_up"`
	Deny   *DenyRule   `json:"deny,omitempty" yaml:"deny"`
	// MaxAge, when set, bounds the age of the authentication whatever the
	// risk (a request's max_age); seconds.
	MaxAge int `json:"max_age,omitempty" yaml:"max_age"`
}

// DefaultLadder returns the default assurance ladder, weakest first
// (DESIGN.md); a fresh slice each time, so callers may modify it.
func DefaultLadder() []string {
	return []string{"urn:stepwise:acr:pwd", "urn:stepwise:acr:passkey", "phr", "phrh"}
}

// rank returns the position of acr on the ladder; unknown values rank above
// everything so that a typo fails closed (nobody can reach it) rather than
// open.
func rank(ladder []string, acr string) int {
	if acr == "" {
		return -1
	}
	for i, a := range ladder {
		if a == acr {
			return i
		}
	}
	return len(ladder)
}

// stricterACR returns the stronger of a and b on the ladder.
func stricterACR(ladder []string, a, b string) string {
	if rank(ladder, b) > rank(ladder, a) {
		return b
	}
	return a
}

// minPositive returns the smaller positive value, treating 0 as unset.
func minPositive(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	case b < a:
		return b
	}
	return a
}

// apply folds the policies into d (whose Score is set): deny beats step up
// beats allow; among step-ups the strongest acr and the shortest max_age
// win; the minimum acr is the strongest of all minimums.
func apply(ladder []string, d *Decision, policies []Policy) {
	d.Action = ActionAllow
	var denyBy, stepBy []string
	for _, p := range policies {
		name := p.Name
		if name == "" {
			name = "policy"
		}
		d.MinACR = stricterACR(ladder, d.MinACR, p.MinACR)
		d.MaxAge = minPositive(d.MaxAge, p.MaxAge)
		if p.Deny != nil && d.Score >= p.Deny.RiskAtLeast {
			d.Action = ActionDeny
			denyBy = append(denyBy, fmt.Sprintf("%s (deny at %g)", name, p.Deny.RiskAtLeast))
		}
		if p.StepUp != nil && d.Score >= p.StepUp.RiskAtLeast {
			if d.Action != ActionDeny {
				d.Action = ActionStepUp
			}
			d.ACR = stricterACR(ladder, d.ACR, p.StepUp.ACR)
			d.MaxAge = minPositive(d.MaxAge, p.StepUp.MaxAge)
			stepBy = append(stepBy, fmt.Sprintf("%s (step up at %g)", name, p.StepUp.RiskAtLeast))
		}
	}
	if d.Action == ActionDeny {
		d.ACR = ""
		d.Policy = strings.Join(denyBy, ", ")
		return
	}
	if d.Action == ActionStepUp {
		// A step-up must at least reach the minimum, whatever its rule says.
		d.ACR = stricterACR(ladder, d.ACR, d.MinACR)
		d.Policy = strings.Join(stepBy, ", ")
	}
}
