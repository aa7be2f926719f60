package conformance

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

// RunBenchmarks measures the token-endpoint hot path on a backend: point
// reads of requests and clients, request inserts, and a refresh rotation
// (read, deactivate, insert, commit). All run in parallel, as requests do.
func RunBenchmarks(b *testing.B, newStore func(b *testing.B) storage.Storage) {
	b.Run("GetRequest", func(b *testing.B) { benchGetRequest(b, newStore(b)) })
	b.Run("CreateRequest", func(b *testing.B) { benchCreateRequest(b, newStore(b)) })
	b.Run("GetClient", func(b *testing.B) { benchGetClient(b, newStore(b)) })
	b.Run("RotateRefreshToken", func(b *testing.B) { benchRotate(b, newStore(b)) })
}

func benchRequest(kind storage.Kind, sig string) storage.Request {
	now := time.Now()
	return storage.Request{
		Kind: kind, Signature: sig, RequestID: "req-" + sig, ClientID: "app",
		Subject: "user-1", SessionID: "session-1", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour),
		// About the size of a serialized fosite request with an OIDC session.
		Data: bytes.Repeat([]byte(`{"k":"v"},`), 80),
	}
}

func benchGetRequest(b *testing.B, s storage.Storage) {
	ctx := context.Background()
	const n = 10000
	tctx, err := s.BeginTx(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := s.CreateRequest(tctx, benchRequest(storage.KindAccessToken, fmt.Sprintf("sig-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Commit(tctx); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sig := fmt.Sprintf("sig-%d", seq.Add(7)%n)
			if _, err := s.GetRequest(ctx, storage.KindAccessToken, sig); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchCreateRequest(b *testing.B, s storage.Storage) {
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := benchRequest(storage.KindAccessToken, fmt.Sprintf("sig-%d", seq.Add(1)))
			if err := s.CreateRequest(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchGetClient(b *testing.B, s storage.Storage) {
	ctx := context.Background()
	c := storage.Client{
		ID: "app", SecretHash: bytes.Repeat([]byte{1}, 32), Name: "App",
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scopes: []string{"openid", "offline_access", "payments:write"},
		TokenEndpointAuthMethod: "client_secret_basic", AccessTokenFormat: "opaque", CreatedAt: time.Now(),
	}
	if err := s.CreateClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetClient(ctx, "app"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchRotate runs independent refresh rotations concurrently; each is one
// transaction of four statements.
func benchRotate(b *testing.B, s storage.Storage) {
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := seq.Add(1)
			old := fmt.Sprintf("rt-%d-0", id)
			if err := s.CreateRequest(ctx, benchRequest(storage.KindRefreshToken, old)); err != nil {
				b.Error(err)
				return
			}
			err := retry(func() error {
				tctx, err := s.BeginTx(ctx)
				if err != nil {
					return err
				}
				defer s.Rollback(tctx)
				if _, err := s.GetRequest(tctx, storage.KindRefreshToken, old); err != nil {
					return err
				}
				if err := s.DeactivateRequest(tctx, storage.KindRefreshToken, old, time.Now(), time.Time{}); err != nil {
					return err
				}
				if err := s.CreateRequest(tctx, benchRequest(storage.KindRefreshToken, fmt.Sprintf("rt-%d-1", id))); err != nil {
					return err
				}
				return s.Commit(tctx)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
