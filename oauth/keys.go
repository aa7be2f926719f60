package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/stepwise-id/stepwise/storage"
)

// systemSecretKeyID is the storage.Keys row that holds the system secret.
// It is stored as a key of algorithm "HS256" so it needs no table of its
// own; it is never published, never signs and never rotates. Its RetiredAt
// is set and PublishUntil is far in the future so nothing mistakes it for an
// active signer and garbage collection leaves it alone.
const systemSecretKeyID = "stepwise-system-secret"

const systemSecretAlg = "HS256"

// LoadSystemSecret returns the installation's 32-byte root secret, creating
// it on first use. The CLI and every replica call it so they derive the same
// HMAC and client-secret hashing keys.
func LoadSystemSecret(ctx context.Context, keys storage.Keys) ([]byte, error) {
	find := func() ([]byte, error) {
		all, err := keys.ListKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		for _, k := range all {
			if k.ID == systemSecretKeyID && k.Algorithm == systemSecretAlg && len(k.Private) >= 32 {
				return k.Private, nil
			}
		}
		return nil, nil
	}
	if s, err := find(); err != nil || s != nil {
		return s, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate system secret: %w", err)
	}
	now := time.Now().UTC()
	err := keys.CreateKey(ctx, storage.SigningKey{
		ID:           systemSecretKeyID,
		Algorithm:    systemSecretAlg,
		Private:      secret,
		CreatedAt:    now,
		RetiredAt:    now,
		PublishUntil: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		// Another process won the race; use its secret.
		s, err := find()
		if err == nil && s == nil {
			err = errors.New("system secret vanished")
		}
		return s, err
	}
	if err != nil {
		return nil, fmt.Errorf("store system secret: %w", err)
	}
	return secret, nil
}

// deriveKey derives a purpose-bound key from the system secret so one leaked
// derived key does not reveal the others.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("stepwise/v1/" + purpose))
	return m.Sum(nil)
}

// NewClientSecretHasher returns the client-secret hasher for a system secret.
// The CLI uses it to hash the secrets it generates, the server to check them.
func NewClientSecretHasher(systemSecret []byte) (*SecretHasher, error) {
	return NewSecretHasher(deriveKey(systemSecret, "client-secret"))
}

// KeyInfo describes a signing key without its private part.
type KeyInfo struct {
	ID           string
	Algorithm    string
	CreatedAt    time.Time
	RetiredAt    time.Time // zero while active
	PublishUntil time.Time // zero while active
	Active       bool
	Published    bool
}

// signingKey is a parsed storage.SigningKey.
type signingKey struct {
	info    storage.SigningKey
	private crypto.Signer
	public  jose.JSONWebKey
}

// KeyManager owns the signing keys: it generates the first one, rotates,
// publishes the JWKS and signs. Keys are re-read from storage periodically so
// a rotation done elsewhere (the CLI, another replica) is picked up.
type KeyManager struct {
	store       storage.Storage
	alg         string
	retireAfter time.Duration
	refresh     time.Duration
	now         func() time.Time

	mu       sync.Mutex
	loadedAt time.Time
	active   *signingKey
	byID     map[string]*signingKey
	jwks     []byte
	algs     []string
	onChange []func()
}

// NewKeyManager returns a key manager; call Init (or any signing method) to
// load or generate keys. cfg supplies the algorithm and lifetimes.
func NewKeyManager(store storage.Storage, cfg Config) (*KeyManager, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &KeyManager{
		store:       store,
		alg:         c.SigningAlgorithm,
		retireAfter: c.maxTokenLifespan(),
		refresh:     c.KeyRefreshInterval,
		now:         c.Now,
	}, nil
}

// OnChange registers fn to run (with no lock held) after the published key
// set changed.
func (m *KeyManager) OnChange(fn func()) {
	m.mu.Lock()
	m.onChange = append(m.onChange, fn)
	m.mu.Unlock()
}

// Init loads the keys, generating an active key when there is none.
func (m *KeyManager) Init(ctx context.Context) error {
	return m.reload(ctx, true)
}

// Rotate retires every active key, keeping it in JWKS until the longest-lived
// token it could have signed has expired, and makes a new active key.
func (m *KeyManager) Rotate(ctx context.Context) (KeyInfo, error) {
	info, err := rotate(ctx, m.store, m.alg, m.retireAfter, m.now())
	if err != nil {
		return KeyInfo{}, err
	}
	if err := m.reload(ctx, false); err != nil {
		return KeyInfo{}, err
	}
	return info, nil
}

// RotateKeys rotates the signing keys without a running server (the CLI's
// `stepwise keys rotate`). A running server picks the change up within
// Config.KeyRefreshInterval.
func RotateKeys(ctx context.Context, store storage.Storage, cfg Config) (KeyInfo, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return KeyInfo{}, err
	}
	return rotate(ctx, store, c.SigningAlgorithm, c.maxTokenLifespan(), c.Now())
}

// ListKeys lists the signing keys (never the system secret), newest first.
func ListKeys(ctx context.Context, store storage.Keys, now time.Time) ([]KeyInfo, error) {
	all, err := store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []KeyInfo
	for _, k := range all {
		if !isSigningAlg(k.Algorithm) {
			continue
		}
		out = append(out, keyInfo(k, now))
	}
	return out, nil
}

func keyInfo(k storage.SigningKey, now time.Time) KeyInfo {
	active := k.RetiredAt.IsZero()
	return KeyInfo{
		ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt,
		RetiredAt: k.RetiredAt, PublishUntil: k.PublishUntil,
		Active: active, Published: active || now.Before(k.PublishUntil),
	}
}

func isSigningAlg(a string) bool { return a == "ES256" || a == "RS256" }

func rotate(ctx context.Context, store storage.Storage, alg string, retireAfter time.Duration, now time.Time) (KeyInfo, error) {
	fresh, err := generateKey(alg, now)
	if err != nil {
		return KeyInfo{}, err
	}
	tx, err := store.BeginTx(ctx)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = store.Rollback(tx)
		}
	}()
	all, err := store.ListKeys(tx)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: list: %w", err)
	}
	for _, k := range all {
		if !isSigningAlg(k.Algorithm) || !k.RetiredAt.IsZero() {
			continue
		}
		err := store.UpdateKey(tx, k.ID, func(k storage.SigningKey) (storage.SigningKey, error) {
			k.RetiredAt = now
			k.PublishUntil = now.Add(retireAfter)
			return k, nil
		})
		if err != nil {
			return KeyInfo{}, fmt.Errorf("rotate keys: retire %s: %w", k.ID, err)
		}
	}
	if err := store.CreateKey(tx, fresh); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: create: %w", err)
	}
	if err := store.Commit(tx); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: commit: %w", err)
	}
	done = true
	return keyInfo(fresh, now), nil
}

func generateKey(alg string, now time.Time) (storage.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return storage.SigningKey{}, fmt.Errorf("generate key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("encode key: %w", err)
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return storage.SigningKey{}, fmt.Errorf("generate kid: %w", err)
	}
	return storage.SigningKey{
		ID:        base64.RawURLEncoding.EncodeToString(id),
		Algorithm: alg,
		Private:   der,
		CreatedAt: now.UTC(),
	}, nil
}

func parseKey(k storage.SigningKey) (*signingKey, error) {
	p, err := x509.ParsePKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", k.ID, err)
	}
	signer, ok := p.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key %s: not a signer", k.ID)
	}
	switch p.(type) {
	case *ecdsa.PrivateKey:
		if k.Algorithm != "ES256" {
			return nil, fmt.Errorf("key %s: EC key labelled %s", k.ID, k.Algorithm)
		}
	case *rsa.PrivateKey:
		if k.Algorithm != "RS256" {
			return nil, fmt.Errorf("key %s: RSA key labelled %s", k.ID, k.Algorithm)
		}
	default:
		return nil, fmt.Errorf("key %s: unsupported key type %T", k.ID, p)
	}
	return &signingKey{
		info:    k,
		private: signer,
		public:  jose.JSONWebKey{Key: signer.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"},
	}, nil
}

// reload re-reads keys; with create it generates a key if none is active.
func (m *KeyManager) reload(ctx context.Context, create bool) error {
	now := m.now()
	all, err := m.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	var active *signingKey
	byID := map[string]*signingKey{}
	for _, k := range all { // newest first
		if !isSigningAlg(k.Algorithm) {
			continue
		}
		if !k.RetiredAt.IsZero() && !now.Before(k.PublishUntil) {
			continue
		}
		sk, err := parseKey(k)
		if err != nil {
			return err
		}
		byID[k.ID] = sk
		if k.RetiredAt.IsZero() && (active == nil || k.CreatedAt.After(active.info.CreatedAt)) {
			active = sk
		}
	}
	if active == nil {
		if !create {
			return errors.New("no active signing key")
		}
		k, err := generateKey(m.alg, now)
		if err != nil {
			return err
		}
		if err := m.store.CreateKey(ctx, k); err != nil {
			return fmt.Errorf("store signing key: %w", err)
		}
		return m.reload(ctx, false)
	}
	set := jose.JSONWebKeySet{}
	var algs []string
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	// Active key first, then by kid, so the document is stable.
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case a == active.info.ID:
			return -1
		case b == active.info.ID:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, id := range ids {
		set.Keys = append(set.Keys, byID[id].public)
		if a := byID[id].info.Algorithm; !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encode jwks: %w", err)
	}
	m.mu.Lock()
	changed := string(doc) != string(m.jwks)
	m.active, m.byID, m.jwks, m.algs, m.loadedAt = active, byID, doc, algs, now
	hooks := slices.Clone(m.onChange)
	m.mu.Unlock()
	if changed {
		for _, fn := range hooks {
			fn()
		}
	}
	return nil
}

// current returns the loaded keys, refreshing them when stale. A failed
// refresh keeps serving the previous keys.
func (m *KeyManager) current(ctx context.Context) (*signingKey, map[string]*signingKey, error) {
	m.mu.Lock()
	stale := m.active == nil || m.now().Sub(m.loadedAt) >= m.refresh
	if stale && m.active != nil {
		// Only one caller refreshes; the others keep using what is loaded.
		m.loadedAt = m.now()
	}
	active, byID := m.active, m.byID
	m.mu.Unlock()
	if stale {
		if err := m.reload(ctx, active == nil); err != nil {
			if active == nil {
				return nil, nil, err
			}
		} else {
			m.mu.Lock()
			active, byID = m.active, m.byID
			m.mu.Unlock()
		}
	}
	return active, byID, nil
}

// JWKS returns the public key set document (active and still-published keys).
func (m *KeyManager) JWKS(ctx context.Context) ([]byte, error) {
	if _, _, err := m.current(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jwks, nil
}

// algorithms returns the algorithms of the published keys.
func (m *KeyManager) algorithms() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.algs)
}

// publicKey returns the verification key for kid, if published.
func (m *KeyManager) publicKey(ctx context.Context, kid string) (*signingKey, error) {
	_, byID, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	k, ok := byID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return k, nil
}

// published reports whether kid names a key still in the JWKS.
func (m *KeyManager) published(ctx context.Context, kid string) bool {
	_, err := m.publicKey(ctx, kid)
	return err == nil
}

// tokenSigner implements fosite's jwt.Signer over the KeyManager: it signs
// with the active key (setting kid) and verifies with whichever published key
// the token names, so tokens survive a rotation.
type tokenSigner struct{ keys *KeyManager }

var _ jwt.Signer = tokenSigner{}

func (s tokenSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	active, _, err := s.keys.current(ctx)
	if err != nil {
		return "", "", err
	}
	jwk := &jose.JSONWebKey{Key: active.private, KeyID: active.info.ID, Algorithm: active.info.Algorithm, Use: "sig"}
	d := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (any, error) { return jwk, nil }}
	return d.Generate(ctx, claims, header)
}

func (s tokenSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := s.keys.publicKey(ctx, kid)
		if err != nil {
			return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorUnverifiable, Inner: err}
		}
		if string(t.Method) != k.info.Algorithm {
			return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid, Inner: fmt.Errorf("alg %q does not match key %q", t.Method, kid)}
		}
		return k.private.Public(), nil
	})
}

func (s tokenSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s tokenSigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

func (s tokenSigner) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

// GetSigningMethodLength is the hash size for at_hash/c_hash: both ES256 and
// RS256 use SHA-256.
func (s tokenSigner) GetSigningMethodLength(context.Context) int { return sha256.Size }

// algForKey names the JWS algorithm for a client public key.
func algForKey(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	}
	return ""
}
