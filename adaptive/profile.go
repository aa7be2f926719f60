package adaptive

import (
	"encoding/binary"
	"math"
	"sort"
	"sync"
	"time"
)

// kind salts feature hashes so that, say, a region and an ASN with equal
// hashes never collide in the same count map.
type kind uint8

const (
	kCountry kind = iota
	kASN
	kNet
	kIP
	kDevice
	kOS
	kFamily
	kMajor
	kUA
	kCookie
	kRegion
	numKinds
)

const (
	netLevels   = 4
	agentLevels = 5
)

// netChain is the network hierarchy, most general first: Freeman et al.'s
// IP → ASN → country read from the top.
func netChain() [netLevels]kind { return [netLevels]kind{kCountry, kASN, kNet, kIP} }

// agentChain is the agent hierarchy, most general first: device type → OS →
// browser family → family and major version → the exact user-agent string.
func agentChain() [agentLevels]kind { return [agentLevels]kind{kDevice, kOS, kFamily, kMajor, kUA} }

// Login is the compact form of one successful login kept in a Profile: hashes
// of every feature value (0 = unknown) plus the few numbers the model needs.
// It is what a caller persists or rebuilds from its event log.
type Login struct {
	Unix   int64            `json:"t"`
	Keys   [numKinds]uint64 `json:"k"`
	Major  int32            `json:"maj"` // browser major version, -1 unknown
	RTTms  float32          `json:"rtt,omitempty"`
	LnRTT  float32          `json:"lnrtt,omitempty"` // log RTT, precomputed: the RTT factor averages it over the history
	Lat    float32          `json:"lat,omitempty"`
	Lon    float32          `json:"lon,omitempty"`
	HasLoc bool             `json:"loc,omitempty"`
	// Novel is the first unseen level in the network and agent chains when
	// the login was added (-1: no level known); Prior says the user had
	// history then. Both are set by Profile.Add and undone by Prune.
	Novel [2]int8 `json:"nv"`
	Prior bool    `json:"p,omitempty"`
}

// fnv1a hashes the salted value; stable across processes so persisted
// profiles stay valid.
func fnv1a(k kind, parts ...string) uint64 {
	h := uint64(14695981039346656037)
	h ^= uint64(k) + 1
	h *= 1099511628211
	for i, p := range parts {
		if i > 0 {
			h ^= 0xff
			h *= 1099511628211
		}
		for j := 0; j < len(p); j++ {
			h ^= uint64(p[j])
			h *= 1099511628211
		}
	}
	if h == 0 {
		h = 1
	}
	return h
}

func hashBytes(k kind, b []byte) uint64 {
	return fnv1a(k, string(b))
}

// NewLogin reduces Signals to the compact Login stored in history.
func NewLogin(s Signals) Login {
	var l Login
	l.Unix = s.Time.Unix()
	country := normalize(s.Country)
	if country != "" {
		l.Keys[kCountry] = fnv1a(kCountry, country)
		if r := normalize(s.Region); r != "" {
			l.Keys[kRegion] = fnv1a(kRegion, country, r)
		}
	}
	if s.ASN != 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], s.ASN)
		l.Keys[kASN] = hashBytes(kASN, b[:])
	}
	if s.IP.IsValid() {
		ip := s.IP.Unmap()
		b := ip.As16()
		l.Keys[kIP] = hashBytes(kIP, b[:])
		n := s.Network
		if !n.IsValid() {
			n = NetworkOf(ip)
		}
		if n.IsValid() {
			nb := n.Addr().As16()
			l.Keys[kNet] = hashBytes(kNet, append(nb[:], byte(n.Bits())))
		}
	}
	dev, os, fam := normalize(s.Device), normalize(s.OS), normalize(s.Browser)
	if dev != "" {
		l.Keys[kDevice] = fnv1a(kDevice, dev)
	}
	if os != "" {
		l.Keys[kOS] = fnv1a(kOS, dev, os)
	}
	l.Major = -1
	if fam != "" {
		l.Keys[kFamily] = fnv1a(kFamily, dev, os, fam)
		if m := Major(s.BrowserVersion); m >= 0 {
			l.Major = int32(m)
			l.Keys[kMajor] = fnv1a(kMajor, dev, os, fam, itoa(m))
		}
	}
	if s.UserAgent != "" {
		l.Keys[kUA] = fnv1a(kUA, s.UserAgent)
	}
	if s.DeviceID != "" {
		l.Keys[kCookie] = fnv1a(kCookie, s.DeviceID)
	}
	if s.RTT > 0 {
		l.RTTms = float32(s.RTT.Seconds() * 1000)
		l.LnRTT = float32(math.Log(float64(l.RTTms)))
	}
	if s.HasLocation {
		l.Lat, l.Lon, l.HasLoc = float32(s.Lat), float32(s.Lon), true
	}
	l.Novel = [2]int8{-1, -1}
	return l
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Hour returns the UTC hour of the login. UTC is enough: the model compares
// a user only with their own rhythm.
func (l Login) Hour() int { return int((l.Unix%86400+86400)%86400) / 3600 }

// Profile aggregates one user's successful logins within the history window:
// the logins themselves (oldest first, for pruning and the per-login
// statistics) and counts per feature value (for O(1) familiarity checks).
// The zero value is not usable; call NewProfile. A Profile is not safe for
// concurrent use; the caller owns one per user.
type Profile struct {
	logins   []Login
	counts   map[uint64]uint32
	distinct [numKinds]int32
	netNovel [netLevels + 1]int32 // events per first-unseen level (last = all seen)
	agNovel  [agentLevels + 1]int32
	opps     int32 // logins added with earlier history (denominator of the rates)
	hours    [24]int32
	cookied  int32 // logins that carried a device cookie
	knownCk  int32 // of which the cookie had been seen before
}

// NewProfile returns an empty profile: a user with no history, which the
// engine scores as unfamiliar.
func NewProfile() *Profile {
	return &Profile{counts: make(map[uint64]uint32, 8)}
}

// Len is the number of logins in the window.
func (p *Profile) Len() int { return len(p.logins) }

// Logins returns the logins in the window, oldest first. The slice is the
// profile's own; do not modify it.
func (p *Profile) Logins() []Login { return p.logins }

func (p *Profile) count(key uint64) uint32 {
	if key == 0 {
		return 0
	}
	return p.counts[key]
}

// firstUnseen returns the index of the most general level in chain whose
// value this user has never used, len(chain) when every known level is
// familiar, and -1 when no level is known at all.
func (p *Profile) firstUnseen(l *Login, chain []kind) int {
	known := false
	for i, k := range chain {
		key := l.Keys[k]
		if key == 0 {
			continue
		}
		known = true
		if p.count(key) == 0 {
			return i
		}
	}
	if !known {
		return -1
	}
	return len(chain)
}

// Add appends a successful login (which must not be older than the last
// one added) and updates pop, when non-nil, with the population statistics.
// A caller that persists Logins rebuilds a profile by adding them again in
// order (pop nil when the population is rebuilt separately).
// Only successful logins belong here: failed attempts must never teach the
// model what "normal" looks like.
func (p *Profile) Add(l Login, pop *Population) {
	nv, av := -1, -1
	if len(p.logins) > 0 {
		nc, ac := netChain(), agentChain()
		nv = p.firstUnseen(&l, nc[:])
		av = p.firstUnseen(&l, ac[:])
		p.opps++
		if nv >= 0 {
			p.netNovel[nv]++
		}
		if av >= 0 {
			p.agNovel[av]++
		}
	}
	l.Novel = [2]int8{int8(nv), int8(av)}
	l.Prior = len(p.logins) > 0
	if pop != nil {
		pop.record(p, &l)
	}
	for k, key := range l.Keys {
		if key == 0 {
			continue
		}
		c := p.counts[key]
		if c == 0 {
			p.distinct[k]++
		}
		p.counts[key] = c + 1
	}
	p.hours[l.Hour()]++
	if l.Keys[kCookie] != 0 {
		p.cookied++
		if p.counts[l.Keys[kCookie]] > 1 {
			p.knownCk++
		}
	}
	p.logins = append(p.logins, l)
}

// Prune drops logins older than cutoff, keeping the profile inside the
// history window (180 days by default).
func (p *Profile) Prune(cutoff time.Time) {
	cu := cutoff.Unix()
	n := 0
	for n < len(p.logins) && p.logins[n].Unix < cu {
		n++
	}
	if n == 0 {
		return
	}
	for i := 0; i < n; i++ {
		l := &p.logins[i]
		if l.Prior {
			p.opps--
		}
		if l.Novel[0] >= 0 {
			p.netNovel[l.Novel[0]]--
		}
		if l.Novel[1] >= 0 {
			p.agNovel[l.Novel[1]]--
		}
		if l.Keys[kCookie] != 0 {
			p.cookied--
			if p.counts[l.Keys[kCookie]] > 1 {
				p.knownCk--
			}
		}
		p.hours[l.Hour()]--
		for k, key := range l.Keys {
			if key == 0 {
				continue
			}
			c := p.counts[key]
			if c <= 1 {
				delete(p.counts, key)
				p.distinct[k]--
			} else {
				p.counts[key] = c - 1
			}
		}
	}
	if p.opps < 0 {
		p.opps = 0
	}
	if p.knownCk < 0 {
		p.knownCk = 0
	}
	// Copy down rather than reslice so the backing array does not pin
	// expired logins forever.
	p.logins = append(p.logins[:0], p.logins[n:]...)
}

// last returns the most recent login, if any.
func (p *Profile) last() (Login, bool) {
	if len(p.logins) == 0 {
		return Login{}, false
	}
	return p.logins[len(p.logins)-1], true
}

// popCount is the population statistic per feature value.
type popCount struct {
	users  uint32 // users who had the value new in their window (approximate distinct users)
	logins uint32
}

// Population aggregates all users' successful logins: how many users have
// used each feature value, and how often, across the service, logins
// introduce something new at each level. It supplies the priors that keep
// per-user estimates sane for users with little history. It is safe for
// concurrent use; it can be rebuilt from the event log at start-up.
type Population struct {
	mu       sync.RWMutex
	values   map[uint64]popCount
	netNovel [netLevels + 1]uint64
	agNovel  [agentLevels + 1]uint64
	opps     uint64
	users    uint64
	logins   uint64
	rtt      map[uint64]rttAgg // per ASN: log-RTT moments
}

// rttAgg accumulates log RTT moments for one network.
type rttAgg struct {
	n     float64
	s, s2 float64
}

// NewPopulation returns an empty population.
func NewPopulation() *Population {
	return &Population{values: make(map[uint64]popCount, 1024), rtt: make(map[uint64]rttAgg, 256)}
}

func (pop *Population) record(p *Profile, l *Login) {
	pop.mu.Lock()
	defer pop.mu.Unlock()
	if len(p.logins) == 0 && p.opps == 0 {
		pop.users++
	}
	pop.logins++
	if l.RTTms > 0 && l.Keys[kASN] != 0 {
		x := float64(l.LnRTT)
		a := pop.rtt[l.Keys[kASN]]
		a.n++
		a.s += x
		a.s2 += x * x
		pop.rtt[l.Keys[kASN]] = a
	}
	if l.Prior {
		pop.opps++
		if l.Novel[0] >= 0 {
			pop.netNovel[l.Novel[0]]++
		}
		if l.Novel[1] >= 0 {
			pop.agNovel[l.Novel[1]]++
		}
	}
	// Only the levels whose population share the model reads are counted:
	// per-IP or per-agent counts would cost memory for nothing.
	for _, k := range [...]kind{kCountry, kASN} {
		key := l.Keys[k]
		if key == 0 {
			continue
		}
		c := pop.values[key]
		c.logins++
		if p.count(key) == 0 {
			c.users++
		}
		pop.values[key] = c
	}
}

// Users is the number of users the population has seen.
func (pop *Population) Users() uint64 {
	pop.mu.RLock()
	defer pop.mu.RUnlock()
	return pop.users
}

// popView is a lock-free snapshot of what one evaluation reads.
type popView struct {
	users    float64
	netRate  [netLevels + 1]float64
	agRate   [agentLevels + 1]float64
	valUsers [numKinds]float64
	asnRTT   rttAgg
}

// view reads the population numbers one evaluation needs under one lock.
func (pop *Population) view(l *Login) popView {
	var v popView
	if pop == nil {
		v.users = 0
	} else {
		pop.mu.RLock()
		v.users = float64(pop.users)
		opps := float64(pop.opps)
		for i := range v.netRate {
			v.netRate[i] = (float64(pop.netNovel[i]) + 1) / (opps + float64(len(v.netRate)))
		}
		for i := range v.agRate {
			v.agRate[i] = (float64(pop.agNovel[i]) + 1) / (opps + float64(len(v.agRate)))
		}
		for _, k := range [...]kind{kCountry, kASN} {
			if key := l.Keys[k]; key != 0 {
				v.valUsers[k] = float64(pop.values[key].users)
			}
		}
		if l.Keys[kASN] != 0 {
			v.asnRTT = pop.rtt[l.Keys[kASN]]
		}
		pop.mu.RUnlock()
		if opps > 0 {
			return v
		}
	}
	// No population yet: fall back to rates typical of consumer services
	// (most logins repeat a known network and device).
	v.netRate = [netLevels + 1]float64{0.01, 0.04, 0.15, 0.25, 0.55}
	v.agRate = [agentLevels + 1]float64{0.005, 0.01, 0.02, 0.05, 0.05, 0.865}
	return v
}

// rttStats returns the mean and spread of log RTT over the logins that
// match key at kind k (all logins when key is 0), and how many there were.
func (p *Profile) rttStats(k kind, key uint64) (mean, sd float64, n int) {
	var s, s2 float64
	for i := range p.logins {
		l := &p.logins[i]
		if l.RTTms <= 0 || (key != 0 && l.Keys[k] != key) {
			continue
		}
		x := float64(l.LnRTT)
		s += x
		s2 += x * x
		n++
	}
	if n == 0 {
		return 0, 0, 0
	}
	mean = s / float64(n)
	v := s2/float64(n) - mean*mean
	if v < 0 {
		v = 0
	}
	return mean, math.Sqrt(v), n
}

// versionHistory summarises the user's history for the browser family
// (same device type and OS) of famKey: the highest major version run, the
// last login with that family, when the highest version was first seen, and
// when the exact user-agent uaKey was last used (0 if never).
type versionHistory struct {
	ok           bool
	maxMajor     int32
	lastUnix     int64
	maxFirstUnix int64
	uaLastUnix   int64
}

func (p *Profile) versions(famKey, uaKey uint64) versionHistory {
	v := versionHistory{maxMajor: -1}
	for i := range p.logins {
		l := &p.logins[i]
		if l.Keys[kFamily] != famKey || l.Major < 0 {
			continue
		}
		v.ok = true
		if l.Major > v.maxMajor {
			v.maxMajor, v.maxFirstUnix = l.Major, l.Unix
		}
		v.lastUnix = max(v.lastUnix, l.Unix)
		if uaKey != 0 && l.Keys[kUA] == uaKey {
			v.uaLastUnix = l.Unix
		}
	}
	return v
}

// sortedFactors orders factors by absolute contribution, largest first.
func sortedFactors(fs []Factor) {
	sort.SliceStable(fs, func(i, j int) bool { return math.Abs(fs[i].Points) > math.Abs(fs[j].Points) })
}
