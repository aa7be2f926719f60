// Package adaptive is Stepwise's risk engine: it turns the context of an
// authorization request (Signals) and the user's own history (Profile, plus
// the Population aggregate) into a 0–100 risk score with per-factor
// contributions, and applies per-scope and per-client Policy to reach a
// Decision (allow, step up to an acr within a max age, deny).
//
// The package is pure computation: no HTTP, no SQL. The caller extracts
// Signals from the request, keeps the successful-login history, and hands
// both in (directly, or through the History interface).
//
// # Model
//
// The score starts from Freeman et al. (NDSS 2016): a login is compared with
// the user's own history along the hierarchies country → ASN → /24 → IP and
// device type → OS → browser → version → user agent, with population
// statistics as the smoothing prior. Two changes fix what makes the published
// score fail on realistic data (see RISK-NOTES.md):
//
//   - No per-user prior. Each hierarchy contributes only at its most general
//     level the user never used, as the surprise (bits) of "something new at
//     this level" under the user's own novelty rate, shrunk towards the
//     population's rate. A commuter on carrier-grade NAT, for whom a new IP
//     is routine, and a user who never leaves home are each judged against
//     themselves, so the score means the same for rare and daily users.
//   - Signals the published model lacks: how rare a new country or ASN is
//     across the population (rented servers and VPN exits serve few users),
//     RTT against the user's (or, for little history, everyone's) usual RTT
//     on that network, hour of day against the user's rhythm, browser
//     version drift (older than a version the user already ran, or a jump
//     beyond what elapsed time explains), a new region, device-cookie
//     familiarity, failures, and the network type when an mmdb provides it.
//
// Every factor is a number of points with a one-line reason; the score is
// their sum clamped to 0–100. Hard rules (deny lists, impossible travel,
// failure velocity) set a floor instead of adding. A user with no history
// in the window is unfamiliar: a fixed base (by default exactly the example
// step-up threshold) plus what the population can say about the network.
package adaptive

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NetworkType classifies the network an address belongs to when a data
// source (e.g. an mmdb with connection-type or anonymous-IP fields) says so.
// It is optional: an empty type means "not known" and costs nothing.
type NetworkType string

// Network types. Hosting and Anonymous are what VPN exits and rented servers
// look like; Residential and Mobile are where people actually live.
const (
	NetworkUnknown     NetworkType = ""
	NetworkResidential NetworkType = "residential"
	NetworkMobile      NetworkType = "mobile"
	NetworkCorporate   NetworkType = "corporate"
	NetworkHosting     NetworkType = "hosting"
	NetworkAnonymous   NetworkType = "anonymous"
)

// Signals is everything the engine looks at for one login or authorization
// request. Zero values mean "unknown" and are skipped, so the engine degrades
// gracefully without geo data, RTT or a device cookie.
type Signals struct {
	Time   time.Time
	UserID string

	IP netip.Addr
	// Network is the address's /24 (IPv4) or /48 (IPv6); derived from IP
	// when zero.
	Network netip.Prefix

	ASN         uint32
	ASOrg       string
	Country     string // ISO 3166-1 alpha-2 where known
	Region      string
	City        string
	Lat, Lon    float64
	HasLocation bool
	NetworkType NetworkType

	UserAgent      string
	Browser        string // family, e.g. "Chrome"
	BrowserVersion string // e.g. "118.0.5993"
	OS             string // e.g. "Windows"
	OSVersion      string
	Device         string // desktop, mobile, tablet, tv, bot

	// DeviceID is the id carried by the long-lived signed device cookie;
	// empty when the browser presented none. The caller verifies the
	// signature; the engine only checks familiarity against the history.
	DeviceID string

	// RTT is the server-measured round-trip time, zero when unknown.
	RTT time.Duration

	// AccountFailures and IPFailures count failed logins for this account
	// and from this IP within the caller's recent window (one hour in the
	// replay tool).
	AccountFailures int
	IPFailures      int

	ClientID string
	Scopes   []string
}

// NetworkOf returns the /24 (IPv4) or /48 (IPv6) containing ip, the unit that
// survives DHCP churn on most residential ISPs.
func NetworkOf(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Major returns the leading integer of a dotted version string, or -1.
func Major(version string) int {
	end := 0
	for end < len(version) && version[end] >= '0' && version[end] <= '9' {
		end++
	}
	if end == 0 {
		return -1
	}
	n, err := strconv.Atoi(version[:end])
	if err != nil {
		return -1
	}
	return n
}

// normalize lower-cases and trims a categorical value so that "Chrome" and
// "chrome " count as the same thing in the history.
func normalize(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}
