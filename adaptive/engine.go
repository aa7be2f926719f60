package adaptive

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Config tunes the engine. Every field is optional; zero values take the
// defaults documented on each field.
type Config struct {
	// Mode is enforce (default) or monitor.
	Mode Mode
	// Window is how far back history counts; default 180 days.
	Window time.Duration
	// ImpossibleTravelKMH is the speed above which two logins cannot both be
	// the user's; default 900 (an airliner). Needs locations (City mmdb).
	ImpossibleTravelKMH float64
	// Ladder is the assurance ladder, weakest first; default DefaultLadder.
	Ladder []string

	DenyNetworks  []netip.Prefix
	DenyASNs      []uint32
	AllowNetworks []netip.Prefix // e.g. the office: scored, but capped low
	AllowASNs     []uint32

	// AccountFailureLimit and IPFailureLimit are the failure velocities
	// (failures in the caller's recent window) that force a high score;
	// defaults 10 and 30.
	AccountFailureLimit int
	IPFailureLimit      int

	// Weights overrides the model's weights; zero means DefaultWeights.
	Weights *Weights
}

// Weights are the model's tunables, in score points. The defaults were fitted
// on simulated populations (see adaptive/sim) and are meant to be left alone
// unless a replay of real logs says otherwise.
type Weights struct {
	// PerBit converts one bit of surprise (log2 of 1/probability under the
	// user's own model) into points; Net and Agent scale it per level,
	// most general level first.
	PerBit float64
	Net    [netLevels]float64
	Agent  [agentLevels]float64
	// Prior is how many logins' worth of weight the population's novelty
	// rates carry in a user's estimate.
	Prior float64
	// Familiar is the bonus (negative points) for a fully familiar network
	// or agent, scaled by how established it is.
	Familiar float64
	// Rarity is points per bit of how rare a new ASN/country is across the
	// population (rented servers and VPN exits are used by few users).
	Rarity float64
	// HostingNetwork is added for a hosting/anonymous network the user never
	// used (needs a data source that classifies networks).
	HostingNetwork float64
	// OlderVersion is added when the browser is older than one the user
	// already ran on the same device type and OS: browsers update forward.
	OlderVersion float64
	// VersionJump is points per major version above what elapsed time
	// explains.
	VersionJump float64
	// RTT is points per standard deviation of log RTT above the user's usual
	// for that network.
	RTT float64
	// Region is added for a new network in a region the user never
	// logged in from (data centres cluster in a few places).
	Region float64
	// RarityFloor is the rarity, in bits, that costs nothing (4 = used by
	// one user in 16).
	RarityFloor float64
	// Hour is points per bit of hour-of-day surprise against the user's own
	// rhythm.
	Hour float64
	// KnownDevice (negative) and UnknownDevice are the device-cookie terms;
	// UnknownDevice applies in full to users whose logins nearly always
	// carry a known cookie.
	KnownDevice   float64
	UnknownDevice float64
	// NoHistory is the score of a user with no successful login yet.
	NoHistory float64
	// Failure is points per recent failed login on the account.
	Failure float64
}

// DefaultWeights returns the default model weights.
func DefaultWeights() Weights {
	// Fitted by coordinate search on simulated populations (seeds 1 and 3,
	// 5,000 users each) and checked on others never used for fitting
	// (seeds 2 and 4, 20,000 users, 1.1 M rows); see adaptive/sim.
	// NoHistory is held at the example step-up threshold (40) so that,
	// under that policy, a user with no history is always challenged.
	return Weights{
		PerBit:         2.8,
		Net:            [netLevels]float64{2.97, 1.12, 1.2, 0.245},
		Agent:          [agentLevels]float64{0.84, 0.84, 1.0, 0.6, 0.35},
		Prior:          7.3,
		Familiar:       2.8,
		Rarity:         2.7,
		RarityFloor:    2.8,
		Region:         5.4,
		HostingNetwork: 20,
		OlderVersion:   12.6,
		VersionJump:    3,
		RTT:            11,
		Hour:           4.05,
		KnownDevice:    -25,
		UnknownDevice:  25,
		NoHistory:      40,
		Failure:        4.05,
	}
}

// Engine scores Signals against a user's Profile. It holds only immutable
// configuration and is safe for concurrent use.
type Engine struct {
	cfg Config
	w   Weights
}

// New returns an engine with cfg's defaults filled in.
func New(cfg Config) *Engine {
	if cfg.Mode == "" {
		cfg.Mode = ModeEnforce
	}
	if cfg.Window <= 0 {
		cfg.Window = 180 * 24 * time.Hour
	}
	if cfg.ImpossibleTravelKMH <= 0 {
		cfg.ImpossibleTravelKMH = 900
	}
	if len(cfg.Ladder) == 0 {
		cfg.Ladder = DefaultLadder()
	}
	if cfg.AccountFailureLimit <= 0 {
		cfg.AccountFailureLimit = 10
	}
	if cfg.IPFailureLimit <= 0 {
		cfg.IPFailureLimit = 30
	}
	w := DefaultWeights()
	if cfg.Weights != nil {
		w = *cfg.Weights
	}
	return &Engine{cfg: cfg, w: w}
}

// Window is the configured history window.
func (e *Engine) Window() time.Duration { return e.cfg.Window }

// History is what the caller provides so the engine can see a user's past:
// the profile built from the user's successful logins within the window,
// and the population aggregate. Implementations keep these cheap (in memory,
// rebuilt from the event log at start-up).
type History interface {
	Profile(ctx context.Context, userID string) (*Profile, error)
	Population(ctx context.Context) (*Population, error)
}

// Factor is one contribution to a score.
type Factor struct {
	Name   string  `json:"name"`
	Points float64 `json:"points"`
	Detail string  `json:"detail"`
	// Rule marks hard rules, which set a floor on the score instead of
	// adding to it.
	Rule bool `json:"rule,omitempty"`
}

// Decision is the outcome of one evaluation, shaped to be stored as an audit
// event and printed by `stepwise risk explain`.
type Decision struct {
	ID       string    `json:"id,omitempty"` // set by the caller when it stores the event
	Time     time.Time `json:"time"`
	UserID   string    `json:"user_id,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Scopes   []string  `json:"scopes,omitempty"`

	Score  float64 `json:"score"`
	Action Action  `json:"decision"`
	// ACR is the level a step-up must reach; MaxAge (seconds) bounds the age
	// of the authentication; MinACR is always required.
	ACR      string `json:"acr,omitempty"`
	MaxAge   int    `json:"max_age,omitempty"`
	MinACR   string `json:"min_acr,omitempty"`
	Mode     Mode   `json:"mode"`
	Enforced bool   `json:"enforced"`
	Policy   string `json:"policy,omitempty"`

	Factors     []Factor `json:"factors"`
	Explanation string   `json:"explanation"`
	HistoryLen  int      `json:"history_logins"`
}

// TopFactor is the name of the factor that added the most, or "" if none
// added anything.
func (d *Decision) TopFactor() string {
	best, name := 0.0, ""
	for _, f := range d.Factors {
		if f.Points > best {
			best, name = f.Points, f.Name
		}
	}
	return name
}

// EvaluateHistory fetches the user's profile and the population from h and
// evaluates s.
func (e *Engine) EvaluateHistory(ctx context.Context, s Signals, h History, policies ...Policy) (Decision, error) {
	p, err := h.Profile(ctx, s.UserID)
	if err != nil {
		return Decision{}, fmt.Errorf("load risk profile for %q: %w", s.UserID, err)
	}
	pop, err := h.Population(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("load risk population: %w", err)
	}
	return e.Evaluate(ctx, s, p, pop, policies...), nil
}

// Evaluate scores s against the user's profile p (nil = no history) and the
// population pop (nil = none yet) and applies the policies. It never fails:
// missing data only removes factors. ctx is accepted so that tracing and
// deadlines flow through; the computation itself is microseconds.
func (e *Engine) Evaluate(ctx context.Context, s Signals, p *Profile, pop *Population, policies ...Policy) Decision {
	_ = ctx
	if p == nil {
		p = NewProfile()
	}
	l := NewLogin(s)
	fs, floor := e.score(&s, &l, p, pop)
	raw := 0.0
	for _, f := range fs {
		if !f.Rule {
			raw += f.Points
		}
	}
	score := math.Max(raw, floor)
	score = math.Round(math.Min(math.Max(score, 0), 100)*10) / 10
	sortedFactors(fs)
	d := Decision{
		Time:       s.Time,
		UserID:     s.UserID,
		ClientID:   s.ClientID,
		Scopes:     s.Scopes,
		Score:      score,
		Mode:       e.cfg.Mode,
		Enforced:   e.cfg.Mode != ModeMonitor,
		Factors:    fs,
		HistoryLen: p.Len(),
	}
	apply(e.cfg.Ladder, &d, policies)
	d.Explanation = explain(&d)
	return d
}

// Observe records a successful login into the profile and population,
// after pruning history that fell out of the window. This is the only way
// history should grow: failed logins are never observed.
func (e *Engine) Observe(s Signals, p *Profile, pop *Population) {
	p.Prune(s.Time.Add(-e.cfg.Window))
	p.Add(NewLogin(s), pop)
}

// rate is a user's probability of an event that happened k times in n
// opportunities, shrunk towards the population rate prior with the weight of
// strength logins: per-user normalisation that stays sane for new users.
func rate(k, n int32, prior, strength float64) float64 {
	return (float64(k) + prior*strength) / (float64(n) + strength)
}

func bits(p float64) float64 {
	if p <= 0 {
		return 20
	}
	return -math.Log2(p)
}

// netName and agentName name the chain levels in factors and explanations.
func netName(i int) string {
	return [netLevels]string{"country", "asn", "network", "ip"}[i]
}

// netLabel is netName for people.
func netLabel(i int) string {
	return [netLevels]string{"country", "ASN", "/24 network", "IP address"}[i]
}

// pctText renders a small probability readably (0.04%, 3.1%, 45%).
func pctText(p float64) string {
	switch v := 100 * p; {
	case v < 0.1:
		return fmt.Sprintf("%.2f%%", v)
	case v < 10:
		return fmt.Sprintf("%.1f%%", v)
	default:
		return fmt.Sprintf("%.0f%%", v)
	}
}

func agentName(i int) string {
	return [agentLevels]string{"device_type", "os", "browser", "browser_version", "user_agent"}[i]
}

// score computes the factors and the floor set by hard rules.
func (e *Engine) score(s *Signals, l *Login, p *Profile, pop *Population) ([]Factor, float64) {
	w := &e.w
	fs := make([]Factor, 0, 10)
	floor := 0.0
	addRule := func(name string, pts float64, detail string) {
		fs = append(fs, Factor{Name: name, Points: pts, Detail: detail, Rule: true})
		floor = math.Max(floor, pts)
	}

	// Hard rules first: they do not depend on history.
	if e.denied(s) {
		addRule("deny_list", 100, "network or ASN is on the deny list")
	}
	if s.AccountFailures >= e.cfg.AccountFailureLimit {
		addRule("account_failure_velocity", 85, fmt.Sprintf("%d recent failed logins on the account", s.AccountFailures))
	}
	if s.IPFailures >= e.cfg.IPFailureLimit {
		addRule("ip_failure_velocity", 85, fmt.Sprintf("%d recent failed logins from this IP", s.IPFailures))
	}
	if s.AccountFailures > 0 {
		fs = append(fs, Factor{Name: "account_failures", Points: w.Failure * float64(min(s.AccountFailures, 10)),
			Detail: fmt.Sprintf("%d recent failed logins on the account", s.AccountFailures)})
	}
	if s.IPFailures > 2 {
		fs = append(fs, Factor{Name: "ip_failures", Points: w.Failure * math.Log2(float64(s.IPFailures)),
			Detail: fmt.Sprintf("%d recent failed logins from this IP", s.IPFailures)})
	}

	n := p.Len()
	pv := pop.view(l)
	if n == 0 {
		// No history means unfamiliar, never trusted (DESIGN.md): a fixed
		// base, plus what the population alone can say about the network
		// (rare country or ASN, RTT unusual for the network).
		fs = append(fs, Factor{Name: "no_history", Points: w.NoHistory, Detail: "no earlier successful login for this user in the window"})
		nc := netChain()
		for lv := range 2 {
			e.rarity(&fs, nc[lv], lv, &pv)
		}
		e.rtt(&fs, l, p, &pv)
		e.networkType(s, p, l, &fs)
		return e.allowCap(s, fs), floor
	}
	opps := p.opps

	// Network novelty: the most general level of country → ASN → /24 → IP
	// that this user never used, scored by how often this user (shrunk
	// towards everyone) introduces something new at that level.
	nc, ac := netChain(), agentChain()
	if lv := p.firstUnseen(l, nc[:]); lv >= 0 {
		if lv < netLevels {
			r := rate(p.netNovel[lv], opps, pv.netRate[lv], w.Prior)
			pts := w.PerBit * w.Net[lv] * bits(r)
			detail := fmt.Sprintf("first login from this %s (this user's rate of new ones: %s)", netLabel(lv), pctText(r))
			fs = append(fs, Factor{Name: "new_" + netName(lv), Points: pts, Detail: detail})
			// Rented servers and VPN exits are used by few people; a new
			// network most users also use (a big carrier) is less telling.
			if lv <= 1 {
				e.rarity(&fs, nc[lv], lv, &pv)
			}
			if lv == 1 && l.Keys[kRegion] != 0 && p.count(l.Keys[kRegion]) == 0 {
				fs = append(fs, Factor{Name: "new_region", Points: w.Region,
					Detail: fmt.Sprintf("new network in a region (%s) the user never logged in from", s.Region)})
			}
		} else {
			c := p.count(l.Keys[kIP])
			if c == 0 {
				c = p.count(l.Keys[kNet])
			}
			fam := -w.Familiar * math.Min(math.Log2(1+float64(c)), 3)
			fs = append(fs, Factor{Name: "known_network", Points: fam, Detail: fmt.Sprintf("address (or its /24) used in %d earlier logins", c)})
		}
	}
	e.networkType(s, p, l, &fs)

	// Agent novelty, same construction along device → OS → browser →
	// version → exact UA.
	if lv := p.firstUnseen(l, ac[:]); lv >= 0 {
		if lv < agentLevels {
			r := rate(p.agNovel[lv], opps, pv.agRate[lv], w.Prior)
			pts := w.PerBit * w.Agent[lv] * bits(r)
			fs = append(fs, Factor{Name: "new_" + agentName(lv), Points: pts,
				Detail: fmt.Sprintf("first login with this %s (this user's rate of new ones: %s)", strings.ReplaceAll(agentName(lv), "_", " "), pctText(r))})
		} else {
			fam := -w.Familiar * math.Min(math.Log2(1+float64(p.count(l.Keys[kUA]))), 3) / 2
			fs = append(fs, Factor{Name: "known_agent", Points: fam, Detail: "user agent seen before"})
		}
	}

	// Version drift: browsers update forward; an older version than one the
	// user already ran on the same device/OS/family is what an attacker
	// imitating the victim's browser looks like. A user agent the user ran
	// before counts too when it has not been used since a newer version
	// appeared a week or more earlier: a lagging second device keeps
	// showing up, an attacker replaying an old agent does not.
	if l.Keys[kFamily] != 0 && l.Major >= 0 {
		if v := p.versions(l.Keys[kFamily], l.Keys[kUA]); v.ok && v.maxMajor >= 0 {
			stale := v.uaLastUnix == 0 || (v.uaLastUnix < v.maxFirstUnix && l.Unix-v.maxFirstUnix > 7*86400)
			switch {
			case l.Major < v.maxMajor && stale:
				d := float64(v.maxMajor - l.Major)
				fs = append(fs, Factor{Name: "older_browser", Points: w.OlderVersion + 2*math.Min(d, 5),
					Detail: fmt.Sprintf("%s %d is older than version %d the user already ran", s.Browser, l.Major, v.maxMajor)})
			case l.Major > v.maxMajor:
				days := float64(l.Unix-v.lastUnix) / 86400
				// Release trains ship a major about every four weeks; a
				// jump beyond what elapsed time explains is someone else's
				// browser.
				excess := float64(l.Major-v.maxMajor) - (days/28 + 1.2)
				if excess > 0 {
					fs = append(fs, Factor{Name: "browser_jump", Points: w.VersionJump * math.Min(excess+1, 6),
						Detail: fmt.Sprintf("%s jumped %d versions in %.0f days", s.Browser, l.Major-v.maxMajor, days)})
				}
			}
		}
	}

	e.rtt(&fs, l, p, &pv)

	// Hour of day against the user's own rhythm (circularly smoothed),
	// weighted by how much history backs the rhythm.
	{
		h := l.Hour()
		sm := (0.5*float64(p.hours[(h+23)%24]) + float64(p.hours[h]) + 0.5*float64(p.hours[(h+1)%24])) / 2
		const alpha = 4.0
		ph := (sm + alpha/24) / (float64(n) + alpha)
		b := math.Min(math.Max(math.Log2((1.0/24)/ph), -2), 4)
		conf := float64(n) / (float64(n) + 8)
		if pts := w.Hour * b * conf; math.Abs(pts) >= 0.5 {
			fs = append(fs, Factor{Name: "hour", Points: pts, Detail: fmt.Sprintf("%02d:00 UTC is %s for this user", h, hourWord(b))})
		}
	}

	// Impossible travel against the previous successful login.
	if last, ok := p.last(); ok && l.HasLoc && last.HasLoc {
		km := haversineKM(float64(last.Lat), float64(last.Lon), float64(l.Lat), float64(l.Lon))
		hrs := float64(l.Unix-last.Unix) / 3600
		if km > 100 {
			speed := km / math.Max(hrs, 1.0/60)
			if speed > e.cfg.ImpossibleTravelKMH {
				addRule("impossible_travel", 90, fmt.Sprintf("%.0f km in %.1f h (%.0f km/h)", km, hrs, speed))
			}
		}
	}

	return e.allowCap(s, fs), floor
}

// rarity adds how rare the value at kind k is across the population's users.
func (e *Engine) rarity(fs *[]Factor, k kind, lv int, pv *popView) {
	if pv.users <= 50 || pv.valUsers[k] < 0 {
		return
	}
	share := (pv.valUsers[k] + 1) / (pv.users + 1)
	rb := math.Min(math.Max(bits(share)-e.w.RarityFloor, 0), 8)
	if rb > 0 {
		*fs = append(*fs, Factor{Name: "rare_" + netName(lv), Points: e.w.Rarity * rb,
			Detail: fmt.Sprintf("%s used by %s of users", netLabel(lv), pctText(share))})
	}
}

// rtt compares the RTT with the user's usual on the same network (or overall):
// a remote attacker relaying through the victim's ISP is further away.
func (e *Engine) rtt(fs *[]Factor, l *Login, p *Profile, pv *popView) {
	w := &e.w
	// The reference is the user's own RTT on this network when there is
	// enough of it, else everyone's RTT on this network (which also covers
	// users with little history), else the user's RTT overall.
	if l.RTTms <= 0 {
		return
	}
	mean, sd, m := p.rttStats(kASN, l.Keys[kASN])
	where := "this user on this network"
	if m < 3 && pv.asnRTT.n >= 20 {
		a := pv.asnRTT
		mean = a.s / a.n
		sd = math.Sqrt(math.Max(a.s2/a.n-mean*mean, 0))
		m = int(a.n)
		where = "all users on this network"
	}
	if m < 3 {
		mean, sd, m = p.rttStats(0, 0)
		where = "this user overall"
	}
	if m >= 3 {
		sd = math.Max(sd, 0.25)
		z := (math.Log(float64(l.RTTms)) - mean) / sd
		if z > 1.5 {
			*fs = append(*fs, Factor{Name: "rtt", Points: w.RTT * math.Min(z-1.5, 5),
				Detail: fmt.Sprintf("RTT %.0f ms vs usual %.0f ms for %s", l.RTTms, math.Exp(mean), where)})
		}
	}
}

// networkType adds the hosting-network and device-cookie factors, which are
// meaningful with or without history.
func (e *Engine) networkType(s *Signals, p *Profile, l *Login, fs *[]Factor) {
	w := &e.w
	if (s.NetworkType == NetworkHosting || s.NetworkType == NetworkAnonymous) && p.count(l.Keys[kASN]) == 0 {
		*fs = append(*fs, Factor{Name: "hosting_network", Points: w.HostingNetwork,
			Detail: fmt.Sprintf("%s network (%s) never used by this user", s.NetworkType, s.ASOrg)})
	}
	if s.DeviceID == "" {
		return
	}
	if p.count(l.Keys[kCookie]) > 0 {
		*fs = append(*fs, Factor{Name: "known_device", Points: w.KnownDevice, Detail: "device cookie seen in earlier logins"})
		return
	}
	// How stable the user's devices are: the share of cookie-carrying
	// logins that came back with an already-known cookie.
	stable := 0.0
	if p.cookied >= 3 {
		stable = float64(p.knownCk) / float64(p.cookied)
	}
	pts := w.UnknownDevice * (0.25 + 0.75*stable)
	detail := "device cookie never seen for this user"
	if stable > 0.8 {
		detail = fmt.Sprintf("unknown device for a user who keeps their devices (%.0f%% known)", 100*stable)
	}
	*fs = append(*fs, Factor{Name: "unknown_device", Points: pts, Detail: detail})
}

// allowCap applies the allow lists: a trusted network keeps its factors for
// the record but the novelty terms are not held against it.
func (e *Engine) allowCap(s *Signals, fs []Factor) []Factor {
	if !e.allowed(s) {
		return fs
	}
	for i := range fs {
		if !fs[i].Rule && fs[i].Points > 0 && strings.HasPrefix(fs[i].Name, "new_") {
			fs[i].Detail += " (allow-listed network: not counted)"
			fs[i].Points = 0
		}
	}
	return fs
}

func (e *Engine) denied(s *Signals) bool {
	if s.ASN != 0 && slices.Contains(e.cfg.DenyASNs, s.ASN) {
		return true
	}
	return containsAddr(e.cfg.DenyNetworks, s.IP)
}

func (e *Engine) allowed(s *Signals) bool {
	if s.ASN != 0 && slices.Contains(e.cfg.AllowASNs, s.ASN) {
		return true
	}
	return containsAddr(e.cfg.AllowNetworks, s.IP)
}

func containsAddr(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func hourWord(b float64) string {
	switch {
	case b >= 2:
		return "very unusual"
	case b > 0:
		return "unusual"
	default:
		return "usual"
	}
}

func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// explain renders the one-line human explanation.
func explain(d *Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "risk %.0f → %s", d.Score, d.Action)
	if d.Action == ActionStepUp {
		fmt.Fprintf(&b, " to %s", d.ACR)
		if d.MaxAge > 0 {
			fmt.Fprintf(&b, " within %ds", d.MaxAge)
		}
	}
	if !d.Enforced {
		b.WriteString(" (monitor mode: not enforced)")
	}
	var parts []string
	for _, f := range d.Factors {
		if f.Points <= 0 && !f.Rule {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %+.0f (%s)", f.Name, f.Points, f.Detail))
		if len(parts) == 3 {
			break
		}
	}
	if len(parts) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(parts, "; "))
	} else {
		b.WriteString(": nothing unusual")
	}
	return b.String()
}
