package passkey_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
)

// certKey is a test certificate and its key.
type certKey struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
}

func (c certKey) b64() string { return base64.StdEncoding.EncodeToString(c.der) }

// issue makes a certificate for subject, signed by parent (self-signed when
// parent is nil).
func issue(t *testing.T, subject pkix.Name, isCA bool, parent *certKey) certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	// Certificates are checked against the wall clock, not the test clock.
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certKey{key: key, cert: cert, der: der}
}

// attester returns a packed attestation identity issued by ca, shaped as
// WebAuthn §8.2.1 requires.
func attester(t *testing.T, ca certKey) *softauth.Attestation {
	t.Helper()
	leaf := issue(t, pkix.Name{
		Country: []string{"SE"}, Organization: []string{"Test Keys AB"},
		OrganizationalUnit: []string{"Authenticator Attestation"}, CommonName: "Test Key Batch 1",
	}, false, &ca)
	return &softauth.Attestation{Key: leaf.key, Chain: [][]byte{leaf.der}}
}

// mdsEntry describes a hardware authenticator model whose attestations
// chain to root.
func mdsEntry(aaguid uuid.UUID, root certKey, status string) map[string]any {
	return map[string]any{
		"aaguid": aaguid.String(),
		"metadataStatement": map[string]any{
			"legalHeader":                 "test",
			"aaguid":                      aaguid.String(),
			"description":                 "Test hardware key",
			"authenticatorVersion":        1,
			"protocolFamily":              "fido2",
			"schema":                      3,
			"upv":                         []any{map[string]any{"major": 1, "minor": 0}},
			"authenticationAlgorithms":    []string{"secp256r1_ecdsa_sha256_raw"},
			"publicKeyAlgAndEncodings":    []string{"cose"},
			"attestationTypes":            []string{"basic_full"},
			"userVerificationDetails":     []any{[]any{map[string]any{"userVerificationMethod": "presence_internal"}}},
			"keyProtection":               []string{"hardware", "secure_element"},
			"matcherProtection":           []string{"on_chip"},
			"attachmentHint":              []string{"external"},
			"tcDisplay":                   []string{},
			"attestationRootCertificates": []string{root.b64()},
		},
		"statusReports":          []any{map[string]any{"status": status, "effectiveDate": "2025-01-01"}},
		"timeOfLastStatusChange": "2025-01-01",
	}
}

// writeBLOB signs entries as an MDS3 BLOB with signer (no x5c header, so the
// signer is the trust anchor itself) and returns its path.
func writeBLOB(t *testing.T, signer certKey, entries ...map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	payload := map[string]any{
		"legalHeader": "test", "no": 1, "nextUpdate": time.Now().AddDate(0, 1, 0).Format(time.DateOnly),
		"entries": entries,
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(payload)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, signer.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	path := filepath.Join(t.TempDir(), "mds.jwt")
	if err := os.WriteFile(path, []byte(signing+"."+base64.RawURLEncoding.EncodeToString(sig)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMDS(t *testing.T) {
	mdsRoot := issue(t, pkix.Name{CommonName: "Test MDS Root"}, true, nil)
	vendorCA := issue(t, pkix.Name{CommonName: "Test Vendor Attestation Root"}, true, nil)
	otherCA := issue(t, pkix.Name{CommonName: "Self-made Attestation Root"}, true, nil)
	listed, revoked, unlisted := uuid.New(), uuid.New(), uuid.New()
	blob := writeBLOB(t, mdsRoot,
		mdsEntry(listed, vendorCA, "FIDO_CERTIFIED_L1"),
		mdsEntry(revoked, vendorCA, "REVOKED"))

	tests := []struct {
		name      string
		aaguid    uuid.UUID
		attest    *certKey // nil: "none" attestation
		wantErr   error
		wantLevel passkey.Level
	}{
		{name: "listed model, vendor chain", aaguid: listed, attest: &vendorCA, wantLevel: passkey.LevelDeviceBoundPasskey},
		{name: "listed model, self-made chain", aaguid: listed, attest: &otherCA, wantErr: passkey.ErrVerificationFailed},
		{name: "unlisted model", aaguid: unlisted, attest: &vendorCA, wantErr: passkey.ErrVerificationFailed},
		{name: "revoked model", aaguid: revoked, attest: &vendorCA, wantErr: passkey.ErrVerificationFailed},
		{name: "no attestation", aaguid: unlisted, wantLevel: passkey.LevelVerifiedPasskey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *passkey.Config) {
				c.Attestation = passkey.AttestationDirect
				c.MDSFile, c.MDSRoot = blob, mdsRoot.b64()
				c.DeviceBound = passkey.DeviceBoundRule{RequireAttestation: true}
			})
			u := f.user("alice")
			a, err := softauth.New(testRPID, testOrigin, tt.aaguid)
			if err != nil {
				t.Fatal(err)
			}
			if tt.attest != nil {
				a.Attestation = attester(t, *tt.attest)
			}
			c, err := f.svc.BeginRegistration(f.ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			body, err := a.Register(c.Options, softauth.DeviceBound)
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.svc.FinishRegistration(f.ctx, u.ID, passkey.Response{State: c.State, Credential: body}, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FinishRegistration: err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				t.Logf("rejected: %v", err)
				if ev := f.events(passkey.EventRejected); len(ev) != 1 || ev[0]["reason"] != "verification_failed" {
					t.Errorf("rejected events = %v", ev)
				}
				return
			}
			if want := map[bool]string{true: "packed", false: "none"}[tt.attest != nil]; p.AttestationFormat != want {
				t.Errorf("attestation format = %q, want %q", p.AttestationFormat, want)
			}
			res, err := f.login(a, softauth.DeviceBound)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if res.Level != tt.wantLevel {
				t.Errorf("level = %d (%s), want %d", res.Level, res.ACR, tt.wantLevel)
			}
		})
	}
}

// TestMDSRevokedAfterEnrolment checks that the metadata status is checked
// at every login, not only at registration.
func TestMDSRevokedAfterEnrolment(t *testing.T) {
	mdsRoot := issue(t, pkix.Name{CommonName: "Test MDS Root"}, true, nil)
	vendorCA := issue(t, pkix.Name{CommonName: "Test Vendor Attestation Root"}, true, nil)
	model := uuid.New()
	config := func(blob string) func(*passkey.Config) {
		return func(c *passkey.Config) {
			c.Attestation = passkey.AttestationDirect
			c.MDSFile, c.MDSRoot = blob, mdsRoot.b64()
		}
	}
	f := newFixture(t, config(writeBLOB(t, mdsRoot, mdsEntry(model, vendorCA, "FIDO_CERTIFIED_L2"))))
	a, err := softauth.New(testRPID, testOrigin, model)
	if err != nil {
		t.Fatal(err)
	}
	a.Attestation = attester(t, vendorCA)
	alice := f.user("alice")
	c, err := f.svc.BeginRegistration(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.Register(c.Options, softauth.DeviceBound)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(f.ctx, alice.ID, passkey.Response{State: c.State, Credential: body}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.login(a, softauth.DeviceBound); err != nil {
		t.Fatalf("login before revocation: %v", err)
	}

	// The operator installs a newer BLOB in which the model is revoked.
	g := newFixtureOn(t, f.store, config(writeBLOB(t, mdsRoot, mdsEntry(model, vendorCA, "REVOKED"))))
	if _, err := g.login(a, softauth.DeviceBound); !errors.Is(err, passkey.ErrVerificationFailed) || !strings.Contains(err.Error(), "REVOKED") {
		t.Errorf("login after revocation: err = %v, want a verification failure naming REVOKED", err)
	}
}

func TestMDSLoadErrors(t *testing.T) {
	mdsRoot := issue(t, pkix.Name{CommonName: "Test MDS Root"}, true, nil)
	impostor := issue(t, pkix.Name{CommonName: "Impostor"}, true, nil)
	garbage := filepath.Join(t.TempDir(), "garbage.jwt")
	if err := os.WriteFile(garbage, []byte("not a jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, root, want string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.jwt"), mdsRoot.b64(), "read MDS"},
		{"not a JWT", garbage, mdsRoot.b64(), "MDS BLOB"},
		{"signed by another root", writeBLOB(t, impostor), mdsRoot.b64(), "MDS BLOB"},
		{"production root", writeBLOB(t, mdsRoot), "", "MDS BLOB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := passkey.New(passkey.Config{Issuer: testIssuer, MDSFile: tt.file, MDSRoot: tt.root}, newMemStore(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
