package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/stepwise-id/stepwise/adaptive/rba"
)

func (g *gen) newUser(i int) *user {
	rng := rand.New(rand.NewPCG(g.o.Seed, uint64(i)+1))
	u := &user{id: "u" + itoa(i), rng: rng}
	u.home = pickWeighted(rng, g.w.countries, func(c *country) float64 { return c.homeWeight })
	u.region = pickWeighted(rng, u.home.regions, func(r region) float64 { return r.weight })
	u.city = u.region.cities[rng.IntN(len(u.region.cities))]
	u.isp = pickWeighted(rng, u.home.isps, func(a *asys) float64 { return a.weight })
	u.homeIP = g.homeAddr(rng, u.isp, netip.Addr{})
	// DHCP churn differs a lot between ISPs and routers: some keep a lease
	// for a year, some rotate weekly.
	u.churn = []float64{5, 20, 60, 180, 400}[rng.IntN(5)]
	u.nextIPc = g.o.Start.Add(time.Duration(rng.ExpFloat64() * u.churn * 24 * float64(time.Hour)))

	// Heavy-tailed login frequency: log-normal rates with the requested mean.
	const sigma = 1.3
	mu := math.Log(g.o.LoginsPerUser/float64(g.o.Days)) - sigma*sigma/2
	u.rate = math.Min(lognormal(rng, mu, sigma), 8)

	if rng.Float64() < 0.85 {
		u.phone = newDevice(rng, "mobile", g.o.Start)
		u.devices = append(u.devices, u.phone)
		u.carrier = pickWeighted(rng, u.home.mobile, func(a *asys) float64 { return a.weight })
		u.pMobile = 0.05 + 0.5*rng.Float64()*rng.Float64()
	}
	if u.phone == nil || rng.Float64() < 0.8 {
		u.desktop = newDevice(rng, "desktop", g.o.Start)
		u.desktop.weight = 2
		u.devices = append(u.devices, u.desktop)
	}
	if rng.Float64() < 0.15 {
		u.devices = append(u.devices, newDevice(rng, "tablet", g.o.Start))
	}
	if rng.Float64() < 0.15 && u.desktop != nil {
		d := newDevice(rng, "desktop", g.o.Start)
		u.devices = append(u.devices, d)
	}
	if rng.Float64() < 0.35 {
		u.work = pickWeighted(rng, u.home.corporate, func(a *asys) float64 { return a.weight })
		u.workIP = addrIn(rng, u.work.blocks[0], 0)
		u.pWork = 0.2 + 0.5*rng.Float64()
	}
	if rng.Float64() < 0.03 {
		u.vpn = u.home.hosting[rng.IntN(len(u.home.hosting))]
	}
	np := 1 + rng.IntN(2)
	for range np {
		u.peaks = append(u.peaks, []float64{7.5, 8.5, 12, 15, 19, 20.5, 22}[rng.IntN(7)])
	}
	u.rttBase = pathRTT(u.home) + 4 + rng.Float64()*20
	if rng.Float64() < 0.45 {
		u.tripRate = rng.ExpFloat64() * 3
		u.nextTrip = g.o.Start.Add(time.Duration(rng.ExpFloat64() / u.tripRate * 365 * 24 * float64(time.Hour)))
	}
	return u
}

// homeAddr picks a residential address: after a DHCP change, half the time
// in the same /24, otherwise elsewhere in the ISP's space.
func (g *gen) homeAddr(rng *rand.Rand, isp *asys, prev netip.Addr) netip.Addr {
	if prev.IsValid() && rng.Float64() < 0.5 {
		a := prev.As4()
		a[3] = byte(1 + rng.IntN(254))
		return netip.AddrFrom4(a)
	}
	return addrIn(rng, isp.blocks[rng.IntN(len(isp.blocks))], 8)
}

// nextUserTime draws the next login: exponential gaps in days, a time of day
// from the user's own rhythm, and bursts of repeat logins.
func (g *gen) nextUserTime(u *user, t time.Time) time.Time {
	rng := u.rng
	if rng.Float64() < 0.12 {
		return t.Add(time.Duration(2+rng.IntN(240)) * time.Minute)
	}
	gap := rng.ExpFloat64() / u.rate
	day := t.Add(time.Duration(gap * 24 * float64(time.Hour))).Truncate(24 * time.Hour)
	off := u.home.utcOffset
	if u.trip != nil && u.trip.end.After(day) {
		off = u.trip.dest.utcOffset
	}
	var local float64
	if rng.Float64() < 0.8 {
		local = u.peaks[rng.IntN(len(u.peaks))] + rng.NormFloat64()*1.5
	} else {
		local = 7 + rng.Float64()*17
	}
	next := day.Add(time.Duration((local - float64(off)) * float64(time.Hour)))
	if !next.After(t) {
		next = t.Add(time.Duration(5+rng.IntN(600)) * time.Minute)
	}
	return next
}

func (u *user) pickDevice(kind string) *device {
	switch kind {
	case "mobile":
		if u.phone != nil {
			return u.phone
		}
	case "desktop":
		if u.desktop != nil {
			return u.desktop
		}
	}
	return pickWeighted(u.rng, u.devices, func(d *device) float64 { return d.weight })
}

// maintain applies the slow changes due by t: DHCP churn, ISP switches,
// device replacements, the start and end of trips.
func (g *gen) maintain(u *user, t time.Time) {
	rng := u.rng
	for !u.nextIPc.After(t) {
		u.homeIP = g.homeAddr(rng, u.isp, u.homeIP)
		u.nextIPc = u.nextIPc.Add(time.Duration((0.2 + rng.ExpFloat64()) * u.churn * 24 * float64(time.Hour)))
	}
	// Moving house or changing provider: about 4 % a year.
	if rng.Float64() < 0.04/365/u.rate {
		u.isp = pickWeighted(rng, u.home.isps, func(a *asys) float64 { return a.weight })
		u.homeIP = g.homeAddr(rng, u.isp, netip.Addr{})
	}
	// A device is replaced about every two years; a replacement phone
	// usually stays on the same platform.
	for i, d := range u.devices {
		if rng.Float64() < 1/(2*365*u.rate) {
			nd := newDevice(rng, d.kind, t)
			if d.kind == "mobile" && rng.Float64() < 0.8 {
				nd.os, nd.fam, nd.osVer = d.os, d.fam, d.osVer+1
			}
			nd.weight = d.weight
			u.devices[i] = nd
			if d == u.phone {
				u.phone = nd
			}
			if d == u.desktop {
				u.desktop = nd
			}
		}
	}
	if u.trip != nil && !u.trip.end.After(t) {
		u.trip = nil
	}
	if u.trip == nil && u.tripRate > 0 && !u.nextTrip.After(t) {
		tr := &trip{start: t, end: t.Add(time.Duration(2+rng.IntN(12)) * 24 * time.Hour)}
		if rng.Float64() < 0.5 {
			tr.dest = u.home
			for {
				tr.region = u.home.regions[rng.IntN(len(u.home.regions))]
				if tr.region.name != u.region.name || len(u.home.regions) == 1 {
					break
				}
			}
		} else {
			tr.dest = pickWeighted(rng, g.w.countries, func(c *country) float64 {
				if c == u.home {
					return 0
				}
				return 0.02 + c.homeWeight + c.attackers/10
			})
			tr.region = tr.dest.regions[rng.IntN(len(tr.dest.regions))]
		}
		tr.hotel = tr.dest.isps[rng.IntN(len(tr.dest.isps))]
		tr.hotelIP = addrIn(rng, tr.hotel.blocks[rng.IntN(len(tr.hotel.blocks))], 8)
		tr.local = tr.dest.mobile[rng.IntN(len(tr.dest.mobile))]
		u.trip = tr
		u.nextTrip = tr.end.Add(time.Duration(rng.ExpFloat64() / u.tripRate * 365 * 24 * float64(time.Hour)))
	}
}

// userLogin emits one legitimate login (and, sometimes, a typo before it).
func (g *gen) userLogin(u *user, t time.Time) {
	g.maintain(u, t)
	rng := u.rng
	r := rba.Row{Time: t, UserID: u.id, Success: true}
	loc := u.home
	reg := u.region
	city := u.city
	var as *asys
	var ip netip.Addr
	rtt := u.rttBase
	scenario := ScenarioHome
	devKind := ""
	local := t.Add(time.Duration(u.home.utcOffset) * time.Hour)
	weekday := local.Weekday() != time.Saturday && local.Weekday() != time.Sunday
	workHours := local.Hour() >= 8 && local.Hour() < 17

	switch p := rng.Float64(); {
	case u.trip != nil:
		tr := u.trip
		scenario = ScenarioTravel
		if tr.dest != u.home {
			scenario = ScenarioAbroad
		}
		reg = tr.region
		city = tr.region.cities[rng.IntN(len(tr.region.cities))]
		loc = tr.dest
		rtt = pathRTT(tr.dest) + 8 + rng.Float64()*15
		switch q := rng.Float64(); {
		case q < 0.45 || u.phone == nil:
			as, ip = tr.hotel, tr.hotelIP
		case q < 0.75 && tr.dest != u.home:
			// Roaming data is routed home: the address is the home
			// carrier's, far away from where the user is.
			as, ip = u.carrier, addrIn(rng, u.carrier.blocks[rng.IntN(len(u.carrier.blocks))], 6)
			loc, reg, city = u.home, u.region, u.city
			rtt += pathRTT(u.home) + 40
			devKind = "mobile"
		default:
			c := tr.local
			if tr.dest == u.home {
				c = u.carrier
			}
			as, ip = c, addrIn(rng, c.blocks[rng.IntN(len(c.blocks))], 6)
			rtt += 35
			devKind = "mobile"
		}
	case u.vpn != nil && p < 0.2:
		scenario = ScenarioVPN
		as, ip = u.vpn, hostingAddr(rng, u.vpn, u.home)
		reg = u.home.regions[0]
		city = reg.cities[0]
		rtt += 15 + rng.Float64()*20
	case u.work != nil && weekday && workHours && p < u.pWork+0.2:
		scenario = ScenarioWork
		as, ip = u.work, u.workIP
		rtt = u.rttBase - 3
		devKind = "desktop"
	case u.carrier != nil && p < 0.2+u.pMobile:
		scenario = ScenarioMobile
		// Carrier-grade NAT: a fresh address from a pool on almost every
		// login.
		as, ip = u.carrier, addrIn(rng, u.carrier.blocks[rng.IntN(len(u.carrier.blocks))], 6)
		rtt += 25 + rng.Float64()*30
		devKind = "mobile"
	case p > 0.975:
		// A friend's wifi, a café, a library.
		scenario = ScenarioOther
		as = pickWeighted(rng, u.home.isps, func(a *asys) float64 { return a.weight })
		ip = addrIn(rng, as.blocks[rng.IntN(len(as.blocks))], 8)
		if rng.Float64() < 0.5 {
			reg = u.home.regions[rng.IntN(len(u.home.regions))]
			city = reg.cities[0]
		}
	default:
		as, ip = u.isp, u.homeIP
	}

	d := u.pickDevice(devKind)
	if rng.Float64() < 0.006 {
		// Someone else's computer: a one-off agent.
		d = newDevice(rng, "desktop", t.AddDate(0, -3, 0))
		scenario = ScenarioBorrowed
	} else if !d.used {
		if u.logins > 0 {
			scenario = ScenarioNewDevice
		}
		d.used = true
	}
	major := d.major(t, g.o.Start)
	r.UserAgent, r.Browser, r.OS, r.Device = render(d, major, t, g.o.Start)
	r.IP, r.ASN, r.Country, r.Region, r.City = ip, as.asn, loc.code, reg.name, city
	r.RTTms = math.Round(rtt * math.Exp(0.18*rng.NormFloat64()))
	r.Scenario = scenario
	u.logins++
	if rng.Float64() < 0.04 {
		f := r
		f.Success = false
		f.Time = t.Add(-time.Duration(5+rng.IntN(40)) * time.Second)
		g.emit(f)
	}
	g.emit(r)
}
