package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stepwise-id/stepwise/storage"
)

const requestColumns = `kind, signature, request_id, client_id, subject, session_id, active,
	deactivated_at, access_signature, requested_at, expires_at, data`

// CreateRequest stores r; ErrAlreadyExists if (Kind, Signature) exists.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	if r.Kind == "" || r.Signature == "" {
		return errors.New("create request: empty kind or signature")
	}
	err := s.insert(ctx, `INSERT INTO requests (`+requestColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		string(r.Kind), r.Signature, r.RequestID, r.ClientID, r.Subject, r.SessionID, r.Active,
		ts(r.DeactivatedAt), r.AccessSignature, ts(r.RequestedAt), ts(r.ExpiresAt), blob(r.Data))
	if err != nil {
		// Signatures are token material: name only the kind and request.
		return fmt.Errorf("create %s request %q: %w", r.Kind, r.RequestID, mapErr(err))
	}
	return nil
}

// GetRequest returns the row whatever its Active state.
func (s *Store) GetRequest(ctx context.Context, kind storage.Kind, signature string) (storage.Request, error) {
	var (
		r                           storage.Request
		k                           string
		deact, requested, expiresAt pgtype.Timestamptz
	)
	err := s.db(ctx).QueryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE kind = $1 AND signature = $2`,
		string(kind), signature).Scan(&k, &r.Signature, &r.RequestID, &r.ClientID, &r.Subject, &r.SessionID,
		&r.Active, &deact, &r.AccessSignature, &requested, &expiresAt, &r.Data)
	if err != nil {
		return storage.Request{}, fmt.Errorf("get %s request: %w", kind, mapErr(err))
	}
	r.Kind = storage.Kind(k)
	r.DeactivatedAt, r.RequestedAt, r.ExpiresAt = fromTS(deact), fromTS(requested), fromTS(expiresAt)
	r.Data = bytesOrNil(r.Data)
	return r, nil
}

// DeactivateRequest marks an active row inactive. The conditional UPDATE
// settles the race: a concurrent caller blocks on the row lock, then
// re-checks active and finds it false.
func (s *Store) DeactivateRequest(ctx context.Context, kind storage.Kind, signature string, now, graceSince time.Time) error {
	db := s.db(ctx)
	tag, err := db.Exec(ctx, `UPDATE requests SET active = false, deactivated_at = $3
		WHERE kind = $1 AND signature = $2 AND active`, string(kind), signature, now.Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("deactivate %s request: %w", kind, mapErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var deact pgtype.Timestamptz
	err = db.QueryRow(ctx, `SELECT deactivated_at FROM requests WHERE kind = $1 AND signature = $2`,
		string(kind), signature).Scan(&deact)
	if err != nil {
		return fmt.Errorf("deactivate %s request: %w", kind, mapErr(err))
	}
	if !graceSince.IsZero() && deact.Valid && deact.Time.After(graceSince) {
		return nil
	}
	return fmt.Errorf("deactivate %s request: %w", kind, storage.ErrInactive)
}

// DeleteRequest deletes one row.
func (s *Store) DeleteRequest(ctx context.Context, kind storage.Kind, signature string) error {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM requests WHERE kind = $1 AND signature = $2`, string(kind), signature)
	if err == nil {
		err = affected(tag)
	}
	if err != nil {
		return fmt.Errorf("delete %s request: %w", kind, mapErr(err))
	}
	return nil
}

// DeleteRequestsByID deletes every row of kind issued for requestID.
func (s *Store) DeleteRequestsByID(ctx context.Context, kind storage.Kind, requestID string) (int64, error) {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM requests WHERE kind = $1 AND request_id = $2`, string(kind), requestID)
	if err != nil {
		return 0, fmt.Errorf("delete %s requests of %q: %w", kind, requestID, mapErr(err))
	}
	return tag.RowsAffected(), nil
}

// DeleteRequestsBySession deletes every row authorised by sessionID. An
// empty sessionID matches nothing: machine grants have no session.
func (s *Store) DeleteRequestsBySession(ctx context.Context, sessionID string) (int64, error) {
	if sessionID == "" {
		return 0, nil
	}
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM requests WHERE session_id = $1 AND session_id <> ''`, sessionID)
	if err != nil {
		return 0, fmt.Errorf("delete requests of session: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}

// CountRequests counts the active rows of kind.
func (s *Store) CountRequests(ctx context.Context, kind storage.Kind) (int64, error) {
	var n int64
	err := s.db(ctx).QueryRow(ctx, `SELECT count(*) FROM requests WHERE kind = $1 AND active`, string(kind)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s requests: %w", kind, mapErr(err))
	}
	return n, nil
}

const authRequestColumns = `id, client_id, form, session_id, outcome, data, created_at, expires_at`

func scanAuthRequest(row pgx.Row) (storage.AuthRequest, error) {
	var (
		a                storage.AuthRequest
		created, expires pgtype.Timestamptz
	)
	if err := row.Scan(&a.ID, &a.ClientID, &a.Form, &a.SessionID, &a.Outcome, &a.Data, &created, &expires); err != nil {
		return storage.AuthRequest{}, mapErr(err)
	}
	a.Data = bytesOrNil(a.Data)
	a.CreatedAt, a.ExpiresAt = fromTS(created), fromTS(expires)
	return a, nil
}

// CreateAuthRequest stores a paused authorization request.
func (s *Store) CreateAuthRequest(ctx context.Context, a storage.AuthRequest) error {
	if a.ID == "" {
		return errors.New("create auth request: empty id")
	}
	err := s.insert(ctx, `INSERT INTO auth_requests (`+authRequestColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		a.ID, a.ClientID, a.Form, a.SessionID, a.Outcome, blob(a.Data), ts(a.CreatedAt), ts(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create auth request %q: %w", a.ID, mapErr(err))
	}
	return nil
}

const getAuthRequestQuery = `SELECT ` + authRequestColumns + ` FROM auth_requests WHERE id = $1`

// GetAuthRequest returns the request with id, expired or not.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (storage.AuthRequest, error) {
	a, err := scanAuthRequest(s.db(ctx).QueryRow(ctx, getAuthRequestQuery, id))
	if err != nil {
		return storage.AuthRequest{}, fmt.Errorf("get auth request %q: %w", id, err)
	}
	return a, nil
}

// UpdateAuthRequest replaces the request with what update returns; the row
// is locked from read to write.
func (s *Store) UpdateAuthRequest(ctx context.Context, id string, update func(storage.AuthRequest) (storage.AuthRequest, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanAuthRequest(db.QueryRow(ctx, getAuthRequestQuery+` FOR UPDATE`, id))
		if err != nil {
			return err
		}
		a, err := update(old)
		if err != nil {
			return err
		}
		if a.ID != id {
			return fmt.Errorf("id changed to %q", a.ID)
		}
		_, err = db.Exec(ctx, `UPDATE auth_requests SET client_id=$2, form=$3, session_id=$4, outcome=$5, data=$6,
			created_at=$7, expires_at=$8 WHERE id=$1`,
			id, a.ClientID, a.Form, a.SessionID, a.Outcome, blob(a.Data), ts(a.CreatedAt), ts(a.ExpiresAt))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update auth request %q: %w", id, err)
	}
	return nil
}

// DeleteAuthRequest deletes the request with id.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM auth_requests WHERE id = $1`, id)
	if err == nil {
		err = affected(tag)
	}
	if err != nil {
		return fmt.Errorf("delete auth request %q: %w", id, mapErr(err))
	}
	return nil
}

// GarbageCollect deletes rows whose expiry is before now, in one
// transaction. Rows without an expiry never expire; retired keys go once
// their PublishUntil has passed.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (storage.GCResult, error) {
	var r storage.GCResult
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		for _, d := range []struct {
			n   *int64
			q   string
			arg any
		}{
			{&r.Requests, `DELETE FROM requests WHERE expires_at < $1`, now},
			{&r.Sessions, `DELETE FROM sessions WHERE expires_at < $1`, now},
			{&r.AuthRequests, `DELETE FROM auth_requests WHERE expires_at < $1`, now},
			{&r.RegistrationTokens, `DELETE FROM registration_tokens WHERE expires_at < $1`, now},
			{&r.AssertionJTIs, `DELETE FROM assertion_jtis WHERE expires_at < $1`, now.UnixMicro()},
			{&r.Keys, `DELETE FROM signing_keys WHERE publish_until < $1`, now},
		} {
			tag, err := db.Exec(ctx, d.q, d.arg)
			if err != nil {
				return mapErr(err)
			}
			*d.n = tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("garbage collect: %w", err)
	}
	return r, nil
}

const eventColumns = `id, type, user_id, client_id, session_id, ip_address, time, data`

// CreateEvent appends an audit event; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateEvent(ctx context.Context, e storage.Event) error {
	if e.ID == "" {
		return errors.New("create event: empty id")
	}
	err := s.insert(ctx, `INSERT INTO events (`+eventColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		e.ID, e.Type, e.UserID, e.ClientID, e.SessionID, e.IPAddress, ts(e.Time), blob(e.Data))
	if err != nil {
		return fmt.Errorf("create event %q: %w", e.ID, mapErr(err))
	}
	return nil
}

func scanEvent(row pgx.Row) (storage.Event, error) {
	var (
		e storage.Event
		t pgtype.Timestamptz
	)
	if err := row.Scan(&e.ID, &e.Type, &e.UserID, &e.ClientID, &e.SessionID, &e.IPAddress, &t, &e.Data); err != nil {
		return storage.Event{}, mapErr(err)
	}
	e.Time, e.Data = fromTS(t), bytesOrNil(e.Data)
	return e, nil
}

// GetEvent returns the event with id.
func (s *Store) GetEvent(ctx context.Context, id string) (storage.Event, error) {
	e, err := scanEvent(s.db(ctx).QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	if err != nil {
		return storage.Event{}, fmt.Errorf("get event %q: %w", id, err)
	}
	return e, nil
}

// defaultEventLimit is the page size when EventFilter.Limit is 0.
const defaultEventLimit = 100

// ListEvents returns the events f selects, newest first.
func (s *Store) ListEvents(ctx context.Context, f storage.EventFilter) ([]storage.Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	// Only the filters in use go into the WHERE clause, so the planner can
	// walk the matching index in ORDER BY order and stop at the limit.
	q := `SELECT ` + eventColumns + ` FROM events WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Type != "" {
		q += ` AND type = ` + arg(f.Type)
	}
	if f.UserID != "" {
		q += ` AND user_id = ` + arg(f.UserID)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ` + arg(f.Since.Truncate(time.Microsecond))
	}
	q += ` ORDER BY time DESC NULLS LAST, id COLLATE "C" DESC LIMIT ` + arg(limit)
	rows, err := s.db(ctx).Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", mapErr(err))
	}
	out, err := collect(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}
