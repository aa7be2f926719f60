package resource

import (
	"strings"
	"testing"
	"time"
)

func testTable(t testing.TB, def string) *Table {
	t.Helper()
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /payments/{id}", Scopes: []string{"payments:read"}},
		{Match: "/admin/", ACR: "phrh"},
		{Match: "DELETE /accounts/{id}", Scopes: []string{"accounts:write"}, MaxAge: 60},
		{Match: "GET /reports/{$}", ACR: "urn:stepwise:acr:passkey"},
		{Match: "/files/{name}", Scopes: []string{"files"}},
	}, RoutesOptions{Default: def})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestParseRoutesErrors(t *testing.T) {
	cases := []struct {
		name   string
		routes []RouteConfig
		def    string
		want   string
	}{
		{"empty match", []RouteConfig{{Match: " "}}, "", "match is empty"},
		{"host pattern", []RouteConfig{{Match: "GET api.example/x"}}, "", "no host"},
		{"relative", []RouteConfig{{Match: "payments"}}, "", "no host"},
		{"bad wildcard", []RouteConfig{{Match: "GET /a/{x"}}, "", "invalid pattern"},
		{"bad method", []RouteConfig{{Match: "G@T /a"}}, "", "invalid pattern"},
		{"duplicate", []RouteConfig{{Match: "GET /a"}, {Match: "GET /a"}}, "", "routes[1]"},
		{"conflict", []RouteConfig{{Match: "GET /a/{x}"}, {Match: "GET /{y}/b"}}, "", "routes[1]"},
		{"unknown acr", []RouteConfig{{Match: "/a", ACR: "aal2"}}, "", `acr "aal2" is not on the acr ladder`},
		{"bad scope", []RouteConfig{{Match: "/a", Scopes: []string{"two words"}}}, "", "not a valid scope token"},
		{"quote in scope", []RouteConfig{{Match: "/a", Scopes: []string{`a"b`}}}, "", "not a valid scope token"},
		{"negative max_age", []RouteConfig{{Match: "/a", MaxAge: -1}}, "", "max_age"},
		{"bad default", nil, "maybe", "routes_default"},
		{"all errors reported", []RouteConfig{{Match: "/a", ACR: "x"}, {Match: "/b", MaxAge: -2}}, "", "routes[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRoutes(tc.routes, RoutesOptions{Default: tc.def})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := ParseRoutes(nil, RoutesOptions{}); err != nil {
		t.Fatalf("empty table: %v", err)
	}
}

func TestMatch(t *testing.T) {
	tbl := testTable(t, "")
	cases := []struct {
		method, path string
		want         []string // patterns
	}{
		{"POST", "/payments/42", []string{"POST /payments/{rest...}"}},
		{"POST", "/payments/", []string{"POST /payments/{rest...}"}},
		{"POST", "/payments", []string{"POST /payments/{rest...}"}}, // the mux would redirect to /payments/
		{"post", "/payments/42", []string{"POST /payments/{rest...}"}},
		{"GET", "/payments/42", []string{"GET /payments/{id}"}},
		{"HEAD", "/payments/42", []string{"GET /payments/{id}"}},
		{"PUT", "/payments/42", nil},
		{"GET", "/payments/42/refunds", nil},
		{"PATCH", "/admin/users/1", []string{"/admin/"}},
		{"GET", "/admin", []string{"/admin/"}},
		{"GET", "/reports/", []string{"GET /reports/{$}"}},
		{"GET", "/reports/q1", nil},
		{"GET", "/", nil},
		// Encodings and dot segments cannot dodge a route.
		{"GET", "/public/../admin/x", []string{"/admin/"}},
		{"GET", "/public/%2e%2e/admin/x", []string{"/admin/"}},
		{"GET", "//admin//x", []string{"/admin/"}},
		{"POST", "/pay%6Dents/1", []string{"POST /payments/{rest...}"}},
		{"GET", "/ad%6din/", []string{"/admin/"}},
		// %2F: one segment for the mux ("/files/{name}"), two once decoded
		// (matches nothing else here): the route applies.
		{"GET", "/files/a%2Fb", []string{"/files/{name}"}},
		// %2F making /payments/x look like one segment elsewhere.
		{"POST", "/payments%2Fx", []string{"POST /payments/{rest...}"}},
		{"GET", "/bad%zzescape", nil},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var got []string
			for _, r := range tbl.Match(tc.method, tc.path) {
				got = append(got, r.Pattern)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	now := time.Now()
	tbl := testTable(t, "")
	deny := testTable(t, DefaultDeny)
	claims := func(acr string, authAgo time.Duration, scopes ...string) *Claims {
		c := &Claims{Subject: "alice", ACR: acr, Scopes: scopes}
		if authAgo >= 0 {
			c.AuthTime = now.Add(-authAgo)
		}
		return c
	}
	const pwd, pk = "urn:stepwise:acr:pwd", "urn:stepwise:acr:passkey"
	cases := []struct {
		name         string
		tbl          *Table
		method, path string
		c            *Claims
		status       int
		header       string
	}{
		{"phr, fresh, scope", tbl, "POST", "/payments/1", claims("phr", time.Minute, "payments:write"), 0, ""},
		{"phrh satisfies phr", tbl, "POST", "/payments/1", claims("phrh", time.Minute, "payments:write"), 0, ""},
		{"password is too weak", tbl, "POST", "/payments/1", claims(pwd, time.Minute, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"passkey without UV is too weak", tbl, "POST", "/payments/1", claims(pk, time.Minute, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"no acr", tbl, "POST", "/payments/1", claims("", time.Minute, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"machine acr is not on the ladder", tbl, "POST", "/payments/1", claims("urn:stepwise:acr:client", 0, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"too old", tbl, "POST", "/payments/1", claims("phrh", 301*time.Second, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", acr_values="phr", max_age=300`},
		{"exactly max_age", tbl, "POST", "/payments/1", claims("phr", 300*time.Second, "payments:write"), 0, ""},
		{"no auth_time with max_age", tbl, "POST", "/payments/1", claims("phr", -1, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", acr_values="phr", max_age=300`},
		{"acr before scope", tbl, "POST", "/payments/1", claims(pwd, time.Minute), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"missing scope", tbl, "POST", "/payments/1", claims("phr", time.Minute, "accounts:read"), 403,
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:write"`},
		{"max_age only, too old", tbl, "DELETE", "/accounts/7", claims(pwd, 2*time.Minute, "accounts:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age=60`},
		{"max_age only, fresh password", tbl, "DELETE", "/accounts/7", claims(pwd, 10*time.Second, "accounts:write"), 0, ""},
		{"acr only", tbl, "GET", "/admin/x", claims("phr", time.Hour), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phrh"`},
		{"no route: any valid token", tbl, "GET", "/elsewhere", claims(pwd, time.Hour), 0, ""},
		{"no route, default deny", deny, "GET", "/elsewhere", claims("phrh", 0, "payments:write"), 403,
			`Bearer error="insufficient_scope", error_description="No route allows this request"`},
		{"route, default deny", deny, "GET", "/payments/1", claims(pwd, time.Hour, "payments:read"), 0, ""},
		{"dot segments do not dodge", tbl, "POST", "/x/../payments/1", claims(pwd, time.Minute, "payments:write"), 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := tc.tbl.Authorize(tc.method, tc.path, tc.c, now)
			if tc.status == 0 {
				if ch != nil {
					t.Fatalf("want allowed, got %v", ch.Header(""))
				}
				return
			}
			if ch == nil {
				t.Fatalf("want %d, got allowed", tc.status)
			}
			if ch.Status != tc.status || ch.Header("") != tc.header {
				t.Fatalf("got  %d %s\nwant %d %s", ch.Status, ch.Header(""), tc.status, tc.header)
			}
		})
	}
}

func TestRoutesCopy(t *testing.T) {
	tbl := testTable(t, DefaultDeny)
	rs := tbl.Routes()
	rs[0].Scopes[0] = "changed"
	if tbl.Routes()[0].Scopes[0] != "payments:write" || !tbl.DefaultDeny() {
		t.Fatal("Routes must return a copy")
	}
	if rs[0].MaxAge != 300*time.Second {
		t.Fatalf("max_age %v", rs[0].MaxAge)
	}
}
