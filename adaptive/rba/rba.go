// Package rba reads and writes login logs in the column format of the public
// RBA login dataset (Wiefling et al., TOPS 2022), the format of Stepwise's
// risk simulate / replay / report tools.
package rba

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
)

// Column names of the dataset, in its order; Index is optional on input.
const (
	ColIndex     = "index"
	ColTime      = "Login Timestamp"
	ColUser      = "User ID"
	ColRTT       = "Round-Trip Time [ms]"
	ColIP        = "IP Address"
	ColCountry   = "Country"
	ColRegion    = "Region"
	ColCity      = "City"
	ColASN       = "ASN"
	ColUA        = "User Agent String"
	ColBrowser   = "Browser Name and Version"
	ColOS        = "OS Name and Version"
	ColDevice    = "Device Type"
	ColSuccess   = "Login Successful"
	ColAttackIP  = "Is Attack IP"
	ColTakeover  = "Is Account Takeover"
	ColScenario  = "Scenario" // simulator-only label, never read by the scorer
	numStdCols   = 16
	timeLayout   = "2006-01-02 15:04:05.000"
	timeLayoutNS = "2006-01-02 15:04:05"
)

// Header returns the dataset's columns, index first.
func Header() []string {
	return []string{ColIndex, ColTime, ColUser, ColRTT, ColIP, ColCountry, ColRegion, ColCity, ColASN,
		ColUA, ColBrowser, ColOS, ColDevice, ColSuccess, ColAttackIP, ColTakeover}
}

// Row is one login attempt.
type Row struct {
	Index     int64
	Time      time.Time
	UserID    string
	RTTms     float64 // 0 = not measured
	IP        netip.Addr
	Country   string
	Region    string
	City      string
	ASN       uint32
	UserAgent string
	Browser   string // "Chrome 120.0.6099"
	OS        string // "Windows 10"
	Device    string
	Success   bool
	AttackIP  bool // label: never used for scoring
	Takeover  bool // label: never used for scoring
	Scenario  string
}

// ErrNoHeader is returned when the first record lacks the required columns.
var ErrNoHeader = errors.New("rba: header lacks required columns (Login Timestamp, User ID, IP Address, Login Successful)")

// Reader reads rows by column name, so column order, a missing index and
// extra columns (which are kept in Record) are all fine.
type Reader struct {
	cr     *csv.Reader
	header []string
	col    map[string]int
	rec    []string
	line   int
}

// NewReader reads the header from r.
func NewReader(r io.Reader) (*Reader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	h, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("rba: read header: %w", err)
	}
	rd := &Reader{cr: cr, header: append([]string(nil), h...), col: make(map[string]int, len(h)), line: 1}
	for i, name := range rd.header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		rd.header[i] = name
		if _, dup := rd.col[name]; !dup {
			rd.col[name] = i
		}
	}
	for _, need := range []string{ColTime, ColUser, ColIP, ColSuccess} {
		if _, ok := rd.col[need]; !ok {
			return nil, ErrNoHeader
		}
	}
	return rd, nil
}

// Header is the input header (trimmed).
func (rd *Reader) Header() []string { return rd.header }

// Get returns the named column of the last row read ("" if absent), for
// columns beyond the dataset's own, such as a replay's risk_score.
func (rd *Reader) Get(name string) string { return rd.field(rd.rec, name) }

// Record is the raw fields of the last row read; reused by the next Read.
func (rd *Reader) Record() []string { return rd.rec }

// Read returns the next row; io.EOF at the end. A malformed row returns an
// error naming its line; the caller may skip it and continue.
func (rd *Reader) Read() (Row, error) {
	rec, err := rd.cr.Read()
	rd.line++
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Row{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			rd.rec = nil
			return Row{}, fmt.Errorf("rba: line %d: %w", rd.line, err)
		}
		return Row{}, fmt.Errorf("rba: read: %w", err)
	}
	rd.rec = rec
	row, err := rd.parse(rec)
	if err != nil {
		return Row{}, fmt.Errorf("rba: line %d: %w", rd.line, err)
	}
	return row, nil
}

func (rd *Reader) field(rec []string, name string) string {
	i, ok := rd.col[name]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// ParseRecord parses one record given its header; exported for tests and
// fuzzing.
func ParseRecord(header, rec []string) (Row, error) {
	rd := &Reader{header: header, col: make(map[string]int, len(header))}
	for i, n := range header {
		if _, dup := rd.col[n]; !dup {
			rd.col[n] = i
		}
	}
	return rd.parse(rec)
}

func (rd *Reader) parse(rec []string) (Row, error) {
	var r Row
	var err error
	if s := rd.field(rec, ColIndex); s != "" {
		if r.Index, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Row{}, fmt.Errorf("index %q: %w", s, err)
		}
	}
	if r.Time, err = ParseTime(rd.field(rec, ColTime)); err != nil {
		return Row{}, err
	}
	r.UserID = rd.field(rec, ColUser)
	if r.UserID == "" {
		return Row{}, errors.New("empty User ID")
	}
	if s := rd.field(rec, ColRTT); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f != f {
			return Row{}, fmt.Errorf("round-trip time %q: not a non-negative number", s)
		}
		r.RTTms = f
	}
	if s := rd.field(rec, ColIP); s != "" {
		if r.IP, err = netip.ParseAddr(s); err != nil {
			return Row{}, fmt.Errorf("IP address %q: %w", s, err)
		}
	}
	r.Country, r.Region, r.City = rd.field(rec, ColCountry), rd.field(rec, ColRegion), rd.field(rec, ColCity)
	if s := rd.field(rec, ColASN); s != "" {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return Row{}, fmt.Errorf("ASN %q: %w", s, err)
		}
		r.ASN = uint32(n)
	}
	r.UserAgent = rd.field(rec, ColUA)
	r.Browser, r.OS, r.Device = rd.field(rec, ColBrowser), rd.field(rec, ColOS), rd.field(rec, ColDevice)
	if r.Success, err = parseBool(rd.field(rec, ColSuccess)); err != nil {
		return Row{}, fmt.Errorf("Login Successful: %w", err)
	}
	if r.AttackIP, err = parseBool(rd.field(rec, ColAttackIP)); err != nil {
		return Row{}, fmt.Errorf("Is Attack IP: %w", err)
	}
	if r.Takeover, err = parseBool(rd.field(rec, ColTakeover)); err != nil {
		return Row{}, fmt.Errorf("Is Account Takeover: %w", err)
	}
	r.Scenario = rd.field(rec, ColScenario)
	return r, nil
}

// ParseTime accepts the dataset's "2006-01-02 15:04:05.000" (UTC) and
// RFC 3339.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{timeLayout, timeLayoutNS, time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	// The dataset's fractional part varies in width.
	if t, err := time.Parse("2006-01-02 15:04:05.999999999", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("login timestamp %q: not a time", s)
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// FormatTime renders t like the dataset does.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Fields renders r in Header order (plus Scenario when withScenario).
func (r *Row) Fields(dst []string, withScenario bool) []string {
	rtt := ""
	if r.RTTms > 0 {
		rtt = strconv.FormatFloat(r.RTTms, 'f', 0, 64)
	}
	ip := ""
	if r.IP.IsValid() {
		ip = r.IP.String()
	}
	asn := ""
	if r.ASN != 0 {
		asn = strconv.FormatUint(uint64(r.ASN), 10)
	}
	dst = append(dst[:0], strconv.FormatInt(r.Index, 10), FormatTime(r.Time), r.UserID, rtt, ip,
		r.Country, r.Region, r.City, asn, r.UserAgent, r.Browser, r.OS, r.Device,
		strconv.FormatBool(r.Success), strconv.FormatBool(r.AttackIP), strconv.FormatBool(r.Takeover))
	if withScenario {
		dst = append(dst, r.Scenario)
	}
	return dst
}

// SplitNameVersion splits "Chrome Mobile 81.0.4044" into its name and the
// version that starts at the last space followed by a digit.
func SplitNameVersion(s string) (name, version string) {
	for i := len(s) - 1; i > 0; i-- {
		if s[i-1] == ' ' && s[i] >= '0' && s[i] <= '9' {
			return strings.TrimSpace(s[:i-1]), s[i:]
		}
	}
	return s, ""
}

// Signals converts a row into engine Signals. The labels (AttackIP,
// Takeover, Scenario) are deliberately not carried over. When the row lacks
// the parsed browser/OS/device columns, ua (if non-nil) parses the UA
// string.
func (r *Row) Signals(ua *adaptive.UAParser) adaptive.Signals {
	s := adaptive.Signals{
		Time:      r.Time,
		UserID:    r.UserID,
		IP:        r.IP,
		ASN:       r.ASN,
		Country:   r.Country,
		Region:    r.Region,
		City:      r.City,
		UserAgent: r.UserAgent,
		Device:    strings.ToLower(r.Device),
	}
	if s.Device == "unknown" {
		s.Device = ""
	}
	if r.RTTms > 0 {
		s.RTT = time.Duration(r.RTTms * float64(time.Millisecond))
	}
	s.Browser, s.BrowserVersion = SplitNameVersion(r.Browser)
	s.OS, s.OSVersion = SplitNameVersion(r.OS)
	if ua != nil {
		ua.Apply(&s)
	}
	return s
}
