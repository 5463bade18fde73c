-- docent metadata schema (PostgreSQL): the end state of the SQLite migrations 0001..0005 in one
-- step, with native types — TIMESTAMPTZ times (millisecond precision, as written by the store),
-- BIGINT counters, BOOLEAN flags, JSONB documents and BYTEA vectors. Every tenant-owned row
-- carries tenant_id. Ids compare bytewise (COLLATE "C") so keyset pages follow their order as
-- in Rust and SQLite. `seq` columns give insertion order where SQLite used its rowid.

CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE collections (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT,
    metadata         JSONB NOT NULL DEFAULT '{}',
    embedding_model  TEXT,
    embedding_dim    BIGINT,
    -- the language its text is analysed in for keyword search (ISO 639-1, or 'none')
    language         TEXT NOT NULL DEFAULT 'en',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX collections_by_tenant ON collections (tenant_id, id);

CREATE TABLE documents (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    collection_id  TEXT COLLATE "C" NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    filename       TEXT NOT NULL,
    declared_mime  TEXT NOT NULL,
    detected_type  TEXT,
    size_bytes     BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    metadata       JSONB NOT NULL DEFAULT '{}',
    page_count     BIGINT,
    chunk_count    BIGINT NOT NULL DEFAULT 0,
    task_id        TEXT COLLATE "C",
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, collection_id, sha256)
);
CREATE INDEX documents_by_tenant ON documents (tenant_id, id);
CREATE INDEX documents_by_collection ON documents (tenant_id, collection_id, id);

CREATE TABLE chunks (
    document_id    TEXT COLLATE "C" NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal        BIGINT NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    collection_id  TEXT COLLATE "C" NOT NULL,
    text           TEXT NOT NULL,
    char_start     BIGINT NOT NULL,
    char_end       BIGINT NOT NULL,
    page           BIGINT,
    heading_path   JSONB NOT NULL DEFAULT '[]',
    metadata       JSONB NOT NULL DEFAULT '{}',
    -- little-endian f32 vector from the collection's embedding model, when one is configured
    embedding      BYTEA,
    PRIMARY KEY (document_id, ordinal)
);
CREATE INDEX chunks_by_collection ON chunks (tenant_id, collection_id);
CREATE INDEX chunks_by_tenant ON chunks (tenant_id, document_id, ordinal);

-- The task table is both the job monitor (state, progress, errors) and, with the `sql` queue
-- backend, the queue itself (lease token + expiry = visibility timeout).
CREATE TABLE tasks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    document_id       TEXT COLLATE "C",
    collection_id     TEXT COLLATE "C",
    payload           JSONB NOT NULL DEFAULT 'null',
    attempts          BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    lease_token       TEXT,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    run_after         TIMESTAMPTZ NOT NULL,
    chunks_total      BIGINT NOT NULL DEFAULT 0,
    chunks_done       BIGINT NOT NULL DEFAULT 0,
    rows_failed       BIGINT NOT NULL DEFAULT 0,
    error_code        TEXT,
    error_message     TEXT,
    dead_lettered     BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);
CREATE INDEX tasks_runnable ON tasks (status, run_after);
CREATE INDEX tasks_by_tenant ON tasks (tenant_id, id);
CREATE INDEX tasks_by_document ON tasks (tenant_id, document_id);

-- Accounts and access. Users are global (one row per person); a user belongs to tenants
-- through memberships with a role. Secrets are stored only as hashes: refresh tokens,
-- one-time tokens and API keys as SHA-256 hex, passwords as argon2id PHC strings.
CREATE TABLE users (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    -- trimmed and lowercased by the service; NULL only for external accounts without one
    email              TEXT UNIQUE,
    display_name       TEXT,
    password_hash      TEXT,
    email_verified_at  TIMESTAMPTZ,
    disabled_at        TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    seq                BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE memberships (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at  TIMESTAMPTZ NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, created_at);

-- A login session is one family of rotating refresh tokens, acting in one tenant.
CREATE TABLE auth_sessions (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    revoked_reason  TEXT
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_by_tenant ON auth_sessions (tenant_id, user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- set when rotated; presenting a used token again revokes the session
    used_at     TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Email verification, password reset, invitation and first-run setup tokens: single use.
CREATE TABLE one_time_tokens (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'invite', 'setup')),
    user_id     TEXT COLLATE "C" REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT COLLATE "C" REFERENCES tenants(id) ON DELETE CASCADE,
    email       TEXT,
    role        TEXT,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (purpose, user_id);

CREATE TABLE api_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    -- public part of `dk_<prefix>_<secret>`, for lookup and display
    prefix         TEXT NOT NULL UNIQUE,
    -- SHA-256 hex of the whole key
    secret_hash    TEXT NOT NULL,
    access         TEXT NOT NULL CHECK (access IN ('read', 'read_write')),
    -- JSON arrays of ids, or NULL for every collection / bot of the tenant
    collection_ids JSONB,
    bot_ids        JSONB,
    created_by     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

-- Users of external identity providers (OIDC), by issuer and subject.
CREATE TABLE external_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- A provider's tenant (organisation) ids mapped to docent tenants.
CREATE TABLE tenant_aliases (
    issuer       TEXT NOT NULL,
    external_id  TEXT COLLATE "C" NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, external_id)
);

-- Bots, their conversations and messages. Deleting a bot deletes its conversations and their
-- messages (ON DELETE CASCADE).
CREATE TABLE bots (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT,
    system_prompt    TEXT NOT NULL,
    -- chat model name; NULL: the server's default
    model            TEXT,
    temperature      DOUBLE PRECISION NOT NULL,
    max_tokens       BIGINT,
    top_k            BIGINT NOT NULL,
    retrieval_mode   TEXT NOT NULL CHECK (retrieval_mode IN ('hybrid', 'keyword', 'vector')),
    min_score        DOUBLE PRECISION,
    welcome_message  TEXT,
    -- JSON array of origins (`https://host[:port]`); only ever read whole, with the bot
    allowed_origins  JSONB NOT NULL DEFAULT '[]',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX bots_by_tenant ON bots (tenant_id, id);

-- A bot's collections as a join table (see the SQLite 0004 migration for why); `position`
-- keeps the order the bot was given.
CREATE TABLE bot_collections (
    bot_id         TEXT COLLATE "C" NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    collection_id  TEXT COLLATE "C" NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (bot_id, collection_id)
);
CREATE INDEX bot_collections_by_collection ON bot_collections (tenant_id, collection_id);

CREATE TABLE conversations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    bot_id      TEXT COLLATE "C" NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    title       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_by_bot ON conversations (tenant_id, bot_id, id);

CREATE TABLE messages (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    tenant_id          TEXT COLLATE "C" NOT NULL,
    conversation_id    TEXT COLLATE "C" NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content            TEXT NOT NULL,
    -- JSON array of {marker, document_id, chunk_id, page, char_start, char_end}
    citations          JSONB NOT NULL DEFAULT '[]',
    prompt_tokens      BIGINT,
    completion_tokens  BIGINT,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (tenant_id, conversation_id, id);

-- Record files are ingested in batches; the checkpoint of the task now ingesting a document:
-- chunks with an ordinal below next_ordinal are committed (stored, or their row ledgered).
CREATE TABLE ingest_checkpoints (
    document_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    tenant_id     TEXT COLLATE "C" NOT NULL,
    task_id       TEXT COLLATE "C" NOT NULL,
    next_ordinal  BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Rows of a record file that failed (row = 1-based record number, header excluded).
CREATE TABLE failed_rows (
    document_id  TEXT COLLATE "C" NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    row_number   BIGINT NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    error_code   TEXT NOT NULL,
    message      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (document_id, row_number)
);
CREATE INDEX failed_rows_by_tenant ON failed_rows (tenant_id, document_id, row_number);

-- Wake workers when a task becomes pending: NOTIFY on `docent_tasks_<schema>` (one channel per
-- schema, so deployments sharing a database do not wake each other). Workers also poll, so a
-- lost notification only delays a task by one poll interval.
CREATE FUNCTION docent_notify_task() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('docent_tasks_' || TG_TABLE_SCHEMA, NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tasks_notify AFTER INSERT OR UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION docent_notify_task();
