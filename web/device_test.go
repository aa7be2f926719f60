package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
)

func TestDeviceCookie(t *testing.T) {
	var mu sync.Mutex
	var seen []storage.Event
	e := newEnv(t, func(c *Config) {
		c.OnEvent = func(_ context.Context, ev storage.Event) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ev)
		}
	})
	deviceOf := func(ev storage.Event) string {
		var d struct {
			Device string `json:"device"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		return d.Device
	}

	b := e.browser()
	b.login()
	c := b.cookies[deviceCookieName]
	if c == nil || !c.HttpOnly || c.MaxAge < 365*24*3600 {
		t.Fatalf("device cookie after sign-in: %+v", c)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	id := e.s.DeviceID(r)
	logins := events(t, e.store, "login.success")
	if id == "" || len(logins) != 1 || deviceOf(logins[0]) != id {
		t.Fatalf("device id %q, login events %v", id, logins)
	}

	// The same browser keeps its id across sign-ins (and sign-outs).
	b.post("/logout", nil)
	b.login()
	logins = events(t, e.store, "login.success")
	if len(logins) != 2 || deviceOf(logins[0]) != id || deviceOf(logins[1]) != id {
		t.Fatalf("second sign-in recorded another device: %v", logins)
	}

	// A forged or foreign cookie is no device at all.
	forged := *c
	forged.Value = c.Value[:len(c.Value)-4] + "AAAA"
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&forged)
	if got := e.s.DeviceID(r); got != "" {
		t.Fatalf("forged cookie accepted: %q", got)
	}
	if got := e.s.DeviceID(httptest.NewRequest("GET", "/", nil)); got != "" {
		t.Fatalf("no cookie gave %q", got)
	}

	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, ev := range seen {
		if ev.Type == "login.success" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("OnEvent saw %d sign-ins, want 2", n)
	}
}
