package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stepwise-id/stepwise/internal/browsertest"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// browserEnv runs the web handler on a real listener at
// http://localhost:PORT, with a stand-in for the oauth package: /start
// pauses a request and hands it to Authenticate, and the resume endpoint
// redirects to the client on another origin (client.test, mapped to
// loopback), as the real one does once a code is issued.
type browserEnv struct {
	*env
	base      string
	clientURL string
}

func newBrowserEnv(t *testing.T, rewrite func(http.Handler) http.Handler) *browserEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	base := "http://localhost:" + strconv.Itoa(port)
	e := newEnv(t, func(c *Config) { c.Issuer = base; c.Now = nil })
	e.clock = nil

	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<!doctype html><title>client</title><p id=done>client got " + r.URL.RawQuery + "</p>"))
	}))
	t.Cleanup(client.Close)
	cu, _ := url.Parse(client.URL)
	clientURL := "http://client.test:" + cu.Port() + "/callback"
	ctx := context.Background()
	if err := e.store.UpdateClient(ctx, testClientID, func(c storage.Client) (storage.Client, error) {
		c.RedirectURIs = []string{clientURL}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/", e.s.Handler())
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		now := time.Now()
		if err := e.store.CreateAuthRequest(r.Context(), storage.AuthRequest{
			ID: id, ClientID: testClientID, Data: []byte(`{}`), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		}); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		p := e.pending(id)
		if r.URL.Query().Get("step") == "consent" {
			e.s.Consent(w, r, p)
			return
		}
		e.s.Authenticate(w, r, p)
	})
	mux.HandleFunc("GET /startlogout", func(w http.ResponseWriter, r *http.Request) {
		e.s.Logout(w, r, oauth.LogoutRequest{ClientName: "Billing App", RedirectURI: clientURL + "?state=bye"})
	})
	mux.HandleFunc("GET /oauth2/authorize/resume", func(w http.ResponseWriter, r *http.Request) {
		a, err := e.store.GetAuthRequest(r.Context(), r.URL.Query().Get("id"))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		q := "code=fake"
		if a.Outcome != "" {
			q = "error=" + a.Outcome
		}
		http.Redirect(w, r, clientURL+"?"+q, http.StatusFound)
	})
	var h http.Handler = e.s.Middleware(mux)
	if rewrite != nil {
		h = rewrite(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &browserEnv{env: e, base: base, clientURL: clientURL}
}

func newChrome(t *testing.T) context.Context {
	t.Helper()
	return browsertest.New(t, 60*time.Second, chromedp.Flag("host-resolver-rules", "MAP client.test 127.0.0.1"))
}

// shot saves a screenshot when STEPWISE_SCREENSHOTS names a directory.
func shot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv(browsertest.ScreenshotsEnv)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

func sel(dataTest string) chromedp.CSS { return chromedp.CSS(`[data-test="` + dataTest + `"]`) }

// TestBrowserLoginAndConsent drives the pages in headless Chromium: the
// sign-in form, the redirect chain POST /login → resume → client on another
// origin (which Chrome checks against form-action), consent, and sign-out.
func TestBrowserLoginAndConsent(t *testing.T) {
	be := newBrowserEnv(t, nil)
	ctx := newChrome(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(be.base+"/start?id=req-b1"),
		chromedp.WaitVisible(sel("username")),
	); err != nil {
		t.Fatalf("open login: %v", err)
	}
	shot(t, ctx, "login")
	// A wrong password first.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(sel("username"), "alice"),
		chromedp.SendKeys(sel("password"), "wrong"),
		chromedp.Click(sel("submit")),
		chromedp.WaitVisible(sel("error")),
	); err != nil {
		t.Fatalf("failed login: %v", err)
	}
	shot(t, ctx, "login-error")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(sel("password"), testPassword),
		chromedp.Click(sel("submit")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("login: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, be.clientURL+"?code=") {
		t.Fatalf("after login the browser is at %q, want the client", loc)
	}

	// Consent, then deny on a second request.
	for _, c := range []struct{ id, button, want string }{
		{"req-b2", "consent-allow", "code=fake"},
		{"req-b3", "consent-deny", "error=denied"},
	} {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(be.base+"/start?step=consent&id="+c.id),
			chromedp.WaitVisible(sel(c.button)),
		); err != nil {
			t.Fatalf("open consent: %v", err)
		}
		shot(t, ctx, "consent")
		if err := chromedp.Do(ctx, chromedp.Click(sel(c.button)), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatalf("%s: %v", c.button, err)
		}
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		if !strings.Contains(loc, c.want) {
			t.Errorf("%s: at %q, want %q", c.button, loc, c.want)
		}
	}

	// A phone-sized viewport: the card fills the screen.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(be.base+"/account"),
		chromedp.WaitVisible(sel("logout")),
	); err != nil {
		t.Fatalf("account on a phone: %v", err)
	}
	shot(t, ctx, "account-phone")
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		t.Fatal(err)
	}

	// The account page, then sign out.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(be.base+"/account"),
		chromedp.WaitVisible(sel("logout")),
	); err != nil {
		t.Fatalf("account: %v", err)
	}
	shot(t, ctx, "account")
	// RP-initiated logout: confirm, then land on the client's page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(be.base+"/startlogout"),
		chromedp.WaitVisible(sel("logout")),
	); err != nil {
		t.Fatalf("logout confirmation: %v", err)
	}
	shot(t, ctx, "logout")
	if err := chromedp.Do(ctx, chromedp.Click(sel("logout")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != be.clientURL+"?state=bye" {
		t.Errorf("after logout at %q", loc)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(be.base+"/account"),
		chromedp.WaitVisible(sel("username")),
	); err != nil {
		t.Fatalf("account after logout should ask to sign in: %v", err)
	}
}

// TestBrowserFormActionNeedsClientOrigin shows why the pages widen
// form-action: with the bare 'self', Chrome blocks the last hop of
// POST /login → 303 resume → 302 client.
func TestBrowserFormActionNeedsClientOrigin(t *testing.T) {
	bare := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&cspResetter{ResponseWriter: w}, r)
		})
	}
	be := newBrowserEnv(t, bare)
	ctx := newChrome(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(be.base+"/start?id=req-c1"),
		chromedp.WaitVisible(sel("username")),
		chromedp.SendKeys(sel("username"), "alice"),
		chromedp.SendKeys(sel("password"), testPassword),
		chromedp.Click(sel("submit")),
		chromedp.Sleep(2*time.Second),
	)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drive: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.HasPrefix(loc, be.clientURL) {
		t.Logf("Chrome followed the redirect despite form-action 'self' (at %q)", loc)
	} else {
		t.Logf("with form-action 'self' alone Chrome stopped at %q", loc)
	}
}

// cspResetter forces the base CSP, undoing the per-page widening.
type cspResetter struct{ http.ResponseWriter }

func (c *cspResetter) WriteHeader(code int) {
	c.Header().Set("Content-Security-Policy", cspPrefix)
	c.ResponseWriter.WriteHeader(code)
}

func (c *cspResetter) Write(b []byte) (int, error) { return c.ResponseWriter.Write(b) }
