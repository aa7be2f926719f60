package web

import (
	"context"
	"encoding/json"

	"github.com/stepwise-id/stepwise/storage"
)

// audit records an event. The audit log must never block a sign-in, so a
// failure is logged and swallowed. data must hold no secrets.
func (s *Server) audit(ctx context.Context, e storage.Event, data map[string]any) {
	if e.ID == "" {
		id, err := randomID()
		if err != nil {
			s.log.ErrorContext(ctx, "audit event id", "type", e.Type, "err", err)
			return
		}
		e.ID = id
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			s.log.ErrorContext(ctx, "encode audit event", "type", e.Type, "err", err)
			return
		}
		e.Data = b
	}
	if err := s.store.CreateEvent(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "record audit event", "type", e.Type, "err", err)
	}
	if s.onEvent != nil {
		s.onEvent(ctx, e)
	}
}
