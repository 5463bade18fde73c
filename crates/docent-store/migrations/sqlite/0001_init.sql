-- docent metadata schema (SQLite). Every row carries tenant_id; times are unix milliseconds.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Accounts. Filled by the authentication feature; a user belongs to one tenant per row.
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    display_name TEXT,
    role         TEXT NOT NULL DEFAULT 'member',
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE collections (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    embedding_model  TEXT,
    embedding_dim    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX collections_by_tenant ON collections (tenant_id, id);

CREATE TABLE documents (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    collection_id  TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    filename       TEXT NOT NULL,
    declared_mime  TEXT NOT NULL,
    detected_type  TEXT,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    page_count     INTEGER,
    chunk_count    INTEGER NOT NULL DEFAULT 0,
    task_id        TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, collection_id, sha256)
);
CREATE INDEX documents_by_tenant ON documents (tenant_id, id);
CREATE INDEX documents_by_collection ON documents (tenant_id, collection_id, id);

CREATE TABLE chunks (
    document_id    TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal        INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,
    collection_id  TEXT NOT NULL,
    text           TEXT NOT NULL,
    char_start     INTEGER NOT NULL,
    char_end       INTEGER NOT NULL,
    page           INTEGER,
    heading_path   TEXT NOT NULL DEFAULT '[]',
    metadata       TEXT NOT NULL DEFAULT '{}',
    -- little-endian f32 vector from the collection's embedding model, when one is configured
    embedding      BLOB,
    PRIMARY KEY (document_id, ordinal)
);
CREATE INDEX chunks_by_collection ON chunks (tenant_id, collection_id);

-- The task table is both the job monitor (state, progress, errors) and, with the `sql` queue
-- backend, the queue itself (lease token + expiry = visibility timeout).
CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    document_id       TEXT,
    collection_id     TEXT,
    payload           TEXT NOT NULL DEFAULT 'null',
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    lease_token       TEXT,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    run_after         INTEGER NOT NULL,
    chunks_total      INTEGER NOT NULL DEFAULT 0,
    chunks_done       INTEGER NOT NULL DEFAULT 0,
    rows_failed       INTEGER NOT NULL DEFAULT 0,
    error_code        TEXT,
    error_message     TEXT,
    dead_lettered     INTEGER NOT NULL DEFAULT 0,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX tasks_runnable ON tasks (status, run_after);
CREATE INDEX tasks_by_tenant ON tasks (tenant_id, id);
CREATE INDEX tasks_by_document ON tasks (tenant_id, document_id);
