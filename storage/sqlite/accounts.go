package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/stepwise-id/stepwise/storage"
)

const userColumns = `id, username, email, display_name, password_hash, disabled, created_at, updated_at`

func scanUser(sc scanner) (storage.User, error) {
	var (
		u                storage.User
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &u.Disabled, &created, &updated); err != nil {
		return u, mapErr(err)
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return u, nil
}

// CreateUser stores u; ErrAlreadyExists if its ID or username is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if u.ID == "" || u.Username == "" {
		return errors.New("create user: empty id or username")
	}
	_, err := s.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?,?,?,?,?,?,?,?)`,
		u.ID, u.Username, u.Email, u.DisplayName, u.PasswordHash, boolInt(u.Disabled), micros(u.CreatedAt), micros(u.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, mapErr(err))
	}
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return storage.User{}, fmt.Errorf("get user %q: %w", id, err)
	}
	return u, nil
}

// GetUserByUsername returns the user with username.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	if err != nil {
		return storage.User{}, fmt.Errorf("get user by username %q: %w", username, err)
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// UpdateUser replaces the user with what update returns, atomically. A
// username clash gives ErrAlreadyExists.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(storage.User) (storage.User, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
		if err != nil {
			return err
		}
		u, err := update(old)
		if err != nil {
			return err
		}
		if u.ID != id {
			return fmt.Errorf("id changed to %q", u.ID)
		}
		_, err = s.exec(ctx, `UPDATE users SET username=?, email=?, display_name=?, password_hash=?,
			disabled=?, created_at=?, updated_at=? WHERE id=?`,
			u.Username, u.Email, u.DisplayName, u.PasswordHash, boolInt(u.Disabled), micros(u.CreatedAt), micros(u.UpdatedAt), id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update user %q: %w", id, err)
	}
	return nil
}

// DeleteUser deletes the user and everything that lets someone act as them:
// sessions (and the tokens they authorised), consents and passkeys.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		res, err := s.exec(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if err := affected(res); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM requests WHERE session_id <> '' AND session_id IN (SELECT id FROM sessions WHERE user_id = ?)`,
			`DELETE FROM sessions WHERE user_id = ?`,
			`DELETE FROM consents WHERE user_id = ?`,
			`DELETE FROM credentials WHERE user_id = ?`,
		} {
			if _, err := s.exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, mapErr(err))
	}
	return nil
}

const sessionColumns = `id, user_id, acr, amr, auth_time, elevated_until, base_acr, base_amr,
	base_auth_time, user_agent, ip_address, created_at, last_seen_at, expires_at`

func sessionArgs(x storage.Session) ([]any, error) {
	l, err := lists(x.AMR, x.BaseAMR)
	if err != nil {
		return nil, err
	}
	return []any{x.ID, x.UserID, x.ACR, l[0], micros(x.AuthTime), micros(x.ElevatedUntil), x.BaseACR, l[1],
		micros(x.BaseAuthTime), x.UserAgent, x.IPAddress, micros(x.CreatedAt), micros(x.LastSeenAt), micros(x.ExpiresAt)}, nil
}

func scanSession(sc scanner) (storage.Session, error) {
	var (
		x                                                 storage.Session
		amr, baseAMR                                      sql.NullString
		authTime, elevated, baseAuth, created, seen, exps sql.NullInt64
	)
	err := sc.Scan(&x.ID, &x.UserID, &x.ACR, &amr, &authTime, &elevated, &x.BaseACR, &baseAMR,
		&baseAuth, &x.UserAgent, &x.IPAddress, &created, &seen, &exps)
	if err != nil {
		return x, mapErr(err)
	}
	if x.AMR, err = parseStrList(amr); err != nil {
		return x, err
	}
	if x.BaseAMR, err = parseStrList(baseAMR); err != nil {
		return x, err
	}
	x.AuthTime, x.ElevatedUntil, x.BaseAuthTime = fromMicros(authTime), fromMicros(elevated), fromMicros(baseAuth)
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(exps)
	return x, nil
}

// CreateSession stores a browser session.
func (s *Store) CreateSession(ctx context.Context, x storage.Session) error {
	if x.ID == "" {
		return errors.New("create session: empty id")
	}
	args, err := sessionArgs(x)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	_, err = s.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	if err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

const getSessionQuery = `SELECT ` + sessionColumns + ` FROM sessions WHERE id = ?`

// GetSession returns the session with id, expired or not; the caller checks
// ExpiresAt.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	x, err := scanSession(s.queryRow(ctx, getSessionQuery, id))
	if err != nil {
		// Session IDs are bearer secrets: keep them out of error text.
		return storage.Session{}, fmt.Errorf("get session: %w", err)
	}
	return x, nil
}

// ListUserSessions returns a user's sessions, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]storage.Session, error) {
	rows, err := s.query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions of user %q: %w", userID, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of user %q: %w", userID, err)
	}
	return out, nil
}

// UpdateSession replaces the session with what update returns, atomically.
func (s *Store) UpdateSession(ctx context.Context, id string, update func(storage.Session) (storage.Session, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanSession(s.queryRow(ctx, getSessionQuery, id))
		if err != nil {
			return err
		}
		x, err := update(old)
		if err != nil {
			return err
		}
		if x.ID != id {
			return errors.New("session id changed")
		}
		args, err := sessionArgs(x)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `UPDATE sessions SET user_id=?, acr=?, amr=?, auth_time=?, elevated_until=?,
			base_acr=?, base_amr=?, base_auth_time=?, user_agent=?, ip_address=?, created_at=?,
			last_seen_at=?, expires_at=? WHERE id=?`, append(args[1:], id)...)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// DeleteSession deletes the session. The tokens it authorised are left to
// DeleteRequestsBySession, which the caller runs when it revokes them.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", mapErr(err))
	}
	return nil
}

// PutConsent creates or replaces the consent for (UserID, ClientID).
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	if c.UserID == "" || c.ClientID == "" {
		return errors.New("put consent: empty user or client id")
	}
	scopes, err := strList(c.Scopes)
	if err != nil {
		return fmt.Errorf("put consent of user %q for client %q: %w", c.UserID, c.ClientID, err)
	}
	_, err = s.exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?,?,?,?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.UserID, c.ClientID, scopes, micros(c.GrantedAt))
	if err != nil {
		return fmt.Errorf("put consent of user %q for client %q: %w", c.UserID, c.ClientID, mapErr(err))
	}
	return nil
}

func scanConsent(sc scanner) (storage.Consent, error) {
	var (
		c       storage.Consent
		scopes  sql.NullString
		granted sql.NullInt64
	)
	err := sc.Scan(&c.UserID, &c.ClientID, &scopes, &granted)
	if err != nil {
		return c, mapErr(err)
	}
	c.GrantedAt = fromMicros(granted)
	c.Scopes, err = parseStrList(scopes)
	return c, err
}

// GetConsent returns the consent userID gave clientID.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (storage.Consent, error) {
	c, err := scanConsent(s.queryRow(ctx, `SELECT user_id, client_id, scopes, granted_at FROM consents
		WHERE user_id = ? AND client_id = ?`, userID, clientID))
	if err != nil {
		return storage.Consent{}, fmt.Errorf("get consent of user %q for client %q: %w", userID, clientID, err)
	}
	return c, nil
}

// ListUserConsents returns a user's consents ordered by client ID.
func (s *Store) ListUserConsents(ctx context.Context, userID string) ([]storage.Consent, error) {
	rows, err := s.query(ctx, `SELECT user_id, client_id, scopes, granted_at FROM consents
		WHERE user_id = ? ORDER BY client_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list consents of user %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, fmt.Errorf("list consents of user %q: %w", userID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consents of user %q: %w", userID, err)
	}
	return out, nil
}

// DeleteConsent deletes the consent userID gave clientID.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	res, err := s.exec(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete consent of user %q for client %q: %w", userID, clientID, mapErr(err))
	}
	return nil
}

const credentialColumns = `id, user_id, public_key, sign_count, aaguid, transports, backup_eligible,
	backup_state, user_verified, attestation_format, attestation, nickname, clone_warning, created_at, last_used_at`

func credentialArgs(c storage.Credential) ([]any, error) {
	transports, err := strList(c.Transports)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.UserID, blob(c.PublicKey), int64(c.SignCount), blob(c.AAGUID), transports, boolInt(c.BackupEligible),
		boolInt(c.BackupState), boolInt(c.UserVerified), c.AttestationFormat, blob(c.Attestation), c.Nickname,
		boolInt(c.CloneWarning), micros(c.CreatedAt), micros(c.LastUsedAt)}, nil
}

func scanCredential(sc scanner) (storage.Credential, error) {
	var (
		c             storage.Credential
		signCount     int64
		transports    sql.NullString
		created, used sql.NullInt64
	)
	err := sc.Scan(&c.ID, &c.UserID, &c.PublicKey, &signCount, &c.AAGUID, &transports, &c.BackupEligible,
		&c.BackupState, &c.UserVerified, &c.AttestationFormat, &c.Attestation, &c.Nickname, &c.CloneWarning, &created, &used)
	if err != nil {
		return c, mapErr(err)
	}
	c.SignCount = uint32(signCount)
	c.PublicKey, c.AAGUID, c.Attestation = bytesOrNil(c.PublicKey), bytesOrNil(c.AAGUID), bytesOrNil(c.Attestation)
	c.CreatedAt, c.LastUsedAt = fromMicros(created), fromMicros(used)
	c.Transports, err = parseStrList(transports)
	return c, err
}

// CreateCredential stores a passkey; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateCredential(ctx context.Context, c storage.Credential) error {
	if len(c.ID) == 0 {
		return errors.New("create credential: empty id")
	}
	args, err := credentialArgs(c)
	if err != nil {
		return fmt.Errorf("create credential %x: %w", c.ID, err)
	}
	_, err = s.exec(ctx, `INSERT INTO credentials (`+credentialColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	if err != nil {
		return fmt.Errorf("create credential %x: %w", c.ID, mapErr(err))
	}
	return nil
}

const getCredentialQuery = `SELECT ` + credentialColumns + ` FROM credentials WHERE id = ?`

// GetCredential returns the passkey with id.
func (s *Store) GetCredential(ctx context.Context, id []byte) (storage.Credential, error) {
	c, err := scanCredential(s.queryRow(ctx, getCredentialQuery, id))
	if err != nil {
		return storage.Credential{}, fmt.Errorf("get credential %x: %w", id, err)
	}
	return c, nil
}

// ListUserCredentials returns a user's passkeys, oldest first.
func (s *Store) ListUserCredentials(ctx context.Context, userID string) ([]storage.Credential, error) {
	rows, err := s.query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list credentials of user %q: %w", userID, err)
	}
	defer rows.Close()
	var out []storage.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials of user %q: %w", userID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credentials of user %q: %w", userID, err)
	}
	return out, nil
}

// UpdateCredential replaces the passkey with what update returns, atomically
// (sign-count checks rely on this).
func (s *Store) UpdateCredential(ctx context.Context, id []byte, update func(storage.Credential) (storage.Credential, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanCredential(s.queryRow(ctx, getCredentialQuery, id))
		if err != nil {
			return err
		}
		c, err := update(old)
		if err != nil {
			return err
		}
		if string(c.ID) != string(id) {
			return fmt.Errorf("id changed to %x", c.ID)
		}
		args, err := credentialArgs(c)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `UPDATE credentials SET user_id=?, public_key=?, sign_count=?, aaguid=?, transports=?,
			backup_eligible=?, backup_state=?, user_verified=?, attestation_format=?, attestation=?, nickname=?,
			clone_warning=?, created_at=?, last_used_at=? WHERE id=?`, append(args[1:], id)...)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update credential %x: %w", id, err)
	}
	return nil
}

// DeleteCredential deletes the passkey with id.
func (s *Store) DeleteCredential(ctx context.Context, id []byte) error {
	res, err := s.exec(ctx, `DELETE FROM credentials WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete credential %x: %w", id, mapErr(err))
	}
	return nil
}
