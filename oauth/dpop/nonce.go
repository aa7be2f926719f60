package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNoncePeriod is how long one nonce is current; it stays valid for
// one more period after that.
const DefaultNoncePeriod = 5 * time.Minute

// nonceMACLen is the truncated HMAC length of a nonce (128 bits).
const nonceMACLen = 16

// Nonces issues and checks server nonces (RFC 9449 §8, §9) without state:
// a nonce is a time bucket number and its HMAC under a secret key, so every
// replica sharing the key accepts it. The nonce rotates every period; the
// current and the previous one are accepted, so a client that just received
// a nonce is not refused at a rotation.
type Nonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

// NewNonces returns a nonce source. key must hold at least 32 bytes (derive
// it from a server secret, for this purpose only); period 0 means
// DefaultNoncePeriod; now nil means time.Now.
func NewNonces(key []byte, period time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: nonce key must be at least 32 bytes")
	}
	if period <= 0 {
		period = DefaultNoncePeriod
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), period: period, now: now}, nil
}

func (n *Nonces) bucket() uint64 {
	return uint64(n.now().UnixNano() / int64(n.period))
}

func (n *Nonces) mac(bucket uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], bucket)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("dpop-nonce/v1/"))
	m.Write(b[:])
	return m.Sum(nil)[:nonceMACLen]
}

func (n *Nonces) encode(bucket uint64) string {
	out := make([]byte, 8, 8+nonceMACLen)
	binary.BigEndian.PutUint64(out, bucket)
	return base64.RawURLEncoding.EncodeToString(append(out, n.mac(bucket)...))
}

// Current returns the nonce to hand out now.
func (n *Nonces) Current() string { return n.encode(n.bucket()) }

// Valid reports whether s is the current or the previous nonce.
func (n *Nonces) Valid(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(8+nonceMACLen) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8+nonceMACLen {
		return false
	}
	got := binary.BigEndian.Uint64(b[:8])
	cur := n.bucket()
	if got != cur && got+1 != cur {
		return false
	}
	return hmac.Equal(b[8:], n.mac(got))
}
