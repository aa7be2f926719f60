package resource

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestChallengeHeader(t *testing.T) {
	cases := []struct {
		name  string
		ch    Challenge
		realm string
		want  string
	}{
		{"no token (RFC 6750 §3.1: no error code)", Challenge{Status: 401}, "", `Bearer`},
		{"no token, realm", Challenge{Status: 401}, "api", `Bearer realm="api"`},
		{"invalid token", Challenge{Status: 401, Code: CodeInvalidToken, Description: "The access token expired"}, "",
			`Bearer error="invalid_token", error_description="The access token expired"`},
		{"step-up (RFC 9470 §3)", Challenge{Status: 401, Code: CodeInsufficientUserAuthentication, Description: "A stronger authentication is required", ACRValues: []string{"phr"}, MaxAge: 300}, "",
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
		{"step-up, max_age only", Challenge{Status: 401, Code: CodeInsufficientUserAuthentication, MaxAge: 5}, "",
			`Bearer error="insufficient_user_authentication", max_age=5`},
		{"step-up, several acr values", Challenge{Status: 401, Code: CodeInsufficientUserAuthentication, ACRValues: []string{"phrh", "phr"}}, "r",
			`Bearer realm="r", error="insufficient_user_authentication", acr_values="phrh phr"`},
		{"scope", Challenge{Status: 403, Code: CodeInsufficientScope, Description: "The access token lacks a required scope", Scope: []string{"payments:write", "accounts:read"}}, "",
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:write accounts:read"`},
		{"escaping", Challenge{Status: 401, Code: CodeInvalidToken, Description: "say \"hi\" \\ bye\r\nX-Evil: 1\x7fé"}, `re"alm`,
			`Bearer realm="re\"alm", error="invalid_token", error_description="say \"hi\" \\ bye??X-Evil: 1???"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ch.Header(tc.realm); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestChallengeWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	(&Challenge{Status: 403, Code: CodeInsufficientScope, Scope: []string{"x"}}).Write(rec, "")
	if rec.Code != 403 || rec.Header().Get("WWW-Authenticate") != `Bearer error="insufficient_scope", scope="x"` ||
		rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), `"error":"insufficient_scope"`) {
		t.Fatalf("%d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		name    string
		headers []string
		token   string
		status  int
		code    string
	}{
		{"none", nil, "", 401, ""},
		{"bearer", []string{"Bearer abc.DEF-_~+/xyz=="}, "abc.DEF-_~+/xyz==", 0, ""},
		{"scheme is case-insensitive", []string{"bEARER tok"}, "tok", 0, ""},
		{"extra spaces", []string{"Bearer   tok  "}, "tok", 0, ""},
		{"basic is not bearer", []string{"Basic dXNlcjpwYXNz"}, "", 401, ""},
		{"dpop scheme is not bearer", []string{"DPoP tok"}, "", 401, ""},
		{"bare scheme", []string{"Bearer"}, "", 400, CodeInvalidRequest},
		{"empty token", []string{"Bearer "}, "", 400, CodeInvalidRequest},
		{"two tokens", []string{"Bearer a b"}, "", 400, CodeInvalidRequest},
		{"bad characters", []string{`Bearer a"b`}, "", 400, CodeInvalidRequest},
		{"padding in the middle", []string{"Bearer a=b"}, "", 400, CodeInvalidRequest},
		{"only padding", []string{"Bearer =="}, "", 400, CodeInvalidRequest},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", 400, CodeInvalidRequest},
		{"huge", []string{"Bearer " + strings.Repeat("a", maxTokenLen+1)}, "", 400, CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.headers {
				h.Add("Authorization", v)
			}
			tok, ch := bearerToken(h)
			if tok != tc.token {
				t.Fatalf("token %q, want %q", tok, tc.token)
			}
			if tc.status == 0 {
				if ch != nil {
					t.Fatalf("unexpected challenge %v", ch)
				}
				return
			}
			if ch == nil || ch.Status != tc.status || ch.Code != tc.code {
				t.Fatalf("challenge %+v, want %d %q", ch, tc.status, tc.code)
			}
		})
	}
}

func TestOrderedLadder(t *testing.T) {
	l := DefaultLadder()
	cases := []struct {
		have, want string
		ok         bool
	}{
		{"phr", "phr", true},
		{"phrh", "phr", true},
		{"phrh", "urn:stepwise:acr:pwd", true},
		{"urn:stepwise:acr:passkey", "urn:stepwise:acr:pwd", true},
		{"urn:stepwise:acr:pwd", "phr", false},
		{"urn:stepwise:acr:passkey", "phr", false},
		{"phr", "phrh", false},
		{"", "urn:stepwise:acr:pwd", false},
		{"urn:stepwise:acr:client", "urn:stepwise:acr:pwd", false},
		{"phr", "unknown", false},
		{"unknown", "unknown", false},
	}
	for _, tc := range cases {
		if got := l.Satisfies(tc.have, tc.want); got != tc.ok {
			t.Errorf("Satisfies(%q, %q) = %v, want %v", tc.have, tc.want, got, tc.ok)
		}
	}
	custom := OrderedLadder{"low", "mid", "high", "top"}
	if !custom.Satisfies("top", "mid") || custom.Satisfies("low", "mid") {
		t.Error("custom ladder order not honoured")
	}
}
