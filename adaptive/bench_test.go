package adaptive

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkEvaluate is one evaluation against a 1,000-login history and a
// 100,000-user population, the size the issue asks to be measured at.
func BenchmarkEvaluate(b *testing.B) {
	e := New(Config{})
	pop := NewPopulation()
	for i := range 100_000 {
		s := base()
		s.UserID = fmt.Sprint("u", i)
		s.IP = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		s.ASN = uint32(1000 + i%500)
		s.DeviceID = fmt.Sprint("d", i)
		s.Time = t0.Add(-time.Duration(i) * time.Minute)
		e.Observe(s, NewProfile(), pop)
	}
	p := NewProfile()
	for i := range 1000 {
		s := base()
		// A realistic mix: home most of the time, some mobile addresses,
		// a few browser updates.
		if i%5 == 0 {
			s.IP = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
			s.ASN = 64500
		}
		s.BrowserVersion = fmt.Sprint(110+i/100, ".0.0.0")
		s.Time = t0.Add(-time.Duration(1000-i) * 4 * time.Hour)
		e.Observe(s, p, pop)
	}
	s := base()
	s.IP = netip.MustParseAddr("203.0.113.9")
	s.ASN = 9009
	pol := stepUpPolicy()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := e.Evaluate(ctx, s, p, pop, pol)
		if d.Score < 0 {
			b.Fatal("negative score")
		}
	}
}
