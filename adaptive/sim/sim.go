// Package sim generates realistic simulated login populations in the public
// RBA dataset's CSV format, to evaluate the risk engine: legitimate users
// with heavy-tailed login frequency, home/mobile/work/travel networks, DHCP
// churn, device changes and browser updates; and three kinds of attackers
// who hold valid credentials — naive (any country), VPN (an exit in the
// victim's country on a hosting network) and targeted (the victim's ISP or
// region, the victim's browser family and OS at another version).
//
// Output is deterministic for a given Options (seed included) and streamed
// in time order with memory proportional to the number of users.
package sim

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/stepwise-id/stepwise/adaptive/rba"
)

// Options configure a simulation. Zero fields take the documented defaults.
type Options struct {
	Seed  uint64
	Users int       // default 20,000
	Days  int       // default 300
	Start time.Time // default 2026-01-01 UTC
	// LoginsPerUser is the mean number of successful logins per user over
	// the period; individual rates are log-normal (heavy-tailed). Default 50.
	LoginsPerUser float64
	// AttacksPerKind is the number of attack sessions per attacker kind;
	// default Users/3.
	AttacksPerKind int
	// Progress, if set, is called every 100,000 rows.
	Progress func(rows int)
}

func (o *Options) defaults() {
	if o.Users <= 0 {
		o.Users = 20000
	}
	if o.Days <= 0 {
		o.Days = 300
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.LoginsPerUser <= 0 {
		o.LoginsPerUser = 50
	}
	if o.AttacksPerKind <= 0 {
		o.AttacksPerKind = o.Users / 3
	}
}

// Scenario labels written in the extra Scenario column (never read by the
// scorer): where a legitimate login came from, or which attacker made it.
const (
	ScenarioHome      = "home"
	ScenarioWork      = "work"
	ScenarioMobile    = "mobile"
	ScenarioOther     = "other_network"
	ScenarioTravel    = "travel"
	ScenarioAbroad    = "travel_abroad"
	ScenarioVPN       = "own_vpn"
	ScenarioNewDevice = "new_device"
	ScenarioBorrowed  = "borrowed_device"
	AttackNaive       = "attack_naive"
	AttackVPN         = "attack_vpn"
	AttackTargeted    = "attack_targeted"
)

type trip struct {
	start, end time.Time
	dest       *country
	region     region
	hotel      *asys
	hotelIP    netip.Addr
	local      *asys // local mobile carrier
}

type user struct {
	id      string
	rng     *rand.Rand
	home    *country
	region  region
	city    string
	isp     *asys
	homeIP  netip.Addr
	churn   float64 // mean days between home IP changes
	nextIPc time.Time
	carrier *asys
	work    *asys
	workIP  netip.Addr
	vpn     *asys
	devices []*device
	phone   *device
	desktop *device

	rate     float64 // logins per day
	pMobile  float64
	pWork    float64
	peaks    []float64 // preferred local hours
	rttBase  float64
	tripRate float64 // trips per year
	trip     *trip
	nextTrip time.Time
	logins   int
}

// entity is anything that emits logins on a schedule: a user or an attacker.
type entity struct {
	next time.Time
	seq  int
	u    *user
	kind string // attack kind, "" for a user
	rng  *rand.Rand
	left int
}

type entityHeap []*entity

func (h entityHeap) Len() int { return len(h) }
func (h entityHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].seq < h[j].seq
}
func (h entityHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entityHeap) Push(x any)   { *h = append(*h, x.(*entity)) }
func (h *entityHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type rowHeap []rba.Row

func (h rowHeap) Len() int           { return len(h) }
func (h rowHeap) Less(i, j int) bool { return h[i].Time.Before(h[j].Time) }
func (h rowHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rowHeap) Push(x any)        { *h = append(*h, x.(rba.Row)) }
func (h *rowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// gen holds one run's state.
type gen struct {
	o     Options
	w     *world
	users []*user
	end   time.Time
	out   rowHeap
	cw    *csv.Writer
	rec   []string
	rows  int
	bots  []netip.Addr // naive attackers' bot pool
	botAS []*asys
	botCC []*country
}

// Generate writes a simulated population to w as CSV (the dataset's columns
// plus Scenario), oldest first.
func Generate(ctx context.Context, w io.Writer, o Options) error {
	o.defaults()
	bw := bufio.NewWriterSize(w, 1<<20)
	g := &gen{o: o, end: o.Start.AddDate(0, 0, o.Days), cw: csv.NewWriter(bw)}
	wrng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	g.w = newWorld(wrng)
	if err := g.cw.Write(append(rba.Header(), rba.ColScenario)); err != nil {
		return fmt.Errorf("sim: write header: %w", err)
	}

	h := &entityHeap{}
	seq := 0
	for i := range o.Users {
		u := g.newUser(i)
		g.users = append(g.users, u)
		e := &entity{u: u, seq: seq, rng: u.rng}
		seq++
		e.next = o.Start.Add(time.Duration(u.rng.ExpFloat64() / u.rate * 24 * float64(time.Hour)))
		if e.next.Before(g.end) {
			heap.Push(h, e)
		}
	}
	g.initBots(wrng)
	for k, kind := range []string{AttackNaive, AttackVPN, AttackTargeted} {
		e := &entity{kind: kind, seq: seq, rng: rand.New(rand.NewPCG(o.Seed, 0xa77ac0+uint64(k))), left: o.AttacksPerKind}
		seq++
		// Attacks start after a month so that victims have some history.
		e.next = o.Start.AddDate(0, 0, 30)
		e.next = e.next.Add(g.attackGap(e))
		heap.Push(h, e)
	}

	for h.Len() > 0 {
		e := heap.Pop(h).(*entity)
		if err := g.flush(e.next); err != nil {
			return err
		}
		if g.rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sim: %w", err)
			}
		}
		if e.u != nil {
			g.userLogin(e.u, e.next)
			e.next = g.nextUserTime(e.u, e.next)
		} else {
			g.attack(e, e.next)
			e.left--
			if e.left <= 0 {
				continue
			}
			e.next = e.next.Add(g.attackGap(e))
		}
		if e.next.Before(g.end) {
			heap.Push(h, e)
		}
	}
	if err := g.flush(g.end.AddDate(1, 0, 0)); err != nil {
		return err
	}
	g.cw.Flush()
	if err := g.cw.Error(); err != nil {
		return fmt.Errorf("sim: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sim: write: %w", err)
	}
	return nil
}

// flush writes buffered rows older than t, keeping the output sorted even
// though one login can emit rows a few seconds apart.
//
// A login's failed attempt precedes it by under a minute, so rows are held
// back for a minute behind the schedule.
func (g *gen) flush(t time.Time) error {
	t = t.Add(-time.Minute)
	for g.out.Len() > 0 && g.out[0].Time.Before(t) {
		r := heap.Pop(&g.out).(rba.Row)
		if !r.Time.Before(g.end) {
			continue
		}
		r.Index = int64(g.rows)
		g.rec = r.Fields(g.rec, true)
		if err := g.cw.Write(g.rec); err != nil {
			return fmt.Errorf("sim: write row: %w", err)
		}
		g.rows++
		if g.o.Progress != nil && g.rows%100000 == 0 {
			g.o.Progress(g.rows)
		}
	}
	return nil
}

func (g *gen) emit(r rba.Row) { heap.Push(&g.out, r) }

func (g *gen) attackGap(e *entity) time.Duration {
	span := g.end.Sub(g.o.Start.AddDate(0, 0, 30))
	mean := float64(span) / float64(g.o.AttacksPerKind)
	return time.Duration(e.rng.ExpFloat64() * mean)
}

func lognormal(rng *rand.Rand, mu, sigma float64) float64 {
	return math.Exp(mu + sigma*rng.NormFloat64())
}

// distanceKM between two points (haversine).
func distanceKM(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * 6371 * math.Asin(math.Min(1, math.Sqrt(a)))
}

// The service runs in Oslo; RTT grows with distance (fibre is roughly 1 ms
// per 100 km round trip, plus routing).
const serverLat, serverLon = 59.9, 10.7

func pathRTT(c *country) float64 {
	return 6 + distanceKM(serverLat, serverLon, c.lat, c.lon)/70
}
