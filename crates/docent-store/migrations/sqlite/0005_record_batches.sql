-- Record files (CSV/TSV/JSONL/XLSX) are ingested in batches: each batch of chunks is committed
-- with the task's checkpoint in one transaction, so a re-leased task resumes after the last
-- committed batch. Rows that could not be processed go to a per-row ledger.

-- The checkpoint of the task now ingesting a document in batches: chunks with an ordinal below
-- next_ordinal are committed (stored, or their row ledgered).
CREATE TABLE ingest_checkpoints (
    document_id   TEXT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    next_ordinal  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Rows of a record file that failed (row = 1-based record number, header excluded).
CREATE TABLE failed_rows (
    document_id  TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    row_number   INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    error_code   TEXT NOT NULL,
    message      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (document_id, row_number)
);
CREATE INDEX failed_rows_by_tenant ON failed_rows (tenant_id, document_id, row_number);
