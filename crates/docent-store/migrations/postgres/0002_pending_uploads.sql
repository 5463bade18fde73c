-- Direct uploads (as SQLite 0006): the client PUTs the bytes to a presigned S3 URL, then asks
-- docent to complete the upload, which checks size and sha256 and registers the document. Its id
-- is the id of the document it becomes; blob_key is that document's original key.
CREATE TABLE pending_uploads (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    collection_id  TEXT COLLATE "C" NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    filename       TEXT NOT NULL,
    declared_mime  TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    metadata       JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_uploads_by_tenant ON pending_uploads (tenant_id, collection_id, id);
