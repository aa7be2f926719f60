package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/stepwise-id/stepwise/internal/loadbench"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/web/password"
)

// Workload names, in the order they run in each round; the bare handler
// runs first.
const (
	wlBare         = "bare"
	wlClientCreds  = "client_credentials"
	wlIntrospect   = "introspect_opaque"
	wlIntrospectJW = "introspect_jwt"
	wlAuthCode     = "authorization_code"
	wlPasskey      = "passkey_login"
	wlRisk         = "risk_authorize"
	wlDiscovery    = "discovery"
	wlJWKS         = "jwks"
)

var allWorkloads = []string{wlBare, wlClientCreds, wlIntrospect, wlIntrospectJW, wlAuthCode, wlPasskey, wlRisk, wlDiscovery, wlJWKS}

// benchOptions are the flags of `stepwise bench`.
type benchOptions struct {
	duration    time.Duration
	rounds      int
	warmup      time.Duration
	concurrency int
	workloads   []string
	jsonPath    string
	seedUsers   int
	seedTokens  int
	cpuProfile  string
	memProfile  string
}

func newBenchCommand(g *globals) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an in-process server on loopback and print throughput, latency and the ratio to a bare net/http handler",
		Long: `bench starts the server in-process on 127.0.0.1 (issuer http://localhost:PORT)
on a fresh temporary SQLite database — or, with --db postgres://…, in a fresh
schema that is dropped afterwards — seeds clients and users through the real
APIs, and drives each workload for --duration at --concurrency virtual users.
The "bare" workload is a plain net/http handler on the same machine, same
client and same concurrency: the ceiling every other line is a ratio of.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 6*time.Second, "measured time per workload, split over the rounds")
	f.IntVar(&o.rounds, "rounds", 3, "interleaved rounds: every workload runs once per round for duration/rounds")
	f.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each workload")
	f.IntVar(&o.concurrency, "concurrency", 32, "virtual users (concurrent connections)")
	f.StringSliceVar(&o.workloads, "workloads", allWorkloads, "workloads to run (comma-separated): "+strings.Join(allWorkloads, ", "))
	f.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	f.IntVar(&o.seedUsers, "seed-users", 0, "bulk-insert this many extra users before measuring")
	f.IntVar(&o.seedTokens, "seed-tokens", 0, "bulk-insert this many extra access tokens before measuring")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured periods (server and load generator) to this file")
	f.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile after the run to this file")
	return cmd
}

func runBench(ctx context.Context, g *globals, o benchOptions) error {
	logger := g.logger()
	for _, w := range o.workloads {
		if !slices.Contains(allWorkloads, w) {
			return fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(allWorkloads, ", "))
		}
	}
	if o.concurrency < 1 || o.duration <= 0 || o.rounds < 1 {
		return errors.New("--concurrency, --duration and --rounds must be positive")
	}
	store, backend, cleanup, err := openBenchStore(ctx, g.db, logger)
	if err != nil {
		return err
	}
	defer cleanup()

	b, err := startBench(ctx, store, logger)
	if err != nil {
		return err
	}
	defer b.close()
	b.client = loadbench.NewClient(o.concurrency, b.addr)

	if err := b.seed(ctx, o.concurrency); err != nil {
		return err
	}
	if err := b.seedBulk(ctx, o.seedUsers, o.seedTokens); err != nil {
		return err
	}
	if o.seedUsers+o.seedTokens > 0 {
		// Seeding 10M rows outlasts an access token's lifetime: introspect
		// fresh ones.
		if err := b.issueTokens(ctx); err != nil {
			return err
		}
	}

	rep := &loadbench.Report{
		Started: time.Now().UTC(), Backend: backend, GoVersion: runtime.Version(), CPUs: runtime.GOMAXPROCS(0),
		Duration: o.duration.String(), Rounds: o.rounds, Concurrency: o.concurrency, SeedUsers: o.seedUsers, SeedTokens: o.seedTokens,
	}
	runtime.GC()
	rep.IdleRSS = loadbench.RSS()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// The workloads run in interleaved rounds (bare, client_credentials, …,
	// then again): when other processes load the machine for a while, every
	// workload of a round suffers alike, and each round's ratios are taken
	// against that round's bare handler.
	opts := loadbench.Options{Duration: o.duration / time.Duration(o.rounds), Concurrency: o.concurrency, Warmup: o.warmup}
	workloads := b.workloads()
	rounds := map[string][]loadbench.Result{}
	for range o.rounds {
		for _, name := range o.workloads {
			logger.Debug("running workload", "name", name)
			res, err := loadbench.Run(ctx, workloads[name], opts)
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rounds[name] = append(rounds[name], res)
		}
	}
	ceiling := rounds[wlBare]
	for _, name := range o.workloads {
		rep.Results = append(rep.Results, loadbench.Combine(rounds[name], ceiling))
	}
	if ceiling != nil {
		rep.Ceiling = loadbench.Combine(ceiling, nil).PerSecond
	} else {
		rep.Notes = append(rep.Notes, "the bare workload did not run, so there are no ratios")
	}
	rep.Notes = append(rep.Notes,
		"ops/s counts whole operations (req/op HTTP requests each); p50/p99 are medians over the rounds",
		"cpu/op is the whole process's CPU time (server and load generator) per operation",
		"× bare is the median over rounds of ops/s ÷ the bare handler's ops/s in the same round; × bare (cpu) likewise of the bare handler's cpu/op ÷ this cpu/op")

	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return err
		}
	}
	if err := rep.WriteTable(g.stdout); err != nil {
		return err
	}
	if o.jsonPath != "" {
		return rep.WriteJSON(o.jsonPath)
	}
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memory profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("memory profile: %w", err)
	}
	return nil
}

// openBenchStore opens a fresh, migrated store: a temporary SQLite file, or
// a new schema in the PostgreSQL that dsn names. cleanup removes it.
func openBenchStore(ctx context.Context, dsn string, logger *slog.Logger) (storage.Storage, string, func(), error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "stepwise_bench_" + hex.EncodeToString(b[:])
		if err := pgExec(ctx, dsn, "CREATE SCHEMA "+schema); err != nil {
			return nil, "", nil, fmt.Errorf("create schema %s in %s: %w", schema, redactDSN(dsn), err)
		}
		drop := func() {
			if err := pgExec(context.Background(), dsn, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				logger.Warn("drop benchmark schema", "schema", schema, "err", err)
			}
		}
		sdsn, err := withSearchPath(dsn, schema)
		if err != nil {
			drop()
			return nil, "", nil, err
		}
		s, err := openStore(ctx, sdsn)
		if err != nil {
			drop()
			return nil, "", nil, err
		}
		return s, "postgres (schema " + schema + ")", func() { s.Close(); drop() }, nil
	}
	if dsn != "" && dsn != "stepwise.db" {
		logger.Info("bench uses a fresh temporary SQLite database, not --db", "db", dsn)
	}
	dir, err := os.MkdirTemp("", "stepwise-bench-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("temporary directory: %w", err)
	}
	s, err := openStore(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return s, "sqlite (temporary file)", func() { s.Close(); os.RemoveAll(dir) }, nil
}

// pgExec runs one statement on a short-lived connection.
func pgExec(ctx context.Context, dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// withSearchPath selects schema through the search_path runtime parameter,
// which pgx passes to the server for every pooled connection.
func withSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse postgres DSN: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// bench is a running server plus what the workloads need.
type bench struct {
	store   storage.Storage
	srv     *server
	issuer  string
	addr    string // 127.0.0.1:PORT, which "localhost" is dialled as
	hs      *http.Server
	bare    *http.Server
	bareURL string
	client  *http.Client
	logger  *slog.Logger

	cc, jwtc, rp oauth.Registered
	redirect     string
	opaque, jwt  string
	ccAuth       string // Authorization header value of the cc client
	pwHash       string
	passkeys     *passkey.Service

	// Per virtual user, kept across rounds: a signed-in browser and an
	// enrolled authenticator (setting them up is not what is measured).
	browsers map[int]*signedIn
	authns   map[int]*softauth.Authenticator
}

// signedIn is a virtual user's browser with a password session, and the
// authorization request it repeats.
type signedIn struct {
	c        *http.Client
	authURL  string
	verifier string
}

// benchHTTPServer has the timeouts `serve` uses, so both the server under
// test and the bare ceiling run with production settings.
func benchHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func startBench(ctx context.Context, store storage.Storage, logger *slog.Logger) (*bench, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// WebAuthn needs a domain for its RP ID, so the issuer is localhost;
	// the client dials 127.0.0.1 for it.
	issuer := "http://localhost:" + port
	// The server logs only warnings: an info line per request would
	// measure the log handler.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := newServer(ctx, store, fileConfig{}, issuer, quiet)
	if err != nil {
		ln.Close()
		return nil, err
	}
	b := &bench{store: store, srv: srv, issuer: issuer, addr: ln.Addr().String(), logger: logger,
		redirect: "http://127.0.0.1:9/callback", browsers: map[int]*signedIn{}, authns: map[int]*softauth.Authenticator{}}
	b.hs = benchHTTPServer(srv.handler)
	go func() { _ = b.hs.Serve(ln) }()

	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	b.bareURL = "http://" + bln.Addr().String() + "/"
	b.bare = benchHTTPServer(http.HandlerFunc(bareHandler))
	go func() { _ = b.bare.Serve(bln) }()
	return b, nil
}

// bareHandler is the ceiling: it reads a small form POST and writes a small
// JSON answer, as an introspection endpoint does, with nothing behind it.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, `{"active":true,"client_id":"`+strconv.Itoa(len(r.PostForm.Get("token")))+`"}`)
}

func (b *bench) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if b.hs != nil {
		_ = b.hs.Shutdown(ctx)
	}
	if b.bare != nil {
		_ = b.bare.Shutdown(ctx)
	}
	if b.client != nil {
		b.client.CloseIdleConnections()
	}
}

// seed registers the clients through the client registry, obtains the
// tokens to introspect through the token endpoint, and creates the users of
// the browser workloads (one per virtual user).
func (b *bench) seed(ctx context.Context, vus int) error {
	reg := b.srv.registry
	var err error
	if b.cc, err = reg.Create(ctx, oauth.Metadata{ClientName: "bench machine client",
		GrantTypes: []string{"client_credentials"}, Scope: oauth.ScopeList{"api.read"}}); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	if b.jwtc, err = reg.Create(ctx, oauth.Metadata{ClientName: "bench jwt client",
		GrantTypes: []string{"client_credentials"}, Scope: oauth.ScopeList{"api.read"}, AccessTokenFormat: "jwt"}); err != nil {
		return fmt.Errorf("create jwt client: %w", err)
	}
	if b.rp, err = reg.Create(ctx, oauth.Metadata{ClientName: "bench web app", RedirectURIs: []string{b.redirect},
		GrantTypes: []string{"authorization_code"}, Scope: oauth.ScopeList{"openid", "profile"}}); err != nil {
		return fmt.Errorf("create web client: %w", err)
	}
	b.ccAuth = basicAuth(b.cc)
	if err := b.issueTokens(ctx); err != nil {
		return err
	}
	// One argon2id hash serves every benchmark user: they share a password.
	if b.pwHash, err = password.Hash(benchPassword); err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	// A second passkey service on the same store and issuer enrols the
	// benchmark users' passkeys in-process; logins then go through HTTP.
	if b.passkeys, err = passkey.New(passkey.Config{Issuer: b.issuer}, b.store, slog.New(slog.DiscardHandler)); err != nil {
		b.logger.Warn("passkeys unavailable", "err", err)
	}
	now := time.Now().UTC()
	for i := range vus {
		for _, kind := range []string{"web", "pk"} {
			u := storage.User{ID: fmt.Sprintf("bench-%s-%d", kind, i), Username: fmt.Sprintf("bench-%s-%d", kind, i),
				PasswordHash: b.pwHash, CreatedAt: now, UpdatedAt: now}
			if err := b.store.CreateUser(ctx, u); err != nil {
				return fmt.Errorf("create user: %w", err)
			}
		}
		// Consent is pre-granted, so the round trip has no consent page.
		if err := b.store.PutConsent(ctx, storage.Consent{UserID: fmt.Sprintf("bench-web-%d", i), ClientID: b.rp.ClientID,
			Scopes: []string{"openid", "profile"}, GrantedAt: now}); err != nil {
			return fmt.Errorf("grant consent: %w", err)
		}
	}
	return nil
}

// issueTokens gets the opaque and the JWT access token the introspection
// workloads introspect.
func (b *bench) issueTokens(ctx context.Context) error {
	var err error
	if b.opaque, err = b.clientCredentials(ctx, basicAuth(b.cc)); err != nil {
		return err
	}
	if b.jwt, err = b.clientCredentials(ctx, basicAuth(b.jwtc)); err != nil {
		return err
	}
	if strings.Count(b.jwt, ".") != 2 {
		return errors.New("the jwt client did not get a JWT access token")
	}
	return nil
}

const benchPassword = "benchmark passphrase, not a secret"

func basicAuth(c oauth.Registered) string {
	raw := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.ClientSecret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))
}

// clientCredentials gets an access token for the client whose basic
// authorization header is auth.
func (b *bench) clientCredentials(ctx context.Context, auth string) (string, error) {
	body, err := b.post(ctx, b.issuer+oauth.PathToken, auth, "grant_type=client_credentials&scope=api.read", `"access_token"`)
	if err != nil {
		return "", fmt.Errorf("client_credentials: %w", err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("client_credentials: %w", err)
	}
	return tr.AccessToken, nil
}

// post sends a form POST and checks for 200 and a fragment of the body.
func (b *bench) post(ctx context.Context, u, auth, form, want string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return b.do(req, http.StatusOK, want)
}

// do runs req and checks the status and a fragment of the body.
func (b *bench) do(req *http.Request, status int, want string) ([]byte, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != status || (want != "" && !bytes.Contains(body, []byte(want))) {
		return nil, fmt.Errorf("%s %s: status %d: %.200s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return body, nil
}

// same returns a worker constructor whose every virtual user runs op.
func same(op loadbench.Op) func(context.Context, int) (loadbench.Op, error) {
	return func(context.Context, int) (loadbench.Op, error) { return op, nil }
}

func (b *bench) workloads() map[string]loadbench.Workload {
	introspect := func(token string) loadbench.Op {
		form := url.Values{"token": {token}}.Encode()
		return func(ctx context.Context) error {
			_, err := b.post(ctx, b.issuer+oauth.PathIntrospect, b.ccAuth, form, `"active":true`)
			return err
		}
	}
	get := func(path, want string) loadbench.Op {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.issuer+path, nil)
			if err != nil {
				return err
			}
			_, err = b.do(req, http.StatusOK, want)
			return err
		}
	}
	bareForm := url.Values{"token": {b.opaque}}.Encode()
	ws := map[string]loadbench.Workload{
		wlBare: {Name: wlBare, Note: "plain net/http handler: parse a form POST (same body and Authorization header as introspection), write a small JSON",
			NewWorker: same(func(ctx context.Context) error {
				_, err := b.post(ctx, b.bareURL, b.ccAuth, bareForm, `"active":true`)
				return err
			})},
		wlClientCreds: {Name: wlClientCreds, Note: "POST /oauth2/token grant_type=client_credentials, client_secret_basic, opaque token (one row written per token)",
			NewWorker: same(func(ctx context.Context) error {
				_, err := b.post(ctx, b.issuer+oauth.PathToken, b.ccAuth, "grant_type=client_credentials&scope=api.read", `"access_token"`)
				return err
			})},
		wlIntrospect: {Name: wlIntrospect, Note: "POST /oauth2/introspect of an opaque access token, caller authenticated with client_secret_basic",
			NewWorker: same(introspect(b.opaque))},
		wlIntrospectJW: {Name: wlIntrospectJW, Note: "POST /oauth2/introspect of an RFC 9068 JWT access token (client with access_token_format jwt)",
			NewWorker: same(introspect(b.jwt))},
		wlAuthCode: {Name: wlAuthCode, Requests: 2, Note: "GET /oauth2/authorize with a signed-in browser session and pre-granted consent (PKCE S256) → code → POST /oauth2/token (ID token signed)",
			NewWorker: b.authCodeWorker},
		wlPasskey: {Name: wlPasskey, Requests: 2, Note: "POST /webauthn/login/begin + /webauthn/login/finish (discoverable login, ES256 software authenticator signing in the load generator; each login starts a browser session)",
			NewWorker: b.passkeyWorker},
		wlRisk: {Name: wlRisk, Note: "GET /oauth2/authorize → code only, each request from a client address new to the user (X-Forwarded-For in 198.18.0.0/15 via the trusted loopback proxy): the risk gate scores it afresh and records its decision",
			NewWorker: b.riskWorker},
		wlDiscovery: {Name: wlDiscovery, Note: "GET /.well-known/openid-configuration",
			NewWorker: same(get(oauth.PathDiscovery, `"issuer"`))},
		wlJWKS: {Name: wlJWKS, Note: "GET /oauth2/jwks", NewWorker: same(get(oauth.PathJWKS, `"keys"`))},
	}
	if b.passkeys == nil {
		w := ws[wlPasskey]
		w.Skip = "passkeys are disabled on this server"
		ws[wlPasskey] = w
	}
	return ws
}

// browserClient is a virtual user's browser: the shared transport (so
// connections are pooled the same way) with its own cookie jar.
func (b *bench) browserClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *b.client
	c.Jar = jar
	return &c
}

// signIn returns virtual user id's browser, signing it in with a password
// the first time (through the authorization request, as a browser would).
func (b *bench) signIn(ctx context.Context, id int) (*signedIn, error) {
	if si := b.browsers[id]; si != nil {
		return si, nil
	}
	c := b.browserClient()
	username := fmt.Sprintf("bench-web-%d", id)
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {b.rp.ClientID}, "redirect_uri": {b.redirect},
		"scope": {"openid profile"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "state": {"bench-state-value"}, "nonce": {"bench-nonce-value"},
	}
	si := &signedIn{c: c, authURL: b.issuer + oauth.PathAuthorize + "?" + q.Encode(), verifier: verifier}

	// authorize sends the browser to /login?req=…; post the form there.
	loc, err := b.follow(ctx, c, si.authURL, nil)
	if err != nil {
		return nil, err
	}
	lu, err := url.Parse(loc)
	if err != nil || lu.Path != "/login" {
		return nil, fmt.Errorf("authorize without a session went to %q, want /login", loc)
	}
	form := url.Values{"req": {lu.Query().Get("req")}, "username": {username}, "password": {benchPassword}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.issuer+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.issuer)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		return nil, fmt.Errorf("password login for %s: status %d", username, resp.StatusCode)
	}
	if _, err := b.follow(ctx, c, resp.Header.Get("Location"), nil); err != nil {
		return nil, err
	}
	b.browsers[id] = si
	return si, nil
}

// authorize runs the authorization request with the session and returns
// the code; hdr adds request headers.
func (b *bench) authorize(ctx context.Context, si *signedIn, hdr http.Header) (string, error) {
	loc, err := b.follow(ctx, si.c, si.authURL, hdr)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, b.redirect) || u.Query().Get("code") == "" {
		return "", fmt.Errorf("authorize ended at %q, not at the client with a code", loc)
	}
	return u.Query().Get("code"), nil
}

// authCodeWorker: each operation runs authorize → code → token with
// virtual user id's session.
func (b *bench) authCodeWorker(ctx context.Context, id int) (loadbench.Op, error) {
	si, err := b.signIn(ctx, id)
	if err != nil {
		return nil, err
	}
	rpAuth := basicAuth(b.rp)
	op := func(ctx context.Context) error {
		code, err := b.authorize(ctx, si, nil)
		if err != nil {
			return err
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {b.redirect}, "code_verifier": {si.verifier}}.Encode()
		_, err = b.post(ctx, b.issuer+oauth.PathToken, rpAuth, form, `"id_token"`)
		return err
	}
	// Check the session works before timing starts.
	if err := op(ctx); err != nil {
		return nil, fmt.Errorf("first round trip for virtual user %d: %w", id, err)
	}
	return op, nil
}

// riskWorker: each operation is the authorize leg alone (authorize → code)
// from a client address the user has never used: X-Forwarded-For from the
// trusted loopback proxy names a new address in 198.18.0.0/15 (RFC 2544's
// benchmarking range) every time, so the risk gate cannot reuse a recent
// decision — it scores the request against the user's history and records
// the decision, as it does for every new network.
func (b *bench) riskWorker(ctx context.Context, id int) (loadbench.Op, error) {
	si, err := b.signIn(ctx, id)
	if err != nil {
		return nil, err
	}
	n := uint32(id) << 20
	op := func(ctx context.Context) error {
		n++
		hdr := http.Header{"X-Forwarded-For": {fmt.Sprintf("198.%d.%d.%d", 18+(n>>16)&1, (n>>8)&0xff, n&0xff)}}
		_, err := b.authorize(ctx, si, hdr)
		return err
	}
	if err := op(ctx); err != nil {
		return nil, fmt.Errorf("first authorization for virtual user %d: %w", id, err)
	}
	return op, nil
}

// follow GETs u and follows same-server redirects; it returns the first
// Location that leaves the server (the client's redirect URI) or a page
// the browser would render (/login).
func (b *bench) follow(ctx context.Context, c *http.Client, u string, hdr http.Header) (string, error) {
	for range 5 {
		if !strings.HasPrefix(u, b.issuer) {
			if strings.HasPrefix(u, "/") {
				u = b.issuer + u
			} else {
				return u, nil
			}
		}
		if strings.HasPrefix(u, b.issuer+"/login") {
			return u, nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "", err
		}
		maps.Copy(req.Header, hdr)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 3 {
			return "", fmt.Errorf("GET %s: status %d", req.URL.Path, resp.StatusCode)
		}
		u = resp.Header.Get("Location")
	}
	return "", errors.New("too many redirects")
}

// passkeyWorker enrols a software authenticator for virtual user id
// in-process (not measured); each operation is a discoverable login
// through the web layer's JSON endpoints.
func (b *bench) passkeyWorker(ctx context.Context, id int) (loadbench.Op, error) {
	userID := fmt.Sprintf("bench-pk-%d", id)
	a, err := b.enrol(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	c := b.browserClient()
	call := func(ctx context.Context, path string, in any, want string) ([]byte, error) {
		raw, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.issuer+path, bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", b.issuer)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(want)) {
			return nil, fmt.Errorf("POST %s: status %d: %.200s", path, resp.StatusCode, out)
		}
		return out, nil
	}
	op := func(ctx context.Context) error {
		out, err := call(ctx, "/webauthn/login/begin", struct{}{}, `"options"`)
		if err != nil {
			return err
		}
		var begin struct {
			Options json.RawMessage `json:"options"`
		}
		if err := json.Unmarshal(out, &begin); err != nil {
			return err
		}
		cred, err := a.Assert(begin.Options, softauth.Synced)
		if err != nil {
			return err
		}
		_, err = call(ctx, "/webauthn/login/finish", struct {
			Credential json.RawMessage `json:"credential"`
		}{cred}, `"redirect"`)
		return err
	}
	if err := op(ctx); err != nil {
		return nil, fmt.Errorf("first passkey login for %s: %w", userID, err)
	}
	return op, nil
}

// bulkBatch is how many rows one seeding transaction inserts.
const bulkBatch = 20000

// seedBulk fills the store with users extra users and tokens extra access
// tokens, inserted straight into storage in large transactions, so the
// workloads can be measured against a big store (1M users / 10M tokens).
// The tokens are copies of a real one under fresh random signatures: each
// decodes like a token the server issued.
func (b *bench) seedBulk(ctx context.Context, users, tokens int) error {
	now := time.Now().UTC()
	if users > 0 {
		err := b.inBatches(ctx, "users", users, func(ctx context.Context, i int) error {
			id := "seed-user-" + strconv.Itoa(i)
			return b.store.CreateUser(ctx, storage.User{ID: id, Username: id, Email: id + "@example.com",
				CreatedAt: now, UpdatedAt: now})
		})
		if err != nil {
			return err
		}
	}
	if tokens > 0 {
		_, sig, ok := strings.Cut(b.opaque, ".")
		if !ok {
			return errors.New("seed tokens: the opaque token has no signature part")
		}
		tmpl, err := b.store.GetRequest(ctx, storage.KindAccessToken, sig)
		if err != nil {
			return fmt.Errorf("seed tokens: load template: %w", err)
		}
		var rnd [32]byte
		err = b.inBatches(ctx, "tokens", tokens, func(ctx context.Context, i int) error {
			_, _ = rand.Read(rnd[:])
			row := tmpl
			row.Signature = base64.RawURLEncoding.EncodeToString(rnd[:])
			row.RequestID = "seed-" + strconv.Itoa(i)
			return b.store.CreateRequest(ctx, row)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// inBatches calls insert n times, bulkBatch calls per transaction.
func (b *bench) inBatches(ctx context.Context, what string, n int, insert func(context.Context, int) error) error {
	start := time.Now()
	for lo := 0; lo < n; lo += bulkBatch {
		tctx, err := b.store.BeginTx(ctx)
		if err != nil {
			return fmt.Errorf("seed %s: %w", what, err)
		}
		for i := lo; i < min(lo+bulkBatch, n); i++ {
			if err := insert(tctx, i); err != nil {
				_ = b.store.Rollback(tctx)
				return fmt.Errorf("seed %s: %w", what, err)
			}
		}
		if err := b.store.Commit(tctx); err != nil {
			return fmt.Errorf("seed %s: %w", what, err)
		}
		if done := min(lo+bulkBatch, n); done%(10*bulkBatch) == 0 || done == n {
			b.logger.Info("seeded", "what", what, "rows", done, "of", n, "elapsed", time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// enrol returns virtual user id's authenticator, enrolling a passkey for
// userID in-process the first time.
func (b *bench) enrol(ctx context.Context, userID string, id int) (*softauth.Authenticator, error) {
	if a := b.authns[id]; a != nil {
		return a, nil
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(b.issuer, "http://"))
	a, err := softauth.New(host, b.issuer, uuid.New())
	if err != nil {
		return nil, err
	}
	cer, err := b.passkeys.BeginRegistration(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("begin registration: %w", err)
	}
	a.CredProps = true // the server asks for credProps when registering
	body, err := a.Register(cer.Options, softauth.Synced)
	if err != nil {
		return nil, err
	}
	if _, err := b.passkeys.FinishRegistration(ctx, userID, passkey.Response{State: cer.State, Credential: body}, "bench"); err != nil {
		return nil, fmt.Errorf("finish registration: %w", err)
	}
	b.authns[id] = a
	return a, nil
}
