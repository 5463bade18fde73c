-- Direct uploads: the client PUTs the bytes to a presigned S3 URL, then asks docent to complete
-- the upload, which checks size and sha256 and registers the document. Until then the upload
-- waits here. Its id is the id of the document it becomes; blob_key is that document's
-- original key (where the client puts the bytes).
CREATE TABLE pending_uploads (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    collection_id  TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    filename       TEXT NOT NULL,
    declared_mime  TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX pending_uploads_by_tenant ON pending_uploads (tenant_id, collection_id, id);
