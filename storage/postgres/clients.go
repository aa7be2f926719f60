package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stepwise-id/stepwise/storage"
)

const clientColumns = `id, secret_hash, secret_expires_at, name, redirect_uris,
	post_logout_redirect_uris, grant_types, response_types, scopes, audience,
	token_endpoint_auth_method, jwks, jwks_uri, require_pkce, require_par,
	access_token_format, registration_access_token_hash, metadata, created_at, updated_at`

func clientArgs(c storage.Client) []any {
	return []any{c.ID, blob(c.SecretHash), ts(c.SecretExpiresAt), c.Name, list(c.RedirectURIs),
		list(c.PostLogoutRedirectURIs), list(c.GrantTypes), list(c.ResponseTypes), list(c.Scopes), list(c.Audience),
		c.TokenEndpointAuthMethod, blob(c.JWKS), c.JWKSURI, c.RequirePKCE, c.RequirePAR,
		c.AccessTokenFormat, blob(c.RegistrationAccessTokenHash), blob(c.Metadata), ts(c.CreatedAt), ts(c.UpdatedAt)}
}

func scanClient(row pgx.Row) (storage.Client, error) {
	var (
		c                           storage.Client
		secretExp, created, updated pgtype.Timestamptz
	)
	err := row.Scan(&c.ID, &c.SecretHash, &secretExp, &c.Name, &c.RedirectURIs,
		&c.PostLogoutRedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Audience,
		&c.TokenEndpointAuthMethod, &c.JWKS, &c.JWKSURI, &c.RequirePKCE, &c.RequirePAR,
		&c.AccessTokenFormat, &c.RegistrationAccessTokenHash, &c.Metadata, &created, &updated)
	if err != nil {
		return storage.Client{}, mapErr(err)
	}
	c.SecretExpiresAt, c.CreatedAt, c.UpdatedAt = fromTS(secretExp), fromTS(created), fromTS(updated)
	c.SecretHash, c.JWKS = bytesOrNil(c.SecretHash), bytesOrNil(c.JWKS)
	c.RegistrationAccessTokenHash, c.Metadata = bytesOrNil(c.RegistrationAccessTokenHash), bytesOrNil(c.Metadata)
	c.RedirectURIs, c.PostLogoutRedirectURIs = listOrNil(c.RedirectURIs), listOrNil(c.PostLogoutRedirectURIs)
	c.GrantTypes, c.ResponseTypes = listOrNil(c.GrantTypes), listOrNil(c.ResponseTypes)
	c.Scopes, c.Audience = listOrNil(c.Scopes), listOrNil(c.Audience)
	return c, nil
}

// CreateClient stores c; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if c.ID == "" {
		return errors.New("create client: empty id")
	}
	err := s.insert(ctx, `INSERT INTO clients (`+clientColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`, clientArgs(c)...)
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

const getClientQuery = `SELECT ` + clientColumns + ` FROM clients WHERE id = $1`

// GetClient returns the client with id.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	c, err := scanClient(s.db(ctx).QueryRow(ctx, getClientQuery, id))
	if err != nil {
		return storage.Client{}, fmt.Errorf("get client %q: %w", id, err)
	}
	return c, nil
}

// ListClients returns every client ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", mapErr(err))
	}
	out, err := collect(rows, scanClient)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// UpdateClient replaces the client with what update returns; the row is
// locked from read to write.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(storage.Client) (storage.Client, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanClient(db.QueryRow(ctx, getClientQuery+` FOR UPDATE`, id))
		if err != nil {
			return err
		}
		c, err := update(old)
		if err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("id changed to %q", c.ID)
		}
		_, err = db.Exec(ctx, `UPDATE clients SET secret_hash=$2, secret_expires_at=$3, name=$4,
			redirect_uris=$5, post_logout_redirect_uris=$6, grant_types=$7, response_types=$8, scopes=$9,
			audience=$10, token_endpoint_auth_method=$11, jwks=$12, jwks_uri=$13, require_pkce=$14,
			require_par=$15, access_token_format=$16, registration_access_token_hash=$17, metadata=$18,
			created_at=$19, updated_at=$20 WHERE id=$1`, clientArgs(c)...)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update client %q: %w", id, err)
	}
	return nil
}

// DeleteClient deletes the client together with its consents and the
// protocol rows issued to it, so no token outlives its client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		tag, err := db.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if err := affected(tag); err != nil {
			return err
		}
		if _, err := db.Exec(ctx, `DELETE FROM consents WHERE client_id = $1`, id); err != nil {
			return err
		}
		_, err = db.Exec(ctx, `DELETE FROM requests WHERE client_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete client %q: %w", id, mapErr(err))
	}
	return nil
}

const keyColumns = `id, algorithm, private, created_at, retired_at, publish_until`

func scanKey(row pgx.Row) (storage.SigningKey, error) {
	var (
		k                         storage.SigningKey
		created, retired, publish pgtype.Timestamptz
	)
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired, &publish); err != nil {
		return storage.SigningKey{}, mapErr(err)
	}
	k.Private = bytesOrNil(k.Private)
	k.CreatedAt, k.RetiredAt, k.PublishUntil = fromTS(created), fromTS(retired), fromTS(publish)
	return k, nil
}

// CreateKey stores a signing key; ErrAlreadyExists if its kid is taken.
func (s *Store) CreateKey(ctx context.Context, k storage.SigningKey) error {
	if k.ID == "" {
		return errors.New("create key: empty id")
	}
	err := s.insert(ctx, `INSERT INTO signing_keys (`+keyColumns+`) VALUES ($1,$2,$3,$4,$5,$6)`,
		k.ID, k.Algorithm, blob(k.Private), ts(k.CreatedAt), ts(k.RetiredAt), ts(k.PublishUntil))
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.ID, mapErr(err))
	}
	return nil
}

// ListKeys returns every key, newest first.
func (s *Store) ListKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.db(ctx).Query(ctx, `SELECT `+keyColumns+` FROM signing_keys
		ORDER BY created_at DESC NULLS LAST, id COLLATE "C" DESC`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", mapErr(err))
	}
	out, err := collect(rows, scanKey)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// UpdateKey replaces the key with what update returns; the row is locked
// from read to write.
func (s *Store) UpdateKey(ctx context.Context, id string, update func(storage.SigningKey) (storage.SigningKey, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		old, err := scanKey(db.QueryRow(ctx, `SELECT `+keyColumns+` FROM signing_keys WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		k, err := update(old)
		if err != nil {
			return err
		}
		if k.ID != id {
			return fmt.Errorf("id changed to %q", k.ID)
		}
		_, err = db.Exec(ctx, `UPDATE signing_keys SET algorithm=$2, private=$3, created_at=$4, retired_at=$5,
			publish_until=$6 WHERE id=$1`,
			id, k.Algorithm, blob(k.Private), ts(k.CreatedAt), ts(k.RetiredAt), ts(k.PublishUntil))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update key %q: %w", id, err)
	}
	return nil
}

// CreateRegistrationToken stores an initial access token's hash.
func (s *Store) CreateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error {
	if t.Hash == "" {
		return errors.New("create registration token: empty hash")
	}
	err := s.insert(ctx, `INSERT INTO registration_tokens (hash, created_at, expires_at) VALUES ($1,$2,$3)`,
		t.Hash, ts(t.CreatedAt), ts(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create registration token: %w", mapErr(err))
	}
	return nil
}

// GetRegistrationToken returns the token with hash, expired or not; the
// caller checks ExpiresAt.
func (s *Store) GetRegistrationToken(ctx context.Context, hash string) (storage.RegistrationToken, error) {
	var (
		t                storage.RegistrationToken
		created, expires pgtype.Timestamptz
	)
	err := s.db(ctx).QueryRow(ctx, `SELECT hash, created_at, expires_at FROM registration_tokens WHERE hash = $1`, hash).
		Scan(&t.Hash, &created, &expires)
	if err != nil {
		return storage.RegistrationToken{}, fmt.Errorf("get registration token: %w", mapErr(err))
	}
	t.CreatedAt, t.ExpiresAt = fromTS(created), fromTS(expires)
	return t, nil
}

// DeleteRegistrationToken deletes the token with hash.
func (s *Store) DeleteRegistrationToken(ctx context.Context, hash string) error {
	tag, err := s.db(ctx).Exec(ctx, `DELETE FROM registration_tokens WHERE hash = $1`, hash)
	if err == nil {
		err = affected(tag)
	}
	if err != nil {
		return fmt.Errorf("delete registration token: %w", mapErr(err))
	}
	return nil
}

// UseJTI records jti until expiresAt. The upsert replaces only an expired
// row; concurrent inserts of one key wait on each other, so exactly one
// caller sees a row affected.
func (s *Store) UseJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	if jti == "" {
		return errors.New("use jti: empty jti")
	}
	tag, err := s.db(ctx).Exec(ctx, `INSERT INTO assertion_jtis (jti, expires_at) VALUES ($1, $2)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE assertion_jtis.expires_at <= $3`, jti, expiresAt.UnixMicro(), now.UnixMicro())
	if err != nil {
		return fmt.Errorf("use jti %q: %w", jti, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("use jti %q: %w", jti, storage.ErrAlreadyExists)
	}
	return nil
}
