package geo

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/stepwise-id/stepwise/adaptive"
)

// build writes an in-memory mmdb with the given records per CIDR.
func build(t *testing.T, dbType string, recs map[string]mmdbtype.Map) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: dbType,
		// Reader.Verify fails on an empty description; test addresses sit
		// in reserved ranges (TEST-NET), which need IncludeReservedNetworks.
		Description:             map[string]string{"en": "stepwise test fixture"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, v := range recs {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, v); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cityDB(t *testing.T) []byte {
	return build(t, "GeoIP2-City", map[string]mmdbtype.Map{
		"192.0.2.0/24": {
			"country":      mmdbtype.Map{"iso_code": mmdbtype.String("NO")},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("03"), "names": mmdbtype.Map{"en": mmdbtype.String("Oslo")}}},
			"city":         mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Oslo")}},
			"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(59.91), "longitude": mmdbtype.Float64(10.75)},
		},
		"198.51.100.0/24": {
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("US")},
		},
	})
}

func asnDB(t *testing.T) []byte {
	return build(t, "GeoLite2-ASN", map[string]mmdbtype.Map{
		"192.0.2.0/24": {
			"autonomous_system_number":       mmdbtype.Uint32(2119),
			"autonomous_system_organization": mmdbtype.String("Telenor Norge AS"),
		},
		"203.0.113.0/24": {
			"autonomous_system_number":       mmdbtype.Uint32(9009),
			"autonomous_system_organization": mmdbtype.String("M247 Europe SRL"),
		},
	})
}

func anonDB(t *testing.T) []byte {
	return build(t, "GeoIP2-Anonymous-IP", map[string]mmdbtype.Map{
		"203.0.113.0/24": {"is_anonymous": mmdbtype.Bool(true), "is_anonymous_vpn": mmdbtype.Bool(true), "is_hosting_provider": mmdbtype.Bool(true)},
	})
}

func TestLookupMergesFiles(t *testing.T) {
	db, err := OpenBytes(cityDB(t), asnDB(t), anonDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		ip   string
		want Record
	}{
		{"192.0.2.10", Record{Country: "NO", Region: "03", City: "Oslo", Lat: 59.91, Lon: 10.75, HasLocation: true, ASN: 2119, ASOrg: "Telenor Norge AS"}},
		{"198.51.100.7", Record{Country: "US"}},
		{"203.0.113.5", Record{ASN: 9009, ASOrg: "M247 Europe SRL", NetworkType: adaptive.NetworkAnonymous}},
		{"::ffff:192.0.2.10", Record{Country: "NO", Region: "03", City: "Oslo", Lat: 59.91, Lon: 10.75, HasLocation: true, ASN: 2119, ASOrg: "Telenor Norge AS"}},
		{"10.1.2.3", Record{}},
		{"2001:db8::1", Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			got, err := db.Lookup(netip.MustParseAddr(tt.ip))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestNoDatabaseDegrades(t *testing.T) {
	var db *DB
	rec, err := db.Lookup(netip.MustParseAddr("192.0.2.1"))
	if err != nil || rec != (Record{}) {
		t.Fatalf("nil DB: %+v, %v", rec, err)
	}
	s := adaptive.Signals{IP: netip.MustParseAddr("192.0.2.1")}
	if err := db.Apply(&s); err != nil || s.Country != "" {
		t.Fatalf("nil DB Apply: %+v, %v", s, err)
	}
}

func TestApplyKeepsGivenFields(t *testing.T) {
	db, err := OpenBytes(cityDB(t), asnDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := adaptive.Signals{IP: netip.MustParseAddr("192.0.2.1"), Country: "SE"}
	if err := db.Apply(&s); err != nil {
		t.Fatal(err)
	}
	if s.Country != "SE" || s.ASN != 2119 || !s.HasLocation {
		t.Fatalf("Apply: %+v", s)
	}
}

func TestOpenBadBytes(t *testing.T) {
	if _, err := OpenBytes([]byte("not an mmdb")); err == nil {
		t.Fatal("want error")
	}
}
