-- Accounts and access. Users are global (one row per person); a user belongs to tenants
-- through memberships with a role. Secrets are stored only as hashes: refresh tokens,
-- one-time tokens and API keys as SHA-256 hex, passwords as argon2id PHC strings.
-- Times are unix milliseconds.

-- The placeholder `users` table of 0001 (one tenant per row, never written) is replaced.
DROP TABLE IF EXISTS users;

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    -- trimmed and lowercased by the service; NULL only for external accounts without one
    email              TEXT UNIQUE,
    display_name       TEXT,
    password_hash      TEXT,
    email_verified_at  INTEGER,
    disabled_at        INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, created_at);

-- A login session is one family of rotating refresh tokens, acting in one tenant.
CREATE TABLE auth_sessions (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_by_tenant ON auth_sessions (tenant_id, user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- set when rotated; presenting a used token again revokes the session
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Email verification, password reset, invitation and first-run setup tokens: single use.
CREATE TABLE one_time_tokens (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'invite', 'setup')),
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    email       TEXT,
    role        TEXT,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (purpose, user_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    -- public part of `dk_<prefix>_<secret>`, for lookup and display
    prefix         TEXT NOT NULL UNIQUE,
    -- SHA-256 hex of the whole key
    secret_hash    TEXT NOT NULL,
    access         TEXT NOT NULL CHECK (access IN ('read', 'read_write')),
    -- JSON arrays of ids, or NULL for every collection / bot of the tenant
    collection_ids TEXT,
    bot_ids        TEXT,
    created_by     TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    last_used_at   INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

-- Users of external identity providers (OIDC), by issuer and subject.
CREATE TABLE external_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- A provider's tenant (organisation) ids mapped to docent tenants.
CREATE TABLE tenant_aliases (
    issuer       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (issuer, external_id)
);
