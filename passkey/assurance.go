package passkey

import (
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/storage"
)

// RFC 8176 amr values a passkey ceremony can earn.
const (
	AMRHardwareKey = "hwk"  // proof of possession of a device-bound key
	AMRSoftwareKey = "swk"  // proof of possession of a synced (software) key
	AMRUser        = "user" // user verification (biometric or PIN) asserted
	AMRMFA         = "mfa"  // possession plus verification: two factors
)

// assess maps the flags of one assertion to the level and amr it earns
// (DESIGN.md): presence only is LevelPasskey; user verification is
// LevelVerifiedPasskey; user verification on a device-bound credential that
// also meets the configured rule is LevelDeviceBoundPasskey. Only this
// ceremony's flags count: a credential that verified the user last week
// proves nothing about today.
func (s *Service) assess(flags protocol.AuthenticatorFlags, c storage.Credential) (Level, []string) {
	deviceBound := !flags.HasBackupEligible()
	amr := make([]string, 0, 3)
	if deviceBound {
		amr = append(amr, AMRHardwareKey)
	} else {
		amr = append(amr, AMRSoftwareKey)
	}
	if !flags.HasUserVerified() {
		return LevelPasskey, amr
	}
	amr = append(amr, AMRUser, AMRMFA)
	if deviceBound && s.rule.admits(c) {
		return LevelDeviceBoundPasskey, amr
	}
	return LevelVerifiedPasskey, amr
}

// admits reports whether c meets the rule's extra requirements.
func (r DeviceBoundRule) admits(c storage.Credential) bool {
	if r.RequireAttestation && (c.AttestationFormat == "" || c.AttestationFormat == string(protocol.AttestationFormatNone)) {
		return false
	}
	if len(r.AAGUIDs) > 0 {
		id, err := uuid.FromBytes(c.AAGUID)
		if err != nil || !slices.Contains(r.AAGUIDs, id) {
			return false
		}
	}
	return true
}

// ACR returns the configured acr value of a level, or "" for an unknown level.
func (s *Service) ACR(l Level) string {
	if l < 0 || l >= levelCount {
		return ""
	}
	return s.ladder[l]
}
