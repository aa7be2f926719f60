// Package geotest writes small MaxMind-format databases for tests, with
// github.com/maxmind/mmdbwriter: one file carrying both the country/location
// and the ASN fields, as DESIGN.md allows for --geoip.
package geotest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Net is what the database says about one network. A zero Lat and Lon
// mean no location (a Country-level database), so no geo-velocity.
type Net struct {
	CIDR     string
	Country  string
	Lat, Lon float64
	ASN      uint32
	ASOrg    string
}

// MMDB returns the database bytes.
func MMDB(t testing.TB, nets ...Net) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "GeoIP2-City",
		// Reader.Verify fails on an empty description, and test addresses
		// sit in reserved ranges (TEST-NET, loopback).
		Description:             map[string]string{"en": "stepwise test fixture"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipn, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country":                        mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)},
			"autonomous_system_number":       mmdbtype.Uint32(n.ASN),
			"autonomous_system_organization": mmdbtype.String(n.ASOrg),
		}
		if n.Lat != 0 || n.Lon != 0 {
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(n.Lat), "longitude": mmdbtype.Float64(n.Lon)}
		}
		if err := tree.Insert(ipn, rec); err != nil {
			t.Fatalf("geotest: insert %s: %v", n.CIDR, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// File writes the database under t.TempDir and returns its path.
func File(t testing.TB, nets ...Net) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	if err := os.WriteFile(path, MMDB(t, nets...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Fixture networks used across tests: a residential ISP in Oslo; a carrier
// in the United States without a location; a hosting ASN in Romania; and a
// carrier in Sydney, too far from Oslo to reach within hours (impossible
// travel).
var (
	Home    = Net{CIDR: "198.51.100.0/24", Country: "NO", Lat: 59.91, Lon: 10.75, ASN: 64500, ASOrg: "Home Fiber AS"}
	Abroad  = Net{CIDR: "203.0.113.0/24", Country: "US", ASN: 64511, ASOrg: "Far Carrier"}
	Hosting = Net{CIDR: "192.0.2.0/24", Country: "RO", ASN: 64520, ASOrg: "Rent-a-Server"}
	Distant = Net{CIDR: "100.64.1.0/24", Country: "AU", Lat: -33.87, Lon: 151.21, ASN: 64530, ASOrg: "Down Under Mobile"}
)
