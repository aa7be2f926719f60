-- Byte slices are BYTEA (never JSONB) so opaque payloads round-trip byte for
-- byte; string lists are TEXT[]; NULL stands for a zero time or empty list.

-- +goose Up
CREATE TABLE clients (
    id                             TEXT        NOT NULL PRIMARY KEY,
    secret_hash                    BYTEA,
    secret_expires_at              TIMESTAMPTZ,
    name                           TEXT        NOT NULL,
    redirect_uris                  TEXT[],
    post_logout_redirect_uris      TEXT[],
    grant_types                    TEXT[],
    response_types                 TEXT[],
    scopes                         TEXT[],
    audience                       TEXT[],
    token_endpoint_auth_method     TEXT        NOT NULL,
    jwks                           BYTEA,
    jwks_uri                       TEXT        NOT NULL,
    require_pkce                   BOOLEAN     NOT NULL,
    require_par                    BOOLEAN     NOT NULL,
    access_token_format            TEXT        NOT NULL,
    registration_access_token_hash BYTEA,
    metadata                       BYTEA,
    created_at                     TIMESTAMPTZ,
    updated_at                     TIMESTAMPTZ
);

CREATE TABLE users (
    id            TEXT        NOT NULL PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    email         TEXT        NOT NULL,
    display_name  TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    disabled      BOOLEAN     NOT NULL,
    created_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ
);

CREATE TABLE sessions (
    id             TEXT        NOT NULL PRIMARY KEY,
    user_id        TEXT        NOT NULL,
    acr            TEXT        NOT NULL,
    amr            TEXT[],
    auth_time      TIMESTAMPTZ,
    elevated_until TIMESTAMPTZ,
    base_acr       TEXT        NOT NULL,
    base_amr       TEXT[],
    base_auth_time TIMESTAMPTZ,
    user_agent     TEXT        NOT NULL,
    ip_address     TEXT        NOT NULL,
    created_at     TIMESTAMPTZ,
    last_seen_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at NULLS FIRST);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT[],
    granted_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE auth_requests (
    id         TEXT NOT NULL PRIMARY KEY,
    client_id  TEXT NOT NULL,
    form       TEXT NOT NULL,
    session_id TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    data       BYTEA,
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE requests (
    kind             TEXT    NOT NULL,
    signature        TEXT    NOT NULL,
    request_id       TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    active           BOOLEAN NOT NULL,
    deactivated_at   TIMESTAMPTZ,
    access_signature TEXT    NOT NULL,
    requested_at     TIMESTAMPTZ,
    expires_at       TIMESTAMPTZ,
    data             BYTEA,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX requests_request_id ON requests (request_id);
-- Machine grants have no session; leave them out of the index.
CREATE INDEX requests_session_id ON requests (session_id) WHERE session_id <> '';
-- No index on client_id: every token write would pay for it, and only the
-- rare DeleteClient reads by it.
CREATE INDEX requests_expires_at ON requests (expires_at);

CREATE TABLE signing_keys (
    id            TEXT NOT NULL PRIMARY KEY,
    algorithm     TEXT NOT NULL,
    private       BYTEA,
    created_at    TIMESTAMPTZ,
    retired_at    TIMESTAMPTZ,
    publish_until TIMESTAMPTZ
);

CREATE TABLE registration_tokens (
    hash       TEXT NOT NULL PRIMARY KEY,
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ
);

-- expires_at is Unix microseconds: an assertion's exp may be any instant,
-- including the zero time, which TIMESTAMPTZ cannot hold.
CREATE TABLE assertion_jtis (
    jti        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX assertion_jtis_expires_at ON assertion_jtis (expires_at);

CREATE TABLE credentials (
    id                 BYTEA   NOT NULL PRIMARY KEY,
    user_id            TEXT    NOT NULL,
    public_key         BYTEA,
    sign_count         BIGINT  NOT NULL,
    aaguid             BYTEA,
    transports         TEXT[],
    backup_eligible    BOOLEAN NOT NULL,
    backup_state       BOOLEAN NOT NULL,
    user_verified      BOOLEAN NOT NULL,
    attestation_format TEXT    NOT NULL,
    attestation        BYTEA,
    nickname           TEXT    NOT NULL,
    clone_warning      BOOLEAN NOT NULL,
    created_at         TIMESTAMPTZ,
    last_used_at       TIMESTAMPTZ
);
CREATE INDEX credentials_user_id ON credentials (user_id, created_at NULLS FIRST);

CREATE TABLE events (
    id         TEXT NOT NULL PRIMARY KEY,
    type       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    session_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    time       TIMESTAMPTZ,
    data       BYTEA
);
-- Shaped like ListEvents' ORDER BY so a LIMIT query reads the index in order;
-- COLLATE "C" gives the bytewise tie-break SQLite uses.
CREATE INDEX events_time ON events (time DESC NULLS LAST, id COLLATE "C" DESC);
CREATE INDEX events_user_id ON events (user_id, time DESC NULLS LAST, id COLLATE "C" DESC);
CREATE INDEX events_type ON events (type, time DESC NULLS LAST, id COLLATE "C" DESC);

-- +goose Down
DROP TABLE events;
DROP TABLE credentials;
DROP TABLE assertion_jtis;
DROP TABLE registration_tokens;
DROP TABLE signing_keys;
DROP TABLE requests;
DROP TABLE auth_requests;
DROP TABLE consents;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE clients;
