-- Times are Unix microseconds (INTEGER, NULL for the zero time) so that they
-- sort and compare as numbers; string lists are JSON arrays (NULL when empty).

-- +goose Up
CREATE TABLE clients (
    id                             TEXT    NOT NULL PRIMARY KEY,
    secret_hash                    BLOB,
    secret_expires_at              INTEGER,
    name                           TEXT    NOT NULL,
    redirect_uris                  TEXT,
    post_logout_redirect_uris      TEXT,
    grant_types                    TEXT,
    response_types                 TEXT,
    scopes                         TEXT,
    audience                       TEXT,
    token_endpoint_auth_method     TEXT    NOT NULL,
    jwks                           BLOB,
    jwks_uri                       TEXT    NOT NULL,
    require_pkce                   INTEGER NOT NULL,
    require_par                    INTEGER NOT NULL,
    access_token_format            TEXT    NOT NULL,
    registration_access_token_hash BLOB,
    metadata                       BLOB,
    created_at                     INTEGER,
    updated_at                     INTEGER
);

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL,
    created_at    INTEGER,
    updated_at    INTEGER
);

CREATE TABLE sessions (
    id             TEXT NOT NULL PRIMARY KEY,
    user_id        TEXT NOT NULL,
    acr            TEXT NOT NULL,
    amr            TEXT,
    auth_time      INTEGER,
    elevated_until INTEGER,
    base_acr       TEXT NOT NULL,
    base_amr       TEXT,
    base_auth_time INTEGER,
    user_agent     TEXT NOT NULL,
    ip_address     TEXT NOT NULL,
    created_at     INTEGER,
    last_seen_at   INTEGER,
    expires_at     INTEGER
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT,
    granted_at INTEGER,
    PRIMARY KEY (user_id, client_id)
) WITHOUT ROWID;
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE auth_requests (
    id         TEXT NOT NULL PRIMARY KEY,
    client_id  TEXT NOT NULL,
    form       TEXT NOT NULL,
    session_id TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    data       BLOB,
    created_at INTEGER,
    expires_at INTEGER
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE requests (
    kind             TEXT    NOT NULL,
    signature        TEXT    NOT NULL,
    request_id       TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    active           INTEGER NOT NULL,
    deactivated_at   INTEGER,
    access_signature TEXT    NOT NULL,
    requested_at     INTEGER,
    expires_at       INTEGER,
    data             BLOB,
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
    private       BLOB,
    created_at    INTEGER,
    retired_at    INTEGER,
    publish_until INTEGER
);

CREATE TABLE registration_tokens (
    hash       TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER,
    expires_at INTEGER
) WITHOUT ROWID;

CREATE TABLE assertion_jtis (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX assertion_jtis_expires_at ON assertion_jtis (expires_at);

CREATE TABLE credentials (
    id                 BLOB    NOT NULL PRIMARY KEY,
    user_id            TEXT    NOT NULL,
    public_key         BLOB,
    sign_count         INTEGER NOT NULL,
    aaguid             BLOB,
    transports         TEXT,
    backup_eligible    INTEGER NOT NULL,
    backup_state       INTEGER NOT NULL,
    user_verified      INTEGER NOT NULL,
    attestation_format TEXT    NOT NULL,
    attestation        BLOB,
    nickname           TEXT    NOT NULL,
    clone_warning      INTEGER NOT NULL,
    created_at         INTEGER,
    last_used_at       INTEGER
);
CREATE INDEX credentials_user_id ON credentials (user_id, created_at);

CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    ip_address TEXT    NOT NULL,
    time       INTEGER,
    data       BLOB
);
CREATE INDEX events_time ON events (time, id);
CREATE INDEX events_user_id ON events (user_id, time, id);
CREATE INDEX events_type ON events (type, time, id);

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
