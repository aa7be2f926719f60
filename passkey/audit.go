package passkey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/storage"
)

// Audit event types written by this package.
const (
	EventRejected           = "passkey.rejected"
	EventCloneWarning       = "passkey.clone_warning"
	EventBackupStateChanged = "passkey.backup_state_changed"
	EventRegistered         = "passkey.registered"
	EventRenamed            = "passkey.renamed"
	EventDeleted            = "passkey.deleted"
)

// EncodeID renders a credential ID as base64url without padding, the form
// WebAuthn JSON uses; pages and URLs use it too.
func EncodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// DecodeID parses the output of EncodeID.
func DecodeID(s string) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(id) == 0 {
		return nil, fmt.Errorf("passkey: decode ID: %w: %q is not base64url", ErrUnknownCredential, s)
	}
	return id, nil
}

// audit writes an event. A failure to write is logged and swallowed: the
// outcome the caller gets must not depend on the audit log being writable,
// and a rejection must never turn into a success.
func (s *Service) audit(ctx context.Context, typ, userID string, r RequestInfo, data map[string]any) {
	raw, err := json.Marshal(data)
	if err != nil {
		s.log.ErrorContext(ctx, "encode audit event", "type", typ, "err", err)
		return
	}
	e := storage.Event{
		ID:        uuid.NewString(),
		Type:      typ,
		UserID:    userID,
		ClientID:  r.ClientID,
		SessionID: r.SessionID,
		IPAddress: r.IPAddress,
		Time:      s.now().UTC(),
		Data:      raw,
	}
	if err := s.store.CreateEvent(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "write audit event", "type", typ, "user", userID, "err", err)
	}
}

// rejection collects what is known about a failed ceremony for its audit
// record.
type rejection struct {
	kind      ceremonyKind
	userID    string
	credID    []byte
	requestID string
}

// reject records err as a "passkey.rejected" event and returns it unchanged.
func (s *Service) reject(ctx context.Context, rj rejection, r RequestInfo, err error) error {
	reason := Reason(err)
	data := map[string]any{"ceremony": string(rj.kind), "reason": reason, "error": err.Error()}
	if len(rj.credID) > 0 {
		data["credential_id"] = EncodeID(rj.credID)
	}
	if rj.requestID != "" {
		data["request_id"] = rj.requestID
	}
	level := slog.LevelInfo
	if reason == "internal" {
		level = slog.LevelError
	}
	s.log.Log(ctx, level, "passkey ceremony rejected", "ceremony", rj.kind, "reason", reason, "user", rj.userID, "err", err)
	s.audit(ctx, EventRejected, rj.userID, r, data)
	return err
}
