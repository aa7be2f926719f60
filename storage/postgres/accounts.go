package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stepwise-id/stepwise/storage"
)

const userColumns = `id, username, email, display_name, password_hash, disabled, created_at, updated_at`

func scanUser(row pgx.Row) (storage.User, error) {
	var (
		u                storage.User
		created, updated pgtype.Timestamptz
	)
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &u.Disabled, &created, &updated); err != nil {
		return storage.User{}, mapErr(err)
	}
	u.CreatedAt, u.UpdatedAt = fromTS(created), fromTS(updated)
	return u, nil
}

// CreateUser stores u; ErrAlreadyExists if its ID or username is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if u.ID == "" || u.Username == "" {
		return errors.New("create user: empty id or username")
	}
	err := s.insert(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		u.ID, u.Username, u.Email, u.DisplayName, u.PasswordHash, u.Disabled, ts(u.CreatedAt), ts(u.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, mapErr(err))
	}
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u, err := scanUser(s.db(ctx).QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return storage.User{}, fmt.Errorf("get user %q: %w", id, err)
	}
	return u, nil
}

// GetUserByUsername returns the user with username.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (storage.User, error) {
	u, err := scanUser(s.db(ctx).QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if err != nil {
		return storage.User{}, fmt.Errorf("get user by username %q: %w", username, err)
	}
	return u, nil
}

// ListUsers returns every user ordered by username. COLLATE "C" makes the
// order bytewise, as on SQLite, whatever the database's locale.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", mapErr(err))
	}
	out, err := collect(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// UpdateUser replaces the user with what update returns; the row is locked
// from read to write. A username clash gives ErrAlreadyExists.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(storage.User) (storage.User, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanUser(db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
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
		if u.Username != old.Username {
			// Check first: a unique violation would abort a carried
			// transaction. A concurrent rename can still race past this and
			// get the violation, mapped to the same sentinel.
			var taken bool
			err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)`, u.Username).Scan(&taken)
			if err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("username %q: %w", u.Username, storage.ErrAlreadyExists)
			}
		}
		_, err = db.Exec(ctx, `UPDATE users SET username=$2, email=$3, display_name=$4, password_hash=$5,
			disabled=$6, created_at=$7, updated_at=$8 WHERE id=$1`,
			id, u.Username, u.Email, u.DisplayName, u.PasswordHash, u.Disabled, ts(u.CreatedAt), ts(u.UpdatedAt))
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
		db := s.db(ctx)
		tag, err := db.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if err := affected(tag); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM requests WHERE session_id <> '' AND session_id IN (SELECT id FROM sessions WHERE user_id = $1)`,
			`DELETE FROM sessions WHERE user_id = $1`,
			`DELETE FROM consents WHERE user_id = $1`,
			`DELETE FROM credentials WHERE user_id = $1`,
		} {
			if _, err := db.Exec(ctx, q, id); err != nil {
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

func sessionArgs(x storage.Session) []any {
	return []any{x.ID, x.UserID, x.ACR, list(x.AMR), ts(x.AuthTime), ts(x.ElevatedUntil), x.BaseACR, list(x.BaseAMR),
		ts(x.BaseAuthTime), x.UserAgent, x.IPAddress, ts(x.CreatedAt), ts(x.LastSeenAt), ts(x.ExpiresAt)}
}

func scanSession(row pgx.Row) (storage.Session, error) {
	var (
		x                                                 storage.Session
		authTime, elevated, baseAuth, created, seen, exps pgtype.Timestamptz
	)
	err := row.Scan(&x.ID, &x.UserID, &x.ACR, &x.AMR, &authTime, &elevated, &x.BaseACR, &x.BaseAMR,
		&baseAuth, &x.UserAgent, &x.IPAddress, &created, &seen, &exps)
	if err != nil {
		return storage.Session{}, mapErr(err)
	}
	x.AMR, x.BaseAMR = listOrNil(x.AMR), listOrNil(x.BaseAMR)
	x.AuthTime, x.ElevatedUntil, x.BaseAuthTime = fromTS(authTime), fromTS(elevated), fromTS(baseAuth)
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt = fromTS(created), fromTS(seen), fromTS(exps)
	return x, nil
}

// CreateSession stores a browser session.
func (s *Store) CreateSession(ctx context.Context, x storage.Session) error {
	if x.ID == "" {
		return errors.New("create session: empty id")
	}
	err := s.insert(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`, sessionArgs(x)...)
	if err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

const getSessionQuery = `SELECT ` + sessionColumns + ` FROM sessions WHERE id = $1`

// GetSession returns the session with id, expired or not; the caller checks
// ExpiresAt.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	x, err := scanSession(s.db(ctx).QueryRow(ctx, getSessionQuery, id))
	if err != nil {
		// Session IDs are bearer secrets: keep them out of error text.
		return storage.Session{}, fmt.Errorf("get session: %w", err)
	}
	return x, nil
}

// ListUserSessions returns a user's sessions, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]storage.Session, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE user_id = $1
		ORDER BY created_at NULLS FIRST, id COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %q: %w", userID, mapErr(err))
	}
	out, err := collect(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %q: %w", userID, err)
	}
	return out, nil
}

// UpdateSession replaces the session with what update returns; the row is
// locked from read to write.
func (s *Store) UpdateSession(ctx context.Context, id string, update func(storage.Session) (storage.Session, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanSession(db.QueryRow(ctx, getSessionQuery+` FOR UPDATE`, id))
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
		_, err = db.Exec(ctx, `UPDATE sessions SET user_id=$2, acr=$3, amr=$4, auth_time=$5, elevated_until=$6,
			base_acr=$7, base_amr=$8, base_auth_time=$9, user_agent=$10, ip_address=$11, created_at=$12,
			last_seen_at=$13, expires_at=$14 WHERE id=$1`, sessionArgs(x)...)
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
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	if err == nil {
		err = affected(tag)
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
	_, err := s.db(ctx).Exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1,$2,$3,$4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.UserID, c.ClientID, list(c.Scopes), ts(c.GrantedAt))
	if err != nil {
		return fmt.Errorf("put consent of user %q for client %q: %w", c.UserID, c.ClientID, mapErr(err))
	}
	return nil
}

func scanConsent(row pgx.Row) (storage.Consent, error) {
	var (
		c       storage.Consent
		granted pgtype.Timestamptz
	)
	if err := row.Scan(&c.UserID, &c.ClientID, &c.Scopes, &granted); err != nil {
		return storage.Consent{}, mapErr(err)
	}
	c.GrantedAt, c.Scopes = fromTS(granted), listOrNil(c.Scopes)
	return c, nil
}

// GetConsent returns the consent userID gave clientID.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (storage.Consent, error) {
	c, err := scanConsent(s.db(ctx).QueryRow(ctx, `SELECT user_id, client_id, scopes, granted_at FROM consents
		WHERE user_id = $1 AND client_id = $2`, userID, clientID))
	if err != nil {
		return storage.Consent{}, fmt.Errorf("get consent of user %q for client %q: %w", userID, clientID, err)
	}
	return c, nil
}

// ListUserConsents returns a user's consents ordered by client ID.
func (s *Store) ListUserConsents(ctx context.Context, userID string) ([]storage.Consent, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT user_id, client_id, scopes, granted_at FROM consents
		WHERE user_id = $1 ORDER BY client_id COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("list consents of user %q: %w", userID, mapErr(err))
	}
	out, err := collect(rows, scanConsent)
	if err != nil {
		return nil, fmt.Errorf("list consents of user %q: %w", userID, err)
	}
	return out, nil
}

// DeleteConsent deletes the consent userID gave clientID.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM consents WHERE user_id = $1 AND client_id = $2`, userID, clientID)
	if err == nil {
		err = affected(tag)
	}
	if err != nil {
		return fmt.Errorf("delete consent of user %q for client %q: %w", userID, clientID, mapErr(err))
	}
	return nil
}

const credentialColumns = `id, user_id, public_key, sign_count, aaguid, transports, backup_eligible,
	backup_state, user_verified, attestation_format, attestation, nickname, clone_warning, created_at, last_used_at`

func credentialArgs(c storage.Credential) []any {
	return []any{c.ID, c.UserID, blob(c.PublicKey), int64(c.SignCount), blob(c.AAGUID), list(c.Transports), c.BackupEligible,
		c.BackupState, c.UserVerified, c.AttestationFormat, blob(c.Attestation), c.Nickname,
		c.CloneWarning, ts(c.CreatedAt), ts(c.LastUsedAt)}
}

func scanCredential(row pgx.Row) (storage.Credential, error) {
	var (
		c             storage.Credential
		signCount     int64
		created, used pgtype.Timestamptz
	)
	err := row.Scan(&c.ID, &c.UserID, &c.PublicKey, &signCount, &c.AAGUID, &c.Transports, &c.BackupEligible,
		&c.BackupState, &c.UserVerified, &c.AttestationFormat, &c.Attestation, &c.Nickname, &c.CloneWarning, &created, &used)
	if err != nil {
		return storage.Credential{}, mapErr(err)
	}
	c.SignCount = uint32(signCount)
	c.PublicKey, c.AAGUID, c.Attestation = bytesOrNil(c.PublicKey), bytesOrNil(c.AAGUID), bytesOrNil(c.Attestation)
	c.Transports = listOrNil(c.Transports)
	c.CreatedAt, c.LastUsedAt = fromTS(created), fromTS(used)
	return c, nil
}

// CreateCredential stores a passkey; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateCredential(ctx context.Context, c storage.Credential) error {
	if len(c.ID) == 0 {
		return errors.New("create credential: empty id")
	}
	err := s.insert(ctx, `INSERT INTO credentials (`+credentialColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`, credentialArgs(c)...)
	if err != nil {
		return fmt.Errorf("create credential %x: %w", c.ID, mapErr(err))
	}
	return nil
}

const getCredentialQuery = `SELECT ` + credentialColumns + ` FROM credentials WHERE id = $1`

// GetCredential returns the passkey with id.
func (s *Store) GetCredential(ctx context.Context, id []byte) (storage.Credential, error) {
	c, err := scanCredential(s.db(ctx).QueryRow(ctx, getCredentialQuery, id))
	if err != nil {
		return storage.Credential{}, fmt.Errorf("get credential %x: %w", id, err)
	}
	return c, nil
}

// ListUserCredentials returns a user's passkeys, oldest first.
func (s *Store) ListUserCredentials(ctx context.Context, userID string) ([]storage.Credential, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = $1
		ORDER BY created_at NULLS FIRST, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list credentials of user %q: %w", userID, mapErr(err))
	}
	out, err := collect(rows, scanCredential)
	if err != nil {
		return nil, fmt.Errorf("list credentials of user %q: %w", userID, err)
	}
	return out, nil
}

// UpdateCredential replaces the passkey with what update returns; the row is
// locked from read to write, which sign-count checks rely on.
func (s *Store) UpdateCredential(ctx context.Context, id []byte, update func(storage.Credential) (storage.Credential, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanCredential(db.QueryRow(ctx, getCredentialQuery+` FOR UPDATE`, id))
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
		_, err = db.Exec(ctx, `UPDATE credentials SET user_id=$2, public_key=$3, sign_count=$4, aaguid=$5,
			transports=$6, backup_eligible=$7, backup_state=$8, user_verified=$9, attestation_format=$10,
			attestation=$11, nickname=$12, clone_warning=$13, created_at=$14, last_used_at=$15 WHERE id=$1`,
			credentialArgs(c)...)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update credential %x: %w", id, err)
	}
	return nil
}

// DeleteCredential deletes the passkey with id.
func (s *Store) DeleteCredential(ctx context.Context, id []byte) error {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM credentials WHERE id = $1`, id)
	if err == nil {
		err = affected(tag)
	}
	if err != nil {
		return fmt.Errorf("delete credential %x: %w", id, mapErr(err))
	}
	return nil
}
