// Package geo reads MaxMind-format databases (GeoLite2/GeoIP2 City, Country,
// ASN, and the connection-type / anonymous-IP kinds, or one file carrying
// several of those field sets) to enrich risk Signals. Each field is read
// from the first file that has it, so an operator can pass City and ASN files
// side by side.
package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/stepwise-id/stepwise/adaptive"
)

// Record is what the databases know about one address; zero fields are
// unknown.
type Record struct {
	Country     string
	Region      string
	City        string
	Lat, Lon    float64
	HasLocation bool
	ASN         uint32
	ASOrg       string
	NetworkType adaptive.NetworkType
}

// mmRecord covers the fields of the GeoIP2/GeoLite2 City, Country, ASN,
// Connection-Type, Anonymous-IP and Enterprise layouts that the engine uses.
// It is decoded fresh for every file: Decode leaves fields untouched on a
// miss, so reusing one would leak values between lookups.
type mmRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Subdivisions []struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	ASN            uint32 `maxminddb:"autonomous_system_number"`
	ASOrg          string `maxminddb:"autonomous_system_organization"`
	ConnectionType string `maxminddb:"connection_type"`
	IsHosting      bool   `maxminddb:"is_hosting_provider"`
	IsAnonymous    bool   `maxminddb:"is_anonymous"`
	IsVPN          bool   `maxminddb:"is_anonymous_vpn"`
	IsTor          bool   `maxminddb:"is_tor_exit_node"`
	IsProxy        bool   `maxminddb:"is_public_proxy"`
	Traits         struct {
		ASN            uint32 `maxminddb:"autonomous_system_number"`
		ASOrg          string `maxminddb:"autonomous_system_organization"`
		ConnectionType string `maxminddb:"connection_type"`
		UserType       string `maxminddb:"user_type"`
		IsAnonymous    bool   `maxminddb:"is_anonymous"`
		IsHosting      bool   `maxminddb:"is_hosting_provider"`
	} `maxminddb:"traits"`
}

// DB is a set of opened databases. It is safe for concurrent use.
type DB struct {
	readers []*maxminddb.Reader
	names   []string
}

// Open opens every path; all are closed again if one fails.
func Open(paths ...string) (*DB, error) {
	d := &DB{}
	for _, p := range paths {
		r, err := maxminddb.Open(p)
		if err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("geo: open %q: %w", p, err)
		}
		d.readers = append(d.readers, r)
		d.names = append(d.names, p)
	}
	return d, nil
}

// OpenBytes opens databases held in memory (tests, embedded fixtures).
func OpenBytes(bufs ...[]byte) (*DB, error) {
	d := &DB{}
	for i, b := range bufs {
		r, err := maxminddb.OpenBytes(b)
		if err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("geo: open database %d: %w", i, err)
		}
		d.readers = append(d.readers, r)
		d.names = append(d.names, fmt.Sprintf("#%d", i))
	}
	return d, nil
}

// Close closes every database.
func (d *DB) Close() error {
	if d == nil {
		return nil
	}
	var errs []error
	for i, r := range d.readers {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("geo: close %q: %w", d.names[i], err))
		}
	}
	d.readers = nil
	return errors.Join(errs...)
}

// Lookup merges what every database knows about ip. A nil DB, an invalid
// address or an address no database covers yields an empty Record and no
// error: geo data is always optional.
func (d *DB) Lookup(ip netip.Addr) (Record, error) {
	var rec Record
	if d == nil || !ip.IsValid() {
		return rec, nil
	}
	ip = ip.Unmap()
	for i, r := range d.readers {
		var m mmRecord
		res := r.Lookup(ip)
		if err := res.Err(); err != nil {
			return rec, fmt.Errorf("geo: lookup %s in %q: %w", ip, d.names[i], err)
		}
		if !res.Found() {
			continue
		}
		if err := res.Decode(&m); err != nil {
			return rec, fmt.Errorf("geo: decode %s from %q: %w", ip, d.names[i], err)
		}
		merge(&rec, &m)
	}
	return rec, nil
}

// merge fills the fields of rec that are still empty from m.
func merge(rec *Record, m *mmRecord) {
	if rec.Country == "" {
		rec.Country = m.Country.ISOCode
		if rec.Country == "" {
			rec.Country = m.RegisteredCountry.ISOCode
		}
	}
	if rec.Region == "" && len(m.Subdivisions) > 0 {
		sd := m.Subdivisions[0]
		rec.Region = sd.ISOCode
		if rec.Region == "" {
			rec.Region = sd.Names["en"]
		}
	}
	if rec.City == "" {
		rec.City = m.City.Names["en"]
	}
	if !rec.HasLocation && m.Location.Latitude != nil && m.Location.Longitude != nil {
		rec.Lat, rec.Lon, rec.HasLocation = *m.Location.Latitude, *m.Location.Longitude, true
	}
	if rec.ASN == 0 {
		rec.ASN, rec.ASOrg = m.ASN, m.ASOrg
		if rec.ASN == 0 {
			rec.ASN, rec.ASOrg = m.Traits.ASN, m.Traits.ASOrg
		}
	}
	if rec.NetworkType == adaptive.NetworkUnknown {
		rec.NetworkType = classify(m)
	}
}

// classify maps the anonymous-IP flags and connection / user types onto
// the engine's coarse network types. Anonymity wins over hosting, which
// wins over the access technology.
func classify(m *mmRecord) adaptive.NetworkType {
	switch {
	case m.IsVPN || m.IsTor || m.IsProxy || m.IsAnonymous || m.Traits.IsAnonymous:
		return adaptive.NetworkAnonymous
	case m.IsHosting || m.Traits.IsHosting || strings.EqualFold(m.Traits.UserType, "hosting"):
		return adaptive.NetworkHosting
	}
	ct := m.ConnectionType
	if ct == "" {
		ct = m.Traits.ConnectionType
	}
	switch {
	case strings.EqualFold(ct, "Cellular") || strings.EqualFold(m.Traits.UserType, "cellular"):
		return adaptive.NetworkMobile
	case strings.EqualFold(ct, "Corporate") || strings.EqualFold(m.Traits.UserType, "business"):
		return adaptive.NetworkCorporate
	case strings.EqualFold(ct, "Cable/DSL") || strings.EqualFold(m.Traits.UserType, "residential"):
		return adaptive.NetworkResidential
	}
	return adaptive.NetworkUnknown
}

// Apply fills the geo fields of s that are still empty (a CSV replay may
// already carry Country and ASN, which then take precedence).
func (d *DB) Apply(s *adaptive.Signals) error {
	rec, err := d.Lookup(s.IP)
	if err != nil {
		return err
	}
	if s.Country == "" {
		s.Country, s.Region, s.City = rec.Country, rec.Region, rec.City
	}
	if s.ASN == 0 {
		s.ASN, s.ASOrg = rec.ASN, rec.ASOrg
	}
	if !s.HasLocation && rec.HasLocation {
		s.Lat, s.Lon, s.HasLocation = rec.Lat, rec.Lon, true
	}
	if s.NetworkType == adaptive.NetworkUnknown {
		s.NetworkType = rec.NetworkType
	}
	return nil
}
