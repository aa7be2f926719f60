package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

const requestColumns = `kind, signature, request_id, client_id, subject, session_id, active,
	deactivated_at, access_signature, requested_at, expires_at, data`

const createRequestQuery = `INSERT INTO requests (` + requestColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`

// CreateRequest stores r; ErrAlreadyExists if (Kind, Signature) exists.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	if r.Kind == "" || r.Signature == "" {
		return errors.New("create request: empty kind or signature")
	}
	args := []any{string(r.Kind), r.Signature, r.RequestID, r.ClientID, r.Subject, r.SessionID, boolInt(r.Active),
		micros(r.DeactivatedAt), r.AccessSignature, micros(r.RequestedAt), micros(r.ExpiresAt), blob(r.Data)}
	var err error
	if s.txFrom(ctx) != nil {
		_, err = s.exec(ctx, createRequestQuery, args...)
	} else {
		// Outside a transaction, concurrent inserts share one commit.
		err = s.groupExec(ctx, createRequestQuery, args...)
	}
	if err != nil {
		// Signatures are token material: name only the kind and request.
		return fmt.Errorf("create %s request %q: %w", r.Kind, r.RequestID, mapErr(err))
	}
	return nil
}

const getRequestQuery = `SELECT ` + requestColumns + ` FROM requests WHERE kind = ? AND signature = ?`

// GetRequest returns the row whatever its Active state.
func (s *Store) GetRequest(ctx context.Context, kind storage.Kind, signature string) (storage.Request, error) {
	var (
		r                           storage.Request
		k                           string
		deact, requested, expiresAt sql.NullInt64
	)
	err := s.queryRow(ctx, getRequestQuery, string(kind), signature).Scan(&k, &r.Signature, &r.RequestID,
		&r.ClientID, &r.Subject, &r.SessionID, &r.Active, &deact, &r.AccessSignature, &requested, &expiresAt, &r.Data)
	if err != nil {
		return storage.Request{}, fmt.Errorf("get %s request: %w", kind, mapErr(err))
	}
	r.Kind = storage.Kind(k)
	r.DeactivatedAt, r.RequestedAt, r.ExpiresAt = fromMicros(deact), fromMicros(requested), fromMicros(expiresAt)
	r.Data = bytesOrNil(r.Data)
	return r, nil
}

const (
	deactivateRequestQuery = `UPDATE requests SET active = 0, deactivated_at = ?
		WHERE kind = ? AND signature = ? AND active = 1`
	deactivatedAtQuery           = `SELECT deactivated_at FROM requests WHERE kind = ? AND signature = ?`
	deleteRequestQuery           = `DELETE FROM requests WHERE kind = ? AND signature = ?`
	deleteRequestsByIDQuery      = `DELETE FROM requests WHERE kind = ? AND request_id = ?`
	deleteRequestsBySessionQuery = `DELETE FROM requests WHERE session_id = ? AND session_id <> ''`
)

// DeactivateRequest marks an active row inactive. The conditional UPDATE is
// the whole race: SQLite runs one writer at a time, so of concurrent callers
// exactly one sees active = 1.
func (s *Store) DeactivateRequest(ctx context.Context, kind storage.Kind, signature string, now, graceSince time.Time) error {
	res, err := s.exec(ctx, deactivateRequestQuery, now.UnixMicro(), string(kind), signature)
	if err != nil {
		return fmt.Errorf("deactivate %s request: %w", kind, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deactivate %s request: %w", kind, err)
	}
	if n == 1 {
		return nil
	}
	var deact sql.NullInt64
	err = s.queryRow(ctx, deactivatedAtQuery, string(kind), signature).Scan(&deact)
	if err != nil {
		return fmt.Errorf("deactivate %s request: %w", kind, mapErr(err))
	}
	if !graceSince.IsZero() && deact.Valid && fromMicros(deact).After(graceSince) {
		return nil
	}
	return fmt.Errorf("deactivate %s request: %w", kind, storage.ErrInactive)
}

// DeleteRequest deletes one row.
func (s *Store) DeleteRequest(ctx context.Context, kind storage.Kind, signature string) error {
	res, err := s.exec(ctx, deleteRequestQuery, string(kind), signature)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete %s request: %w", kind, mapErr(err))
	}
	return nil
}

// DeleteRequestsByID deletes every row of kind issued for requestID.
func (s *Store) DeleteRequestsByID(ctx context.Context, kind storage.Kind, requestID string) (int64, error) {
	res, err := s.exec(ctx, deleteRequestsByIDQuery, string(kind), requestID)
	if err != nil {
		return 0, fmt.Errorf("delete %s requests of %q: %w", kind, requestID, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete %s requests of %q: %w", kind, requestID, err)
	}
	return n, nil
}

// DeleteRequestsBySession deletes every row authorised by sessionID. An
// empty sessionID matches nothing: machine grants have no session.
func (s *Store) DeleteRequestsBySession(ctx context.Context, sessionID string) (int64, error) {
	if sessionID == "" {
		return 0, nil
	}
	res, err := s.exec(ctx, deleteRequestsBySessionQuery, sessionID)
	if err != nil {
		return 0, fmt.Errorf("delete requests of session: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete requests of session: %w", err)
	}
	return n, nil
}

// CountRequests counts the active rows of kind.
func (s *Store) CountRequests(ctx context.Context, kind storage.Kind) (int64, error) {
	const q = `SELECT count(*) FROM requests WHERE kind = ? AND active = 1`
	var row *sql.Row
	if s.txFrom(ctx) != nil {
		row = s.queryRow(ctx, q, string(kind))
	} else {
		// A scan, unlike the lookups by key queryRow serves: it stays
		// cancellable (see pointRead).
		row = s.r.QueryRowContext(ctx, q, string(kind))
	}
	var n int64
	err := row.Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s requests: %w", kind, mapErr(err))
	}
	return n, nil
}

const authRequestColumns = `id, client_id, form, session_id, outcome, data, created_at, expires_at`

func scanAuthRequest(sc scanner) (storage.AuthRequest, error) {
	var (
		a                storage.AuthRequest
		created, expires sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &a.ClientID, &a.Form, &a.SessionID, &a.Outcome, &a.Data, &created, &expires); err != nil {
		return a, mapErr(err)
	}
	a.Data = bytesOrNil(a.Data)
	a.CreatedAt, a.ExpiresAt = fromMicros(created), fromMicros(expires)
	return a, nil
}

// CreateAuthRequest stores a paused authorization request.
func (s *Store) CreateAuthRequest(ctx context.Context, a storage.AuthRequest) error {
	if a.ID == "" {
		return errors.New("create auth request: empty id")
	}
	_, err := s.exec(ctx, `INSERT INTO auth_requests (`+authRequestColumns+`) VALUES (?,?,?,?,?,?,?,?)`,
		a.ID, a.ClientID, a.Form, a.SessionID, a.Outcome, blob(a.Data), micros(a.CreatedAt), micros(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create auth request %q: %w", a.ID, mapErr(err))
	}
	return nil
}

const getAuthRequestQuery = `SELECT ` + authRequestColumns + ` FROM auth_requests WHERE id = ?`

// GetAuthRequest returns the request with id, expired or not.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (storage.AuthRequest, error) {
	a, err := scanAuthRequest(s.queryRow(ctx, getAuthRequestQuery, id))
	if err != nil {
		return storage.AuthRequest{}, fmt.Errorf("get auth request %q: %w", id, err)
	}
	return a, nil
}

// UpdateAuthRequest replaces the request with what update returns, atomically.
func (s *Store) UpdateAuthRequest(ctx context.Context, id string, update func(storage.AuthRequest) (storage.AuthRequest, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanAuthRequest(s.queryRow(ctx, getAuthRequestQuery, id))
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
		_, err = s.exec(ctx, `UPDATE auth_requests SET client_id=?, form=?, session_id=?, outcome=?, data=?,
			created_at=?, expires_at=? WHERE id=?`,
			a.ClientID, a.Form, a.SessionID, a.Outcome, blob(a.Data), micros(a.CreatedAt), micros(a.ExpiresAt), id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update auth request %q: %w", id, err)
	}
	return nil
}

// DeleteAuthRequest deletes the request with id.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM auth_requests WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
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
	t := now.UnixMicro()
	err := s.inTx(ctx, func(ctx context.Context) error {
		for _, d := range []struct {
			n *int64
			q string
		}{
			{&r.Requests, `DELETE FROM requests WHERE expires_at < ?`},
			{&r.Sessions, `DELETE FROM sessions WHERE expires_at < ?`},
			{&r.AuthRequests, `DELETE FROM auth_requests WHERE expires_at < ?`},
			{&r.RegistrationTokens, `DELETE FROM registration_tokens WHERE expires_at < ?`},
			{&r.AssertionJTIs, `DELETE FROM assertion_jtis WHERE expires_at < ?`},
			{&r.Keys, `DELETE FROM signing_keys WHERE publish_until < ?`},
		} {
			res, err := s.exec(ctx, d.q, t)
			if err != nil {
				return mapErr(err)
			}
			if *d.n, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("garbage collect: %w", err)
	}
	return r, nil
}

const eventColumns = `id, type, user_id, client_id, session_id, ip_address, time, data`

const createEventQuery = `INSERT INTO events (` + eventColumns + `) VALUES (?,?,?,?,?,?,?,?)`

// CreateEvent appends an audit event; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateEvent(ctx context.Context, e storage.Event) error {
	if e.ID == "" {
		return errors.New("create event: empty id")
	}
	args := []any{e.ID, e.Type, e.UserID, e.ClientID, e.SessionID, e.IPAddress, micros(e.Time), blob(e.Data)}
	var err error
	if s.txFrom(ctx) != nil {
		_, err = s.exec(ctx, createEventQuery, args...)
	} else {
		// Audit events are written on hot paths (each token request may
		// record a risk decision): concurrent ones share a commit.
		err = s.groupExec(ctx, createEventQuery, args...)
	}
	if err != nil {
		return fmt.Errorf("create event %q: %w", e.ID, mapErr(err))
	}
	return nil
}

func scanEvent(sc scanner) (storage.Event, error) {
	var (
		e storage.Event
		t sql.NullInt64
	)
	if err := sc.Scan(&e.ID, &e.Type, &e.UserID, &e.ClientID, &e.SessionID, &e.IPAddress, &t, &e.Data); err != nil {
		return e, mapErr(err)
	}
	e.Time, e.Data = fromMicros(t), bytesOrNil(e.Data)
	return e, nil
}

// GetEvent returns the event with id.
func (s *Store) GetEvent(ctx context.Context, id string) (storage.Event, error) {
	e, err := scanEvent(s.queryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id))
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
	// Only the filters in use go into the WHERE clause, so SQLite can pick
	// the (user_id, time) or (type, time) index; the handful of variants
	// each get their own cached statement.
	q := `SELECT ` + eventColumns + ` FROM events WHERE 1=1`
	var args []any
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, f.Since.UnixMicro())
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []storage.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}
