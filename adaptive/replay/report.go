package replay

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/stepwise-id/stepwise/adaptive/rba"
)

// ChallengeShare is the share of each attacker kind's successful logins
// that must be challenged when the report picks that kind's threshold.
const ChallengeShare = 0.995

// bins is the score resolution: replay writes scores with one decimal.
const bins = 1001

type hist struct {
	n int
	c [bins]int32
}

func (h *hist) add(score float64) {
	i := int(math.Round(score * 10))
	i = min(max(i, 0), bins-1)
	h.c[i]++
	h.n++
}

// atLeast is the share of entries scoring at or above bin t.
func (h *hist) atLeast(t int) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	s := 0
	for i := t; i < bins; i++ {
		s += int(h.c[i])
	}
	return float64(s) / float64(h.n)
}

// threshold is the highest bin such that at least share of entries score at
// or above it.
func (h *hist) threshold(share float64) int {
	need := int(math.Ceil(share * float64(h.n)))
	s := 0
	for i := bins - 1; i >= 0; i-- {
		s += int(h.c[i])
		if s >= need {
			return i
		}
	}
	return 0
}

// auc is the probability that a random attack outscores a random legitimate
// login (ties count half).
func auc(att, legit *hist) float64 {
	if att.n == 0 || legit.n == 0 {
		return math.NaN()
	}
	var below, sum float64
	for i := range bins {
		a, l := float64(att.c[i]), float64(legit.c[i])
		sum += a * (below + l/2)
		below += l
	}
	return sum / (float64(att.n) * float64(legit.n))
}

// Kind is the result for one attacker kind.
type Kind struct {
	Name      string  `json:"kind"`
	Attacks   int     `json:"attacks"`
	Threshold float64 `json:"threshold"`
	Friction  float64 `json:"friction"` // share of legitimate logins stepped up at Threshold
	Caught    float64 `json:"caught"`
	AUC       float64 `json:"auc"`
	// The baseline rule "step up on any IP never seen for this user".
	BaselineFriction float64 `json:"baseline_friction"`
	BaselineCaught   float64 `json:"baseline_caught"`
	// Under the replay's own policy (the decision column).
	PolicyChallenged float64 `json:"policy_challenged"`
}

// Group is the friction of one slice of legitimate logins at each kind's
// threshold.
type Group struct {
	Name     string    `json:"name"`
	Logins   int       `json:"logins"`
	Friction []float64 `json:"friction"` // per Kind, same order
	Baseline float64   `json:"baseline"`
	Policy   float64   `json:"policy"`
}

// Report summarises a scored log.
type Report struct {
	Rows        int     `json:"rows"`
	Legit       int     `json:"legit_logins"` // successful, non-attack, excluding each user's first
	FirstLogins int     `json:"first_logins"`
	NewIP       float64 `json:"legit_new_ip"`
	NewASN      float64 `json:"legit_new_asn"`
	NewCountry  float64 `json:"legit_new_country"`
	PolicyLegit float64 `json:"policy_legit_challenged"`
	Kinds       []Kind  `json:"kinds"`
	ByHistory   []Group `json:"by_history"`
	ByScenario  []Group `json:"by_scenario"`
}

type group struct {
	h        hist
	baseline int
	policy   int
}

func bucket(earlier int) string {
	switch {
	case earlier <= 1:
		return "1"
	case earlier <= 4:
		return "2-4"
	case earlier <= 9:
		return "5-9"
	case earlier <= 19:
		return "10-19"
	case earlier <= 49:
		return "20-49"
	case earlier <= 99:
		return "50-99"
	}
	return "100+"
}

func bucketOrder() []string { return []string{"1", "2-4", "5-9", "10-19", "20-49", "50-99", "100+"} }

func key(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// ReadReport reads a scored CSV (the output of Run) and computes the report.
// Legitimate logins are successful rows not labelled Is Attack IP; attacks are
// successful rows labelled Is Attack IP, split by kind with the Scenario
// column when present. The labels are used here, to grade, and never in
// scoring.
func ReadReport(in io.Reader) (Report, error) {
	var r Report
	rd, err := rba.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	legit := &group{}
	byHist := map[string]*group{}
	byScen := map[string]*group{}
	att := map[string]*group{}
	seen := map[uint64]struct{}{}
	logins := map[string]int32{}
	var newASN, newCountry int
	for {
		row, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("report: %w", err)
		}
		r.Rows++
		if !row.Success {
			continue
		}
		sc := rd.Get(ColScore)
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			return r, fmt.Errorf("report: row %d: risk_score %q: %w", r.Rows, sc, err)
		}
		challenged := rd.Get(ColDecision) != "allow"
		ipk := key("ip", row.UserID, row.IP.String())
		_, ipSeen := seen[ipk]
		asnk := key("asn", row.UserID, strconv.FormatUint(uint64(row.ASN), 10))
		_, asnSeen := seen[asnk]
		ck := key("cc", row.UserID, row.Country)
		_, ccSeen := seen[ck]
		earlier := int(logins[row.UserID])
		// History grows with every successful login, as in the replay.
		seen[ipk], seen[asnk], seen[ck] = struct{}{}, struct{}{}, struct{}{}
		logins[row.UserID]++

		if row.AttackIP {
			kind := row.Scenario
			if kind == "" {
				kind = "attack"
			}
			kind = strings.TrimPrefix(kind, "attack_")
			g := att[kind]
			if g == nil {
				g = &group{}
				att[kind] = g
			}
			g.h.add(score)
			if !ipSeen {
				g.baseline++
			}
			if challenged {
				g.policy++
			}
			continue
		}
		if earlier == 0 {
			r.FirstLogins++
			continue
		}
		gs := []*group{legit}
		b := bucket(earlier)
		if byHist[b] == nil {
			byHist[b] = &group{}
		}
		gs = append(gs, byHist[b])
		if row.Scenario != "" {
			if byScen[row.Scenario] == nil {
				byScen[row.Scenario] = &group{}
			}
			gs = append(gs, byScen[row.Scenario])
		}
		for _, g := range gs {
			g.h.add(score)
			if !ipSeen {
				g.baseline++
			}
			if challenged {
				g.policy++
			}
		}
		if !asnSeen && row.ASN != 0 {
			newASN++
		}
		if !ccSeen && row.Country != "" {
			newCountry++
		}
	}
	r.Legit = legit.h.n
	if r.Legit > 0 {
		n := float64(r.Legit)
		r.NewIP = float64(legit.baseline) / n
		r.NewASN = float64(newASN) / n
		r.NewCountry = float64(newCountry) / n
		r.PolicyLegit = float64(legit.policy) / n
	}
	names := make([]string, 0, len(att))
	for k := range att {
		names = append(names, k)
	}
	order := map[string]int{"naive": 0, "vpn": 1, "targeted": 2}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok && jok {
			return oi < oj
		}
		if iok != jok {
			return iok
		}
		return names[i] < names[j]
	})
	thresholds := make([]int, len(names))
	for i, k := range names {
		g := att[k]
		t := g.h.threshold(ChallengeShare)
		thresholds[i] = t
		r.Kinds = append(r.Kinds, Kind{
			Name: k, Attacks: g.h.n, Threshold: float64(t) / 10,
			Friction: legit.h.atLeast(t), Caught: g.h.atLeast(t), AUC: auc(&g.h, &legit.h),
			BaselineFriction: r.NewIP, BaselineCaught: float64(g.baseline) / float64(g.h.n),
			PolicyChallenged: float64(g.policy) / float64(g.h.n),
		})
	}
	mk := func(name string, g *group) Group {
		out := Group{Name: name, Logins: g.h.n, Baseline: float64(g.baseline) / float64(g.h.n), Policy: float64(g.policy) / float64(g.h.n)}
		for _, t := range thresholds {
			out.Friction = append(out.Friction, g.h.atLeast(t))
		}
		return out
	}
	for _, b := range bucketOrder() {
		if g := byHist[b]; g != nil {
			r.ByHistory = append(r.ByHistory, mk(b, g))
		}
	}
	scen := make([]string, 0, len(byScen))
	for k := range byScen {
		scen = append(scen, k)
	}
	sort.Strings(scen)
	for _, k := range scen {
		r.ByScenario = append(r.ByScenario, mk(k, byScen[k]))
	}
	return r, nil
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return strconv.FormatFloat(100*f, 'f', 2, 64) + "%"
}

// Format writes the report as plain-text tables.
func (r Report) Format(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "rows %d; legitimate logins scored %d (each user's first login excluded: %d)\n", r.Rows, r.Legit, r.FirstLogins)
	fmt.Fprintf(bw, "legitimate logins from a new IP %s, new ASN %s, new country %s; challenged under the replay policy %s\n\n",
		pct(r.NewIP), pct(r.NewASN), pct(r.NewCountry), pct(r.PolicyLegit))
	fmt.Fprintf(bw, "Friction when %.1f%% of each kind's successful attacker logins are challenged\n", 100*ChallengeShare)
	fmt.Fprintf(bw, "%-10s %8s %9s %9s %8s %7s | %-22s | %s\n", "attacker", "attacks", "threshold", "friction", "caught", "AUC", "baseline new-IP (fric/caught)", "policy caught")
	for _, k := range r.Kinds {
		fmt.Fprintf(bw, "%-10s %8d %9.1f %9s %8s %7.4f | %10s / %-10s | %s\n", k.Name, k.Attacks, k.Threshold, pct(k.Friction), pct(k.Caught), k.AUC,
			pct(k.BaselineFriction), pct(k.BaselineCaught), pct(k.PolicyChallenged))
	}
	table := func(title string, gs []Group) {
		fmt.Fprintf(bw, "\nFriction by %s (at each kind's threshold)\n%-16s %9s", title, title, "logins")
		for _, k := range r.Kinds {
			fmt.Fprintf(bw, " %9s", k.Name)
		}
		fmt.Fprintf(bw, " %9s %9s\n", "new-IP", "policy")
		for _, g := range gs {
			fmt.Fprintf(bw, "%-16s %9d", g.Name, g.Logins)
			for _, f := range g.Friction {
				fmt.Fprintf(bw, " %9s", pct(f))
			}
			fmt.Fprintf(bw, " %9s %9s\n", pct(g.Baseline), pct(g.Policy))
		}
	}
	table("earlier logins", r.ByHistory)
	if len(r.ByScenario) > 0 {
		table("scenario", r.ByScenario)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	return nil
}
