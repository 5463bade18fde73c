-- The embeddable chat widget. Times are unix milliseconds.
--
-- A bot's widget settings: what visitors see of cited sources, and an accent colour.
ALTER TABLE bots ADD COLUMN widget_sources TEXT NOT NULL DEFAULT 'none'
    CHECK (widget_sources IN ('none', 'names', 'snippets'));
ALTER TABLE bots ADD COLUMN widget_color TEXT;

-- A widget conversation belongs to an anonymous visitor (a keyed hash of the secret their
-- browser keeps) and records the key they came through (NULL: the console's preview).
ALTER TABLE conversations ADD COLUMN owner_visitor TEXT;
ALTER TABLE conversations ADD COLUMN widget_key_id TEXT;
CREATE INDEX conversations_by_visitor ON conversations (tenant_id, bot_id, owner_visitor)
    WHERE owner_visitor IS NOT NULL;

-- Publishable keys: one bot each. `key` is public (it sits in web pages), looked up by its text.
CREATE TABLE widget_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    bot_id       TEXT NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    key          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    daily_quota  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX widget_keys_by_bot ON widget_keys (tenant_id, bot_id, id);

-- Messages taken per key and UTC day (`YYYY-MM-DD`): the quota every process shares.
CREATE TABLE widget_usage (
    key_id     TEXT NOT NULL REFERENCES widget_keys(id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    day        TEXT NOT NULL,
    messages   INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);

-- Origins a bot's widget refused (frames and sessions), counted: why a site gets no chat.
CREATE TABLE widget_refusals (
    tenant_id  TEXT NOT NULL,
    bot_id     TEXT NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    origin     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    count      INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    PRIMARY KEY (bot_id, origin, reason)
);
CREATE INDEX widget_refusals_by_bot ON widget_refusals (tenant_id, bot_id, last_at);

-- The secret widget sessions and visitor hashes are keyed with (one row, made on first use).
CREATE TABLE widget_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  TEXT NOT NULL
);
