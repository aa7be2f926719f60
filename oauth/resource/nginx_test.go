package resource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

// lockedBuffer collects nginx's stderr from its own goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNginxAuthRequest runs Debian's nginx on loopback with auth_request
// pointing at /gateway/check, in front of a trivial upstream.
func TestNginxAuthRequest(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("STEPWISE_REQUIRE_ALL") == "1" {
			t.Fatal("nginx not installed (apt-get install nginx-light) and STEPWISE_REQUIRE_ALL=1")
		}
		t.Skip("needs nginx (apt-get install nginx-light)")
	}

	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /reports/{rest...}", Scopes: []string{"reports:read"}},
	}, RoutesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: ti.verifier(nil), Routes: tbl, Now: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(GatewayPath, gw)
	stepwise := httptest.NewServer(mux)
	defer stepwise.Close()

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream %s %s sub=%s client=%s acr=%s scope=%s",
			r.Method, r.URL.Path, r.Header.Get(HeaderSubject), r.Header.Get(HeaderClient), r.Header.Get(HeaderACR), r.Header.Get(HeaderScope))
	}))
	defer upstream.Close()

	dir := t.TempDir()
	listen := freeLoopbackAddr(t)
	tmpl := template.Must(template.ParseFiles(filepath.Join("testdata", "nginx.conf.tmpl")))
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, map[string]string{
		"Dir": dir, "Listen": listen,
		"Stepwise": strings.TrimPrefix(stepwise.URL, "http://"),
		"Upstream": strings.TrimPrefix(upstream.URL, "http://"),
	}); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", confPath, "-e", "stderr")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	}()
	waitListening(t, listen, exited, logs)

	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + listen
	good := ti.mint(ti.baseClaims())
	weak := ti.mint(ti.with(map[string]any{"acr": "urn:stepwise:acr:pwd", "amr": []string{"pwd"}}))
	opaqueWeak := ti.issueOpaque(ti.with(map[string]any{"acr": "urn:stepwise:acr:passkey"}))

	cases := []struct {
		name, method, path, token string
		spoof                     bool
		status                    int
		challenge                 string
		body                      string
	}{
		{"good token reaches the upstream", "POST", "/payments/42", good, false, 200, "",
			"upstream POST /payments/42 sub=alice client=web-app acr=phr scope=payments:write accounts:read"},
		{"identity headers from the client are replaced", "GET", "/hello", good, true, 200, "",
			"upstream GET /hello sub=alice client=web-app acr=phr scope=payments:write accounts:read"},
		{"weak acr gets the RFC 9470 challenge", "POST", "/payments/42", weak, false, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`, ""},
		{"weak opaque token too", "POST", "/payments/42", opaqueWeak, false, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`, ""},
		{"missing scope is 403 with its challenge", "GET", "/reports/q1", good, false, 403,
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="reports:read"`, ""},
		{"no token", "GET", "/hello", "", false, 401, "Bearer", ""},
		{"invalid token", "GET", "/hello", "not-a-token", false, 401,
			`Bearer error="invalid_token", error_description="The access token is invalid"`, ""},
		{"dot segments are resolved before matching", "POST", "/public/../payments/42", weak, false, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.path != req.URL.Path {
				req.URL.Opaque = tc.path // send the path as written
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.spoof {
				req.Header.Set(HeaderSubject, "mallory")
				req.Header.Set(HeaderACR, "phrh")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Values("WWW-Authenticate"); tc.challenge == "" && len(got) != 0 ||
				tc.challenge != "" && (len(got) != 1 || got[0] != tc.challenge) {
				t.Fatalf("WWW-Authenticate\n got  %q\n want %q", got, tc.challenge)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Fatalf("body %q, want %q", body, tc.body)
			}
		})
	}
}

// freeLoopbackAddr returns a loopback address nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// waitListening waits until nginx accepts connections, or fails the test
// with nginx's output when it exits first.
func waitListening(t *testing.T, addr string, exited <-chan error, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nginx did not listen on %s\n%s", addr, logs.String())
}
