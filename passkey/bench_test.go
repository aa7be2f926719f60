package passkey_test

import (
	"testing"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// BenchmarkLoginCeremony measures the server side of one discoverable login:
// BeginLogin plus FinishLogin with an ES256 passkey (parse, checks, signature
// verification, nonce, credential update). The authenticator's signing is
// excluded from the timing. "mem" isolates the ceremony; "sqlite" adds the
// embedded store's reads and writes.
func BenchmarkLoginCeremony(b *testing.B) {
	stores := []struct {
		name string
		new  func(b *testing.B) testStore
	}{
		{"mem", func(*testing.B) testStore { return newMemStore() }},
		{"sqlite", func(b *testing.B) testStore { return storagetest.SQLite(b) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			f := newFixtureOn(b, st.new(b), nil)
			a := f.enrol(f.user("alice"), aaguidICloud, softauth.Synced)
			b.ReportAllocs()
			b.ResetTimer()
			// Work in batches so that pausing the timer around signing
			// (which reads memory statistics) is paid once per batch, not
			// once per login.
			const batch = 128
			ceremonies := make([]passkey.Ceremony, batch)
			bodies := make([][]byte, batch)
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				for i := range n {
					c, err := f.svc.BeginLogin(f.ctx)
					if err != nil {
						b.Fatal(err)
					}
					ceremonies[i] = c
				}
				b.StopTimer()
				for i := range n {
					body, err := a.Assert(ceremonies[i].Options, softauth.Synced)
					if err != nil {
						b.Fatal(err)
					}
					bodies[i] = body
				}
				b.StartTimer()
				for i := range n {
					res, err := f.svc.FinishLogin(f.ctx, passkey.Response{State: ceremonies[i].State, Credential: bodies[i]})
					if err != nil || res.ACR != "phr" {
						b.Fatalf("FinishLogin = %+v, %v", res, err)
					}
				}
			}
		})
	}
}
