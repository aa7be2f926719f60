// Package password hashes and verifies user passwords with argon2id, encoded
// in the PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// where salt and hash are unpadded standard base64. The default parameters
// follow the current OWASP Password Storage Cheat Sheet (19 MiB of memory,
// two passes, one lane).
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Default parameters (OWASP: m=19456 KiB, t=2, p=1), with a 16-byte salt and
// a 32-byte key.
const (
	DefaultMemory      uint32 = 19456
	DefaultTime        uint32 = 2
	DefaultParallelism uint8  = 1
	saltLen                   = 16
	keyLen                    = 32
)

// Bounds accepted when parsing an encoded hash, so a corrupt or hostile row
// cannot make Verify allocate gigabytes or run for minutes.
const (
	maxMemory  = 256 * 1024 // KiB (256 MiB)
	maxTime    = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	maxEncoded = 512
)

// MaxLength caps the accepted password length in bytes; longer inputs are
// refused by Hash and never match in Verify, bounding the work per attempt.
const MaxLength = 1024

// ErrMalformed means an encoded hash is not a well-formed argon2id PHC string
// within the accepted bounds.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// ErrTooLong means the password exceeds MaxLength.
var ErrTooLong = errors.New("password: too long")

// params are the argon2id parameters of one encoded hash.
type params struct {
	memory      uint32
	time        uint32
	parallelism uint8
	salt        []byte
	key         []byte
}

// Hash returns the PHC-format argon2id hash of password with a fresh random
// salt and the default parameters.
func Hash(password string) (string, error) {
	if len(password) > MaxLength {
		return "", ErrTooLong
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	p := params{memory: DefaultMemory, time: DefaultTime, parallelism: DefaultParallelism, salt: salt}
	p.key = argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.parallelism, keyLen)
	return p.encode(), nil
}

// Verify reports whether password matches the encoded hash, comparing in
// constant time. It returns ErrMalformed (and false) when encoded cannot be
// parsed; it never panics on malformed input.
func Verify(encoded, password string) (bool, error) {
	p, err := parse(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > MaxLength {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.parallelism, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// dummySalt is a fixed salt for Dummy; it protects nothing, it only makes the
// computation the same shape as a real verification.
const dummySalt = "stepwise-dummy-salt"

// Dummy spends the same work as Verify with the default parameters and
// always reports false. Call it when the user is unknown (or has no
// password) so that response time does not reveal whether an account exists.
func Dummy(password string) bool {
	if len(password) > MaxLength {
		return false // Verify refuses these without hashing too
	}
	got := argon2.IDKey([]byte(password), []byte(dummySalt), DefaultTime, DefaultMemory, DefaultParallelism, keyLen)
	zero := make([]byte, keyLen)
	_ = subtle.ConstantTimeCompare(got, zero)
	return false
}

// NeedsRehash reports whether encoded was made with parameters other than
// the defaults (or cannot be parsed), so that a successful login can store a
// fresh hash.
func NeedsRehash(encoded string) bool {
	p, err := parse(encoded)
	if err != nil {
		return true
	}
	return p.memory != DefaultMemory || p.time != DefaultTime || p.parallelism != DefaultParallelism ||
		len(p.salt) < saltLen || len(p.key) != keyLen
}

func (p params) encode() string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.parallelism, b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// parse decodes a PHC argon2id string, strictly: the version must be 19 and
// the parameters must appear in the order m, t, p.
func parse(encoded string) (params, error) {
	if len(encoded) > maxEncoded {
		return params{}, ErrMalformed
	}
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return params{}, ErrMalformed
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return params{}, ErrMalformed
	}
	if n, err := strconv.ParseUint(v, 10, 32); err != nil || n != argon2.Version {
		return params{}, ErrMalformed
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return params{}, ErrMalformed
	}
	var p params
	for i, name := range []string{"m", "t", "p"} {
		val, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return params{}, ErrMalformed
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return params{}, ErrMalformed
		}
		switch name {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n < 1 || n > 255 {
				return params{}, ErrMalformed
			}
			p.parallelism = uint8(n)
		}
	}
	// argon2 requires m >= 8*p.
	if p.time < 1 || p.time > maxTime || p.memory > maxMemory || p.memory < 8*uint32(p.parallelism) {
		return params{}, ErrMalformed
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil ||
		len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return params{}, ErrMalformed
	}
	if p.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil ||
		len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return params{}, ErrMalformed
	}
	return p, nil
}
