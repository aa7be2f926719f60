package passkey

import (
	"fmt"
	"os"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/metadata/providers/memory"
)

// loadMDS reads a FIDO Metadata Service (MDS3) BLOB from a local file and
// builds the provider go-webauthn checks attestations against. It never goes
// to the network: the operator downloads the BLOB (and refreshes it) out of
// band, so start-up does not depend on the FIDO Alliance being reachable.
//
// The policy is strict once a BLOB is configured: an attested authenticator
// must be listed, chain to one of its attestation roots and not carry an
// undesired status (revoked, compromised…), at registration and again at each
// login, so a model revoked later stops working. Credentials registered with
// "none" attestation are not affected: there is nothing to check.
func loadMDS(path, root string) (metadata.Provider, int, error) {
	blob, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("passkey: read MDS BLOB: %w", err)
	}
	var opts []metadata.DecoderOption
	// One malformed entry among thousands must not disable the rest.
	opts = append(opts, metadata.WithIgnoreEntryParsingErrors())
	if root != "" {
		opts = append(opts, metadata.WithRootCertificate(root))
	}
	dec, err := metadata.NewDecoder(opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("passkey: MDS decoder: %w", err)
	}
	payload, err := dec.DecodeBytes(blob)
	if err != nil {
		return nil, 0, fmt.Errorf("passkey: MDS BLOB %s: signature or certificate chain: %w", path, err)
	}
	md, err := dec.Parse(payload)
	if err != nil {
		return nil, 0, fmt.Errorf("passkey: MDS BLOB %s: %w", path, err)
	}
	entries := md.ToMap()
	p, err := memory.New(
		memory.WithMetadata(entries),
		memory.WithValidateEntry(true),
		memory.WithValidateTrustAnchor(true),
		memory.WithValidateStatus(true),
		memory.WithValidateAttestationTypes(true),
	)
	if err != nil {
		return nil, 0, fmt.Errorf("passkey: MDS provider: %w", err)
	}
	return p, len(entries), nil
}
