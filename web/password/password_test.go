package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	encoded, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected encoding %q", encoded)
	}
	if NeedsRehash(encoded) {
		t.Error("fresh hash reports NeedsRehash")
	}
	other, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if other == encoded {
		t.Error("two hashes of one password are equal: salt not random")
	}

	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"right", "correct horse battery staple", true},
		{"wrong", "correct horse battery stapler", false},
		{"empty", "", false},
		{"case", "Correct horse battery staple", false},
		{"too long", strings.Repeat("a", MaxLength+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(encoded, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHashTooLong(t *testing.T) {
	if _, err := Hash(strings.Repeat("x", MaxLength+1)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

func TestVerifyOtherParameters(t *testing.T) {
	// A hash made with cheaper parameters still verifies, and asks for a rehash.
	p := params{memory: 64, time: 1, parallelism: 1, salt: []byte("0123456789abcdef")}
	p.key = []byte("placeholder-placeholder-32-bytes")
	encoded := p.encode()
	if _, err := Verify(encoded, "x"); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !NeedsRehash(encoded) {
		t.Error("NeedsRehash = false for non-default parameters")
	}
}

func TestParseMalformed(t *testing.T) {
	good, err := Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	bad := []string{
		"",
		"$",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$",
		"$argon2id$v=19$m=19456,t=2,p=1$$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "==",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$extra",
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key,
	}
	for _, enc := range bad {
		ok, err := Verify(enc, "pw")
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformed", enc, ok, err)
		}
		if !NeedsRehash(enc) {
			t.Errorf("NeedsRehash(%q) = false", enc)
		}
	}
}

func TestDummy(t *testing.T) {
	if Dummy("anything") {
		t.Fatal("Dummy returned true")
	}
}

// FuzzVerify checks that Verify never panics and never accepts a password for
// a malformed encoding.
func FuzzVerify(f *testing.F) {
	good, err := Hash("seed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "seed")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$$", "")
	f.Add("$argon2id$$$$$", "")
	f.Add("$argon2id$v=19$m=1,t=1,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		ok, err := Verify(encoded, password)
		if err != nil && ok {
			t.Fatalf("Verify returned true with error %v", err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error type %v", err)
		}
	})
}
