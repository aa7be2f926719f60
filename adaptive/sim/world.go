package sim

import (
	"math/rand/v2"
	"net/netip"
)

// The simulated world: countries with regions, residential ISPs, mobile
// carriers, employers' networks and hosting providers, each owning address
// blocks. It is built deterministically from the seed so that a run can be
// reproduced exactly.

type netKind uint8

const (
	kindResidential netKind = iota
	kindMobile
	kindCorporate
	kindHosting
)

type asys struct {
	asn     uint32
	org     string
	kind    netKind
	country *country
	blocks  []netip.Prefix          // /16s
	exits   map[string]netip.Prefix // hosting: the /16 announced per country
	weight  float64
}

type region struct {
	name   string
	cities []string
	weight float64
}

type country struct {
	code       string
	lat, lon   float64
	utcOffset  int // hours
	homeWeight float64
	attackers  float64
	regions    []region
	isps       []*asys // residential, Zipf-weighted
	mobile     []*asys
	corporate  []*asys
	hosting    []*asys // hosting providers with exits in this country
}

type world struct {
	countries []*country
	byCode    map[string]*country
	hosting   []*asys
	nextASN   uint32
	nextBlock uint32
}

// countrySpec seeds the world: code, rough centroid, UTC offset, share of
// home users. Most users live in one country, as in the public dataset.
type countrySpec struct {
	code      string
	lat, lon  float64
	off       int
	home      float64
	attackers float64 // weight as an origin of naive attacks
}

func specs() []countrySpec {
	return []countrySpec{
		{"NO", 60.5, 8.5, 1, 0.78, 0.5},
		{"SE", 62, 15, 1, 0.04, 0.5},
		{"DK", 56, 10, 1, 0.02, 0.3},
		{"DE", 51, 10, 1, 0.03, 2},
		{"GB", 54, -2, 0, 0.02, 1.5},
		{"US", 39, -98, -6, 0.03, 5},
		{"PL", 52, 19, 1, 0.01, 1},
		{"FR", 46, 2, 1, 0.01, 1.5},
		{"ES", 40, -4, 1, 0.01, 1},
		{"NL", 52.3, 5.5, 1, 0.01, 1.5},
		{"IT", 42.8, 12.8, 1, 0.005, 1},
		{"IN", 22, 79, 5, 0.01, 4},
		{"BR", -10, -52, -3, 0.005, 4},
		{"CN", 35, 103, 8, 0, 6},
		{"RU", 60, 90, 3, 0, 5},
		{"VN", 16, 107, 7, 0, 3},
		{"ID", -2, 118, 7, 0, 3},
		{"UA", 49, 32, 2, 0.002, 2},
		{"TR", 39, 35, 3, 0.002, 2},
		{"TH", 15, 101, 7, 0, 1.5},
		{"JP", 36, 138, 9, 0.001, 1},
		{"AU", -25, 134, 10, 0.002, 0.8},
		{"CA", 56, -106, -5, 0.003, 1},
		{"ZA", -29, 24, 2, 0.001, 1},
		{"NG", 9, 8, 1, 0, 2},
		{"AE", 24, 54, 4, 0.001, 0.8},
		{"GR", 39, 22, 2, 0.001, 0.5},
		{"PT", 39.5, -8, 0, 0.001, 0.5},
	}
}

func (w *world) newAS(rng *rand.Rand, c *country, kind netKind, org string, blocks int, weight float64) *asys {
	a := &asys{asn: w.nextASN, org: org, kind: kind, country: c, weight: weight}
	w.nextASN += 1 + uint32(rng.IntN(50))
	for range blocks {
		a.blocks = append(a.blocks, w.block())
	}
	return a
}

// block hands out distinct public-looking /16s (skipping reserved first
// octets) so that every AS owns its own address space.
func (w *world) block() netip.Prefix {
	for {
		n := w.nextBlock
		w.nextBlock++
		a, b := byte(n/256)+11, byte(n%256)
		if a == 127 || a == 100 || a >= 224 || a == 169 || a == 172 || a == 192 || a == 198 || a == 203 {
			continue
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{a, b, 0, 0}), 16)
	}
}

// hostingOrgs are rented-server and VPN providers present in many countries.
func hostingOrgs() []string {
	return []string{"M247 Europe", "Datacamp Limited", "Leaseweb", "OVH SAS", "DigitalOcean", "Hetzner Online",
		"Amazon.com", "Choopa", "Linode", "Contabo", "Tzulo", "Private Layer"}
}

func newWorld(rng *rand.Rand) *world {
	w := &world{byCode: map[string]*country{}, nextASN: 1000}
	hosts := make([]*asys, 0, 12)
	for _, org := range hostingOrgs() {
		// One ASN per provider, address blocks per country added below, as
		// real providers announce many countries' exits from one ASN.
		a := &asys{asn: w.nextASN, org: org, kind: kindHosting, weight: 1 / float64(len(hosts)+1), exits: map[string]netip.Prefix{}}
		w.nextASN += 7
		hosts = append(hosts, a)
	}
	w.hosting = hosts
	for _, sp := range specs() {
		c := &country{code: sp.code, lat: sp.lat, lon: sp.lon, utcOffset: sp.off, homeWeight: sp.home, attackers: sp.attackers}
		nreg := 4 + rng.IntN(6)
		for i := range nreg {
			r := region{name: sp.code + "-R" + itoa(i+1), weight: 1 / float64(i+1)}
			for j := range 1 + rng.IntN(4) {
				r.cities = append(r.cities, r.name+"-C"+itoa(j+1))
			}
			c.regions = append(c.regions, r)
		}
		nisp := 6 + rng.IntN(10)
		for i := range nisp {
			c.isps = append(c.isps, w.newAS(rng, c, kindResidential, sp.code+" Broadband "+itoa(i+1), 2+rng.IntN(8), 1/float64(i+1)))
		}
		for i := range 2 + rng.IntN(2) {
			c.mobile = append(c.mobile, w.newAS(rng, c, kindMobile, sp.code+" Mobile "+itoa(i+1), 2, 1/float64(i+1)))
		}
		for i := range 30 {
			c.corporate = append(c.corporate, w.newAS(rng, c, kindCorporate, sp.code+" Corp "+itoa(i+1), 1, 1/float64(i+1)))
		}
		// Hosting exits: most providers have a few blocks in most countries.
		for _, h := range hosts {
			if rng.Float64() < 0.7 || h == hosts[0] {
				h.exits[c.code] = w.block()
				c.hosting = append(c.hosting, h)
			}
		}
		w.countries = append(w.countries, c)
		w.byCode[c.code] = c
	}
	return w
}

// hostingAddr returns an address of provider h's exit in c; exits are
// narrow (16 /24s) because VPN providers reuse a few servers per country.
func hostingAddr(rng *rand.Rand, h *asys, c *country) netip.Addr {
	return addrIn(rng, h.exits[c.code], 4)
}

// addrIn picks a host address in p, restricted to the first 2^spread /24s
// so that pools (CGNAT, DHCP ranges) can be made narrow.
func addrIn(rng *rand.Rand, p netip.Prefix, spread int) netip.Addr {
	a := p.Addr().As4()
	sub := rng.IntN(256)
	if spread < 8 {
		sub = rng.IntN(1 << spread)
	}
	a[2] = byte(sub)
	a[3] = byte(1 + rng.IntN(254))
	return netip.AddrFrom4(a)
}

func pickWeighted[T any](rng *rand.Rand, xs []T, weight func(T) float64) T {
	total := 0.0
	for _, x := range xs {
		total += weight(x)
	}
	r := rng.Float64() * total
	for _, x := range xs {
		r -= weight(x)
		if r <= 0 {
			return x
		}
	}
	return xs[len(xs)-1]
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
