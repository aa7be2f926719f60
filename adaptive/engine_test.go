package adaptive

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 19, 0, 0, 0, time.UTC)

// base is the user's usual login: home network in Oslo, Chrome on Windows.
func base() Signals {
	return Signals{
		Time:           t0,
		UserID:         "alice",
		IP:             netip.MustParseAddr("192.0.2.10"),
		ASN:            2119,
		Country:        "NO",
		Region:         "Oslo",
		City:           "Oslo",
		Lat:            59.91,
		Lon:            10.75,
		HasLocation:    true,
		UserAgent:      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Browser:        "Chrome",
		BrowserVersion: "120.0.0.0",
		OS:             "Windows",
		Device:         "desktop",
		DeviceID:       "dev-1",
		RTT:            30 * time.Millisecond,
	}
}

// history builds alice's profile (n daily logins at 19:00 ending the day
// before t0) and a population of other users around her.
func history(t testing.TB, e *Engine, n int) (*Profile, *Population) {
	t.Helper()
	pop := NewPopulation()
	for i := range 200 {
		p := NewProfile()
		s := base()
		s.UserID = fmt.Sprint("other", i)
		s.IP = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		s.DeviceID = fmt.Sprint("d", i)
		for j := range 5 {
			s.Time = t0.AddDate(0, 0, -10+j)
			e.Observe(s, p, pop)
		}
	}
	p := NewProfile()
	for i := range n {
		s := base()
		s.Time = t0.AddDate(0, 0, -n+i)
		e.Observe(s, p, pop)
	}
	return p, pop
}

func factor(d Decision, name string) (Factor, bool) {
	for _, f := range d.Factors {
		if f.Name == name {
			return f, true
		}
	}
	return Factor{}, false
}

// raw is the unclamped sum of the additive factors.
func raw(d Decision) float64 {
	sum := 0.0
	for _, f := range d.Factors {
		if !f.Rule {
			sum += f.Points
		}
	}
	return sum
}

func stepUpPolicy() Policy {
	return Policy{
		Name:   "scope payments:write",
		MinACR: "urn:stepwise:acr:pwd",
		StepUp: &StepUpRule{RiskAtLeast: 40, ACR: "phr", MaxAge: 300},
		Deny:   &DenyRule{RiskAtLeast: 90},
	}
}

func TestNoHistoryIsUnfamiliar(t *testing.T) {
	e := New(Config{})
	for _, p := range []*Profile{nil, NewProfile()} {
		d := e.Evaluate(context.Background(), base(), p, nil, stepUpPolicy())
		if _, ok := factor(d, "no_history"); !ok {
			t.Fatalf("no no_history factor: %+v", d.Factors)
		}
		if d.Action != ActionStepUp || d.ACR != "phr" || d.MaxAge != 300 {
			t.Fatalf("no history: got %s %s %d (score %v), want step_up phr 300", d.Action, d.ACR, d.MaxAge, d.Score)
		}
	}
}

func TestFamiliarLoginIsAllowed(t *testing.T) {
	e := New(Config{})
	p, pop := history(t, e, 30)
	d := e.Evaluate(context.Background(), base(), p, pop, stepUpPolicy())
	if d.Action != ActionAllow || d.Score > 5 {
		t.Fatalf("familiar login: %s score %v: %s", d.Action, d.Score, d.Explanation)
	}
	if d.MinACR != "urn:stepwise:acr:pwd" {
		t.Fatalf("min acr %q", d.MinACR)
	}
}

func TestFactors(t *testing.T) {
	e := New(Config{DenyASNs: []uint32{666}})
	p, pop := history(t, e, 30)
	// Compare without the cookie: a known device would pull every score to
	// zero and hide the factor under test.
	noCookie := base()
	noCookie.DeviceID = ""
	familiar := raw(e.Evaluate(context.Background(), noCookie, p, pop))
	tests := []struct {
		name   string
		change func(*Signals)
		factor string
		sign   int // +1 raises the score, -1 lowers it
	}{
		{"new country", func(s *Signals) {
			s.Country, s.ASN, s.IP, s.HasLocation = "BR", 28573, netip.MustParseAddr("198.51.100.9"), false
		}, "new_country", 1},
		{"new ASN", func(s *Signals) { s.ASN, s.IP = 9009, netip.MustParseAddr("203.0.113.5") }, "new_asn", 1},
		{"new /24 on the same ASN", func(s *Signals) { s.IP = netip.MustParseAddr("192.0.3.10") }, "new_network", 1},
		{"new IP in the same /24", func(s *Signals) { s.IP = netip.MustParseAddr("192.0.2.77") }, "new_ip", 1},
		{"new browser", func(s *Signals) { s.Browser, s.UserAgent = "Firefox", "Mozilla/5.0 Firefox/121.0" }, "new_browser", 1},
		{"older browser", func(s *Signals) {
			s.BrowserVersion, s.UserAgent = "112.0.0.0", strings.Replace(s.UserAgent, "120.0", "112.0", 1)
		}, "older_browser", 1},
		{"browser far ahead", func(s *Signals) {
			s.BrowserVersion, s.UserAgent = "131.0.0.0", strings.Replace(s.UserAgent, "120.0", "131.0", 1)
		}, "browser_jump", 1},
		{"high RTT", func(s *Signals) { s.RTT = 220 * time.Millisecond }, "rtt", 1},
		{"unusual hour", func(s *Signals) { s.Time = s.Time.Add(8 * time.Hour) }, "hour", 1},
		{"unknown device of a user who keeps devices", func(s *Signals) { s.DeviceID = "dev-2" }, "unknown_device", 1},
		{"known device", func(s *Signals) {}, "known_device", -1},
		{"account failures", func(s *Signals) { s.AccountFailures = 3 }, "account_failures", 1},
		{"hosting network", func(s *Signals) {
			s.ASN, s.IP, s.NetworkType = 9009, netip.MustParseAddr("203.0.113.5"), NetworkHosting
		}, "hosting_network", 1},
		{"deny-listed ASN", func(s *Signals) { s.ASN = 666 }, "deny_list", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			if !strings.HasSuffix(tt.factor, "device") {
				s.DeviceID = ""
			}
			tt.change(&s)
			d := e.Evaluate(context.Background(), s, p, pop, stepUpPolicy())
			f, ok := factor(d, tt.factor)
			if !ok {
				t.Fatalf("factor %s missing: %s", tt.factor, d.Explanation)
			}
			if tt.sign > 0 && (f.Points <= 0 || (!f.Rule && raw(d) <= familiar && !strings.HasSuffix(tt.factor, "device"))) {
				t.Fatalf("%s: %+v, score %v vs familiar %v", tt.factor, f, d.Score, familiar)
			}
			if tt.sign < 0 && f.Points >= 0 {
				t.Fatalf("%s: %+v", tt.factor, f)
			}
			if f.Detail == "" || d.Explanation == "" {
				t.Fatal("factor or decision without explanation")
			}
		})
	}
	t.Run("deny list forces deny", func(t *testing.T) {
		s := base()
		s.ASN = 666
		d := e.Evaluate(context.Background(), s, p, pop, stepUpPolicy())
		if d.Score != 100 || d.Action != ActionDeny {
			t.Fatalf("deny list: %v %s", d.Score, d.Action)
		}
	})
	t.Run("new country steps up", func(t *testing.T) {
		s := base()
		s.Country, s.ASN, s.IP, s.HasLocation = "BR", 28573, netip.MustParseAddr("198.51.100.9"), false
		s.Browser, s.UserAgent, s.BrowserVersion = "Firefox", "Mozilla/5.0 Firefox/121.0", "121.0"
		d := e.Evaluate(context.Background(), s, p, pop, stepUpPolicy())
		if d.Action == ActionAllow {
			t.Fatalf("attack-like login allowed: %s", d.Explanation)
		}
	})
}

func TestImpossibleTravel(t *testing.T) {
	e := New(Config{ImpossibleTravelKMH: 900})
	p, pop := history(t, e, 10)
	sydney := func(after time.Duration) Signals {
		s := base()
		last := p.logins[len(p.logins)-1]
		s.Time = time.Unix(last.Unix, 0).Add(after)
		s.Lat, s.Lon, s.Country = -33.87, 151.21, "AU"
		return s
	}
	tests := []struct {
		after time.Duration
		want  bool
	}{
		{time.Hour, true},       // 15,900 km in an hour
		{10 * time.Hour, true},  // still ~1,600 km/h
		{30 * time.Hour, false}, // a long flight
	}
	for _, tt := range tests {
		d := e.Evaluate(context.Background(), sydney(tt.after), p, pop, stepUpPolicy())
		_, got := factor(d, "impossible_travel")
		if got != tt.want {
			t.Errorf("after %v: impossible_travel=%v, want %v (%s)", tt.after, got, tt.want, d.Explanation)
		}
		if got && d.Score < 90 {
			t.Errorf("after %v: score %v below the rule's floor", tt.after, d.Score)
		}
	}
	// Without locations (no City database) the rule stays silent.
	s := sydney(time.Hour)
	s.HasLocation = false
	if _, got := factor(e.Evaluate(context.Background(), s, p, pop), "impossible_travel"); got {
		t.Error("impossible travel without locations")
	}
}

func TestPolicyStrictestWins(t *testing.T) {
	ladder := DefaultLadder()
	tests := []struct {
		name       string
		score      float64
		policies   []Policy
		wantAction Action
		wantACR    string
		wantMin    string
		wantMaxAge int
	}{
		{"no policy allows", 99, nil, ActionAllow, "", "", 0},
		{"below every threshold", 10, []Policy{stepUpPolicy()}, ActionAllow, "", "urn:stepwise:acr:pwd", 0},
		{"step up", 45, []Policy{stepUpPolicy()}, ActionStepUp, "phr", "urn:stepwise:acr:pwd", 300},
		{"deny beats step up", 95, []Policy{stepUpPolicy()}, ActionDeny, "", "urn:stepwise:acr:pwd", 300},
		{"strongest acr and shortest max_age", 50, []Policy{
			stepUpPolicy(),
			{Name: "client billing", StepUp: &StepUpRule{RiskAtLeast: 30, ACR: "phrh", MaxAge: 600}},
			{Name: "scope read", StepUp: &StepUpRule{RiskAtLeast: 20, ACR: "urn:stepwise:acr:passkey", MaxAge: 60}},
		}, ActionStepUp, "phrh", "urn:stepwise:acr:pwd", 60},
		{"lower threshold of another scope triggers", 25, []Policy{
			stepUpPolicy(), {Name: "scope admin", StepUp: &StepUpRule{RiskAtLeast: 20, ACR: "phr"}},
		}, ActionStepUp, "phr", "urn:stepwise:acr:pwd", 0},
		{"client minimum raises the step-up acr", 50, []Policy{
			stepUpPolicy(), {Name: "client billing", MinACR: "phrh"},
		}, ActionStepUp, "phrh", "phrh", 300},
		{"deny of one policy wins", 35, []Policy{
			stepUpPolicy(), {Name: "client risky", Deny: &DenyRule{RiskAtLeast: 30}},
		}, ActionDeny, "", "urn:stepwise:acr:pwd", 0},
		{"request max_age applies without risk", 0, []Policy{{Name: "request", MaxAge: 120}}, ActionAllow, "", "", 120},
		{"unknown acr fails closed", 50, []Policy{
			stepUpPolicy(), {Name: "typo", StepUp: &StepUpRule{RiskAtLeast: 1, ACR: "phr-typo"}},
		}, ActionStepUp, "phr-typo", "urn:stepwise:acr:pwd", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decision{Score: tt.score}
			apply(ladder, &d, tt.policies)
			if d.Action != tt.wantAction || d.ACR != tt.wantACR || d.MinACR != tt.wantMin || d.MaxAge != tt.wantMaxAge {
				t.Fatalf("got %s acr=%q min=%q max_age=%d, want %s %q %q %d",
					d.Action, d.ACR, d.MinACR, d.MaxAge, tt.wantAction, tt.wantACR, tt.wantMin, tt.wantMaxAge)
			}
		})
	}
}

func TestMonitorMode(t *testing.T) {
	for _, mode := range []Mode{ModeEnforce, ModeMonitor} {
		e := New(Config{Mode: mode})
		d := e.Evaluate(context.Background(), base(), nil, nil, stepUpPolicy())
		if d.Action != ActionStepUp {
			t.Fatalf("%s: the decision must still be made, got %s", mode, d.Action)
		}
		if d.Enforced != (mode == ModeEnforce) || d.Mode != mode {
			t.Fatalf("%s: enforced=%v mode=%s", mode, d.Enforced, d.Mode)
		}
		if mode == ModeMonitor && !strings.Contains(d.Explanation, "not enforced") {
			t.Fatalf("monitor explanation: %s", d.Explanation)
		}
	}
}

func TestProfileWindow(t *testing.T) {
	e := New(Config{Window: 30 * 24 * time.Hour})
	p, pop := history(t, e, 10)
	if p.Len() != 10 {
		t.Fatalf("len %d", p.Len())
	}
	// 60 days later everything has aged out: the user is unfamiliar again.
	s := base()
	s.Time = t0.AddDate(0, 2, 0)
	p.Prune(s.Time.Add(-e.Window()))
	if p.Len() != 0 || len(p.counts) != 0 || p.opps != 0 {
		t.Fatalf("after prune: len %d counts %d opps %d", p.Len(), len(p.counts), p.opps)
	}
	d := e.Evaluate(context.Background(), s, p, pop, stepUpPolicy())
	if _, ok := factor(d, "no_history"); !ok {
		t.Fatalf("expired history must not count: %s", d.Explanation)
	}
}

func TestEvaluateHistory(t *testing.T) {
	e := New(Config{})
	p, pop := history(t, e, 5)
	h := memHistory{p: p, pop: pop}
	d, err := e.EvaluateHistory(context.Background(), base(), h, stepUpPolicy())
	if err != nil || d.HistoryLen != 5 {
		t.Fatalf("%v %d", err, d.HistoryLen)
	}
	if _, err := e.EvaluateHistory(context.Background(), base(), memHistory{err: context.Canceled}); err == nil {
		t.Fatal("want error")
	}
}

type memHistory struct {
	p   *Profile
	pop *Population
	err error
}

func (m memHistory) Profile(context.Context, string) (*Profile, error) { return m.p, m.err }
func (m memHistory) Population(context.Context) (*Population, error)   { return m.pop, m.err }

func TestDecisionJSON(t *testing.T) {
	e := New(Config{})
	d := e.Evaluate(context.Background(), base(), nil, nil, stepUpPolicy())
	d.ID = "evt_1"
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"id":"evt_1"`, `"score":`, `"decision":"step_up"`, `"acr":"phr"`, `"max_age":300`, `"factors":[`, `"explanation":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil || back.Action != d.Action || len(back.Factors) != len(d.Factors) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

func TestUAParser(t *testing.T) {
	u := NewUAParser()
	tests := []struct {
		ua   string
		want Agent
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
			Agent{Browser: "Chrome", BrowserVersion: "120.0.0.0", OS: "Windows", OSVersion: "10.0", Device: "desktop"}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
			Agent{Browser: "Safari", BrowserVersion: "17.1", OS: "iOS", OSVersion: "17.1", Device: "mobile"}},
		{"Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
			Agent{Browser: "Chrome", BrowserVersion: "125.0.0.0", OS: "Android", OSVersion: "14", Device: "mobile"}},
		{"", Agent{}},
	}
	for _, tt := range tests {
		if got := u.Parse(tt.ua); got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.ua, got, tt.want)
		}
	}
}

func TestNetworkOf(t *testing.T) {
	tests := map[string]string{
		"192.0.2.77":        "192.0.2.0/24",
		"::ffff:192.0.2.77": "192.0.2.0/24",
		"2001:db8:1:2::5":   "2001:db8:1::/48",
	}
	for in, want := range tests {
		if got := NetworkOf(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("NetworkOf(%s) = %s, want %s", in, got, want)
		}
	}
	if NetworkOf(netip.Addr{}).IsValid() {
		t.Error("invalid address must give no network")
	}
}

func TestWriteText(t *testing.T) {
	e := New(Config{DenyASNs: []uint32{2119}})
	d := e.Evaluate(context.Background(), base(), nil, nil, stepUpPolicy())
	d.ID = "evt_9"
	var b strings.Builder
	if err := d.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"evt_9", "decision deny", "deny_list", "no_history", "≥100"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}
