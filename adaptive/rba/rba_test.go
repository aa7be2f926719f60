package rba

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const sample = `index,Login Timestamp,User ID,Round-Trip Time [ms],IP Address,Country,Region,City,ASN,User Agent String,Browser Name and Version,OS Name and Version,Device Type,Login Successful,Is Attack IP,Is Account Takeover
0,2020-02-03 12:43:30.772,-4324475583306591935,,10.0.65.171,NO,-,-,29695,"Mozilla/5.0  (iPhone; CPU iPhone OS 13_4 like Mac OS X) AppleWebKit/537.36 (KHTML, like Gecko Chrome/91.0.4472.114 Safari/537.36 Mobile",Chrome Mobile 81.0.4044,iOS 13.4,mobile,False,False,False
1,2020-02-03 12:43:43.549,-4324475583306591935,491,10.0.65.171,NO,-,-,29695,"Mozilla/5.0 (iPhone)",Chrome Mobile 81.0.4044,iOS 13.4,mobile,True,False,True
`

func TestReader(t *testing.T) {
	rd, err := NewReader(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	r, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2020, 2, 3, 12, 43, 30, 772e6, time.UTC)
	if !r.Time.Equal(want) || r.UserID != "-4324475583306591935" || r.RTTms != 0 || r.ASN != 29695 ||
		r.IP != netip.MustParseAddr("10.0.65.171") || r.Success || r.Device != "mobile" {
		t.Fatalf("row 0: %+v", r)
	}
	r, err = rd.Read()
	if err != nil || r.RTTms != 491 || !r.Success || !r.Takeover || r.AttackIP {
		t.Fatalf("row 1: %+v %v", r, err)
	}
	s := r.Signals(nil)
	if s.Browser != "Chrome Mobile" || s.BrowserVersion != "81.0.4044" || s.OS != "iOS" || s.OSVersion != "13.4" || s.RTT != 491*time.Millisecond {
		t.Fatalf("signals: %+v", s)
	}
	if _, err := rd.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestParseRecordErrors(t *testing.T) {
	h := Header()
	good := []string{"7", "2026-01-01 00:00:00.000", "u1", "30", "192.0.2.1", "NO", "R", "C", "2119", "ua", "Chrome 1.0", "Windows 10", "desktop", "true", "false", "false"}
	if _, err := ParseRecord(h, good); err != nil {
		t.Fatal(err)
	}
	tests := map[int]string{1: "yesterday", 2: "", 3: "-5", 4: "999.1.1.1", 8: "ASx", 13: "maybe"}
	for col, bad := range tests {
		rec := append([]string(nil), good...)
		rec[col] = bad
		if _, err := ParseRecord(h, rec); err == nil {
			t.Errorf("column %s = %q: want error", h[col], bad)
		}
	}
	if _, err := NewReader(strings.NewReader("a,b\n")); !errors.Is(err, ErrNoHeader) {
		t.Errorf("bad header: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	r := Row{Index: 3, Time: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), UserID: "u9", RTTms: 41, IP: netip.MustParseAddr("2001:db8::1"),
		Country: "SE", ASN: 3301, UserAgent: `Mozilla/5.0 "quoted", comma`, Browser: "Firefox 131.0", OS: "Linux", Device: "desktop", Success: true, Scenario: "home"}
	var buf bytes.Buffer
	buf.WriteString(strings.Join(append(Header(), ColScenario), ",") + "\n")
	w := csv.NewWriter(&buf)
	if err := w.Write(r.Fields(nil, true)); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	rd, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got != r {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
}

// FuzzParseRecord checks that no input makes the row parser panic and that
// whatever it accepts survives a write/read round trip.
func FuzzParseRecord(f *testing.F) {
	f.Add(sample)
	f.Add("Login Timestamp,User ID,IP Address,Login Successful\n2026-01-01 00:00:00,u,::1,true\n")
	f.Add("Login Timestamp,User ID,IP Address,Login Successful,ASN\n2026-01-01T00:00:00Z,u,,1,AS12\n")
	f.Fuzz(func(t *testing.T, in string) {
		rd, err := NewReader(strings.NewReader(in))
		if err != nil {
			return
		}
		for range 50 {
			r, err := rd.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				continue
			}
			back, err := ParseRecord(append(Header(), ColScenario), r.Fields(nil, true))
			if err != nil {
				t.Fatalf("accepted row does not round-trip: %+v: %v", r, err)
			}
			if back.UserID != r.UserID || back.IP != r.IP || back.ASN != r.ASN || back.Success != r.Success {
				t.Fatalf("round trip changed the row: %+v -> %+v", r, back)
			}
			_ = r.Signals(nil)
		}
	})
}
