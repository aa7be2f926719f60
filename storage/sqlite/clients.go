package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

const clientColumns = `id, secret_hash, secret_expires_at, name, redirect_uris,
	post_logout_redirect_uris, grant_types, response_types, scopes, audience,
	token_endpoint_auth_method, jwks, jwks_uri, require_pkce, require_par,
	access_token_format, registration_access_token_hash, metadata, created_at, updated_at`

func clientArgs(c storage.Client) ([]any, error) {
	l, err := lists(c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.ResponseTypes, c.Scopes, c.Audience)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, blob(c.SecretHash), micros(c.SecretExpiresAt), c.Name, l[0],
		l[1], l[2], l[3], l[4], l[5],
		c.TokenEndpointAuthMethod, blob(c.JWKS), c.JWKSURI, boolInt(c.RequirePKCE), boolInt(c.RequirePAR),
		c.AccessTokenFormat, blob(c.RegistrationAccessTokenHash), blob(c.Metadata), micros(c.CreatedAt), micros(c.UpdatedAt)}, nil
}

func scanClient(sc scanner) (storage.Client, error) {
	var (
		c                                      storage.Client
		secretExp, created, updated            sql.NullInt64
		redirect, postLogout, grants, respType sql.NullString
		scopes, audience                       sql.NullString
	)
	err := sc.Scan(&c.ID, &c.SecretHash, &secretExp, &c.Name, &redirect,
		&postLogout, &grants, &respType, &scopes, &audience,
		&c.TokenEndpointAuthMethod, &c.JWKS, &c.JWKSURI, &c.RequirePKCE, &c.RequirePAR,
		&c.AccessTokenFormat, &c.RegistrationAccessTokenHash, &c.Metadata, &created, &updated)
	if err != nil {
		return c, mapErr(err)
	}
	c.SecretExpiresAt, c.CreatedAt, c.UpdatedAt = fromMicros(secretExp), fromMicros(created), fromMicros(updated)
	c.SecretHash, c.JWKS = bytesOrNil(c.SecretHash), bytesOrNil(c.JWKS)
	c.RegistrationAccessTokenHash, c.Metadata = bytesOrNil(c.RegistrationAccessTokenHash), bytesOrNil(c.Metadata)
	for _, f := range []struct {
		dst *[]string
		src sql.NullString
	}{{&c.RedirectURIs, redirect}, {&c.PostLogoutRedirectURIs, postLogout}, {&c.GrantTypes, grants},
		{&c.ResponseTypes, respType}, {&c.Scopes, scopes}, {&c.Audience, audience}} {
		if *f.dst, err = parseStrList(f.src); err != nil {
			return c, err
		}
	}
	return c, nil
}

// CreateClient stores c; ErrAlreadyExists if its ID is taken.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if c.ID == "" {
		return errors.New("create client: empty id")
	}
	args, err := clientArgs(c)
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, err)
	}
	_, err = s.exec(ctx, `INSERT INTO clients (`+clientColumns+`)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

const getClientQuery = `SELECT ` + clientColumns + ` FROM clients WHERE id = ?`

// GetClient returns the client with id.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	c, err := scanClient(s.queryRow(ctx, getClientQuery, id))
	if err != nil {
		return storage.Client{}, fmt.Errorf("get client %q: %w", id, err)
	}
	return c, nil
}

// ListClients returns every client ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []storage.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// UpdateClient replaces the client with what update returns, atomically.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(storage.Client) (storage.Client, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanClient(s.queryRow(ctx, getClientQuery, id))
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
		args, err := clientArgs(c)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `UPDATE clients SET secret_hash=?, secret_expires_at=?, name=?,
			redirect_uris=?, post_logout_redirect_uris=?, grant_types=?, response_types=?, scopes=?,
			audience=?, token_endpoint_auth_method=?, jwks=?, jwks_uri=?, require_pkce=?,
			require_par=?, access_token_format=?, registration_access_token_hash=?, metadata=?,
			created_at=?, updated_at=? WHERE id=?`, append(args[1:], id)...)
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
		res, err := s.exec(ctx, `DELETE FROM clients WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if err := affected(res); err != nil {
			return err
		}
		if _, err := s.exec(ctx, `DELETE FROM consents WHERE client_id = ?`, id); err != nil {
			return err
		}
		_, err = s.exec(ctx, `DELETE FROM requests WHERE client_id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete client %q: %w", id, mapErr(err))
	}
	return nil
}

const keyColumns = `id, algorithm, private, created_at, retired_at, publish_until`

func scanKey(sc scanner) (storage.SigningKey, error) {
	var (
		k                         storage.SigningKey
		created, retired, publish sql.NullInt64
	)
	if err := sc.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired, &publish); err != nil {
		return k, mapErr(err)
	}
	k.Private = bytesOrNil(k.Private)
	k.CreatedAt, k.RetiredAt, k.PublishUntil = fromMicros(created), fromMicros(retired), fromMicros(publish)
	return k, nil
}

// CreateKey stores a signing key; ErrAlreadyExists if its kid is taken.
func (s *Store) CreateKey(ctx context.Context, k storage.SigningKey) error {
	if k.ID == "" {
		return errors.New("create key: empty id")
	}
	_, err := s.exec(ctx, `INSERT INTO signing_keys (`+keyColumns+`) VALUES (?,?,?,?,?,?)`,
		k.ID, k.Algorithm, blob(k.Private), micros(k.CreatedAt), micros(k.RetiredAt), micros(k.PublishUntil))
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.ID, mapErr(err))
	}
	return nil
}

// ListKeys returns every key, newest first.
func (s *Store) ListKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.query(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []storage.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// UpdateKey replaces the key with what update returns, atomically.
func (s *Store) UpdateKey(ctx context.Context, id string, update func(storage.SigningKey) (storage.SigningKey, error)) error {
	err := s.inTx(ctx, func(ctx context.Context) error {
		old, err := scanKey(s.queryRow(ctx, `SELECT `+keyColumns+` FROM signing_keys WHERE id = ?`, id))
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
		_, err = s.exec(ctx, `UPDATE signing_keys SET algorithm=?, private=?, created_at=?, retired_at=?,
			publish_until=? WHERE id=?`,
			k.Algorithm, blob(k.Private), micros(k.CreatedAt), micros(k.RetiredAt), micros(k.PublishUntil), id)
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
	_, err := s.exec(ctx, `INSERT INTO registration_tokens (hash, created_at, expires_at) VALUES (?,?,?)`,
		t.Hash, micros(t.CreatedAt), micros(t.ExpiresAt))
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
		created, expires sql.NullInt64
	)
	err := s.queryRow(ctx, `SELECT hash, created_at, expires_at FROM registration_tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &created, &expires)
	if err != nil {
		return storage.RegistrationToken{}, fmt.Errorf("get registration token: %w", mapErr(err))
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	return t, nil
}

// DeleteRegistrationToken deletes the token with hash.
func (s *Store) DeleteRegistrationToken(ctx context.Context, hash string) error {
	res, err := s.exec(ctx, `DELETE FROM registration_tokens WHERE hash = ?`, hash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete registration token: %w", mapErr(err))
	}
	return nil
}

const useJTIQuery = `INSERT INTO assertion_jtis (jti, expires_at) VALUES (?, ?)
	ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
	WHERE assertion_jtis.expires_at <= ?`

// UseJTI records jti until expiresAt. The upsert replaces only an expired
// row, so the check and the insert are one atomic statement.
func (s *Store) UseJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	if jti == "" {
		return errors.New("use jti: empty jti")
	}
	res, err := s.exec(ctx, useJTIQuery, jti, expiresAt.UnixMicro(), now.UnixMicro())
	if err != nil {
		return fmt.Errorf("use jti %q: %w", jti, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("use jti %q: %w", jti, err)
	} else if n == 0 {
		return fmt.Errorf("use jti %q: %w", jti, storage.ErrAlreadyExists)
	}
	return nil
}
