package passkey

import "github.com/google/uuid"

// AuthenticatorName returns a human name for an authenticator model from its
// AAGUID, or "" when it is unknown. The table holds only well-known values
// published by their vendors (and collected by the passkey developer
// community's AAGUID list); it is for display, never for policy: without
// attestation, the AAGUID is whatever the authenticator claims.
func AuthenticatorName(aaguid []byte) string {
	id, err := uuid.FromBytes(aaguid)
	if err != nil || id == uuid.Nil {
		return ""
	}
	switch id.String() {
	case "fbfc3007-154e-4ecc-8c0b-6e020557d7bd":
		return "iCloud Keychain"
	case "dd4ec289-e01d-41c9-bb89-70fa845d4bf2":
		return "iCloud Keychain (Managed)"
	case "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4":
		return "Google Password Manager"
	case "adce0002-35bc-c60a-648b-0b25f1f05503":
		return "Chrome on Mac"
	case "08987058-cadc-4b81-b6e1-30de50dcbe96",
		"9ddd1817-af5a-4672-a2b9-3e3dd95000a9",
		"6028b017-b1d4-4c02-b4b3-afcdafc96bb2":
		return "Windows Hello"
	case "bada5566-a7aa-401f-bd96-45619a55120d":
		return "1Password"
	case "d548826e-79b4-db40-a3d8-11116f7e8349":
		return "Bitwarden"
	case "531126d6-e717-415c-9320-3d9aa6981239":
		return "Dashlane"
	case "cb69481e-8ff7-4039-93ec-0a2729a154a8",
		"ee882879-721c-4913-9775-3dfcce97072a",
		"fa2b99dc-9e39-4257-8f92-4a30d23c4118",
		"2fc0579f-8113-47ea-b116-bb5a8db9202a":
		return "YubiKey 5 Series"
	}
	return ""
}
