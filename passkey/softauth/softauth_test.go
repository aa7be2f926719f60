package softauth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/passkey/softauth"
)

func TestGet(t *testing.T) {
	a, err := softauth.New("example.com", "https://example.com", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	a.UserHandle = []byte("user-1")
	tests := []struct {
		name      string
		fixed     bool
		flags     softauth.Flags
		wantCount uint32
	}{
		{"counts", false, softauth.UP | softauth.UV, 1},
		{"counts again", false, softauth.UP, 2},
		{"fixed", true, softauth.Synced, 2},
	}
	for _, tt := range tests {
		a.FixedCounter = tt.fixed
		body, err := a.Get("Y2hhbGxlbmdlLWNoYWxsZW5nZQ", tt.flags)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			RawID    string `json:"rawId"`
			Response struct {
				AuthenticatorData string `json:"authenticatorData"`
				ClientDataJSON    string `json:"clientDataJSON"`
				UserHandle        string `json:"userHandle"`
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		ad, _ := base64.RawURLEncoding.DecodeString(m.Response.AuthenticatorData)
		h := sha256.Sum256([]byte("example.com"))
		if len(ad) != 37 || !bytes.Equal(ad[:32], h[:]) || softauth.Flags(ad[32]) != tt.flags || binary.BigEndian.Uint32(ad[33:]) != tt.wantCount {
			t.Errorf("%s: authenticator data %x", tt.name, ad)
		}
		if m.RawID != base64.RawURLEncoding.EncodeToString(a.CredentialID()) || m.Response.UserHandle != base64.RawURLEncoding.EncodeToString([]byte("user-1")) {
			t.Errorf("%s: ids %q %q", tt.name, m.RawID, m.Response.UserHandle)
		}
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name     string
		options  string
		wantErr  bool
		wantUser []byte
	}{
		{"registration", `{"publicKey":{"challenge":"abc","user":{"id":"dXNlcg"}}}`, false, []byte("user")},
		{"login", `{"publicKey":{"challenge":"abc"},"mediation":"conditional"}`, false, nil},
		{"no challenge", `{"publicKey":{}}`, true, nil},
		{"bad user id", `{"publicKey":{"challenge":"abc","user":{"id":"!!"}}}`, true, nil},
		{"not JSON", `nope`, true, nil},
	}
	for _, tt := range tests {
		o, err := softauth.ParseOptions([]byte(tt.options))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v", tt.name, err)
			continue
		}
		if err == nil && (o.Challenge != "abc" || !bytes.Equal(o.UserID, tt.wantUser)) {
			t.Errorf("%s: options = %+v", tt.name, o)
		}
	}
}
