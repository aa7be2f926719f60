package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/stepwise-id/stepwise/adaptive/rba"
)

// initBots builds the naive attackers' pool: compromised hosts and rented
// servers all over the world, reused across many accounts as in credential
// stuffing.
func (g *gen) initBots(rng *rand.Rand) {
	for range 3000 {
		c := pickWeighted(rng, g.w.countries, func(c *country) float64 { return c.attackers })
		var as *asys
		var ip netip.Addr
		if rng.Float64() < 0.5 {
			as = c.hosting[rng.IntN(len(c.hosting))]
			ip = hostingAddr(rng, as, c)
		} else {
			as = pickWeighted(rng, c.isps, func(a *asys) float64 { return a.weight })
			ip = addrIn(rng, as.blocks[rng.IntN(len(as.blocks))], 8)
		}
		g.bots = append(g.bots, ip)
		g.botAS = append(g.botAS, as)
		g.botCC = append(g.botCC, c)
	}
}

// randomAgent is an attacker's own browser: a popular family, usually
// current, sometimes stale.
func randomAgent(rng *rand.Rand, t, epoch time.Time) *device {
	kind := "desktop"
	if rng.Float64() < 0.2 {
		kind = "mobile"
	}
	d := newDevice(rng, kind, t)
	d.lag = rng.Float64() * 200
	return d
}

// attack emits one attack session: a few failed tries, then (usually) a
// login with the victim's valid credentials.
func (g *gen) attack(e *entity, t time.Time) {
	rng := e.rng
	victim := g.users[rng.IntN(len(g.users))]
	r := rba.Row{UserID: victim.id, AttackIP: true, Scenario: e.kind}
	var d *device
	var major int
	fails := 0
	pSuccess := 0.0
	switch e.kind {
	case AttackNaive:
		i := rng.IntN(len(g.bots))
		as := g.botAS[i]
		c := g.botCC[i]
		r.IP, r.ASN, r.Country = g.bots[i], as.asn, c.code
		reg := c.regions[rng.IntN(len(c.regions))]
		r.Region, r.City = reg.name, reg.cities[0]
		r.RTTms = pathRTT(c) + 10 + rng.Float64()*60
		d = randomAgent(rng, t, g.o.Start)
		major = d.major(t, g.o.Start)
		fails, pSuccess = rng.IntN(4), 0.7
	case AttackVPN:
		c := victim.home
		as := c.hosting[rng.IntN(len(c.hosting))]
		r.IP, r.ASN, r.Country = hostingAddr(rng, as, c), as.asn, c.code
		r.Region, r.City = c.regions[0].name, c.regions[0].cities[0]
		// The attacker sits anywhere; the tunnel adds their distance to
		// the exit's.
		origin := pickWeighted(rng, g.w.countries, func(c *country) float64 { return c.attackers })
		r.RTTms = pathRTT(c) + pathRTT(origin) + 10 + rng.Float64()*40
		d = randomAgent(rng, t, g.o.Start)
		major = d.major(t, g.o.Start)
		fails, pSuccess = rng.IntN(3), 0.8
	case AttackTargeted:
		// The victim's own ISP (about 60 %) or another residential ISP in
		// the victim's region, through a residential proxy.
		as := victim.isp
		if rng.Float64() >= 0.6 {
			as = pickWeighted(rng, victim.home.isps, func(a *asys) float64 { return a.weight })
		}
		r.IP, r.ASN, r.Country = addrIn(rng, as.blocks[rng.IntN(len(as.blocks))], 8), as.asn, victim.home.code
		r.Region, r.City = victim.region.name, victim.city
		// Relaying through the proxy adds the attacker's own path.
		r.RTTms = victim.rttBase + 20 + lognormal(rng, math.Log(70), 0.6)
		// The victim's usual browser family and OS, at another version.
		vd := victim.pickDevice("")
		cp := *vd
		d = &cp
		cur := vd.major(t, g.o.Start)
		for {
			major = cur + rng.IntN(13) - 8
			if major != cur {
				break
			}
		}
		fails, pSuccess = rng.IntN(2), 0.9
	}
	// Attackers keep their own hours: uniformly random in UTC.
	t = t.Add(time.Duration(rng.Float64() * 24 * float64(time.Hour)))
	r.UserAgent, r.Browser, r.OS, r.Device = render(d, major, t, g.o.Start)
	r.RTTms = math.Round(r.RTTms * math.Exp(0.18*rng.NormFloat64()))
	for i := range fails {
		f := r
		f.Time = t.Add(time.Duration(i*20) * time.Second)
		g.emit(f)
	}
	if rng.Float64() < pSuccess {
		r.Time = t.Add(time.Duration(fails*20+5) * time.Second)
		r.Success, r.Takeover = true, true
		g.emit(r)
	}
}
