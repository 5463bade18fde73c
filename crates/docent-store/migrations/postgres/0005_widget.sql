-- The embeddable chat widget (see the SQLite 0010 migration for what each table is for).
ALTER TABLE bots ADD COLUMN widget_sources TEXT NOT NULL DEFAULT 'none'
    CHECK (widget_sources IN ('none', 'names', 'snippets'));
ALTER TABLE bots ADD COLUMN widget_color TEXT;

ALTER TABLE conversations ADD COLUMN owner_visitor TEXT COLLATE "C";
ALTER TABLE conversations ADD COLUMN widget_key_id TEXT COLLATE "C";
ALTER TABLE conversations DROP CONSTRAINT conversations_one_owner;
ALTER TABLE conversations ADD CONSTRAINT conversations_one_owner CHECK (
    (owner_user_id IS NOT NULL)::int + (owner_key_id IS NOT NULL)::int
        + (owner_visitor IS NOT NULL)::int <= 1
);
CREATE INDEX conversations_by_visitor ON conversations (tenant_id, bot_id, owner_visitor)
    WHERE owner_visitor IS NOT NULL;

CREATE TABLE widget_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    bot_id       TEXT COLLATE "C" NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    key          TEXT COLLATE "C" NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    daily_quota  BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX widget_keys_by_bot ON widget_keys (tenant_id, bot_id, id);

CREATE TABLE widget_usage (
    key_id     TEXT COLLATE "C" NOT NULL REFERENCES widget_keys(id) ON DELETE CASCADE,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    day        TEXT COLLATE "C" NOT NULL,
    messages   BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

CREATE TABLE widget_refusals (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    bot_id     TEXT COLLATE "C" NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    origin     TEXT COLLATE "C" NOT NULL,
    reason     TEXT NOT NULL,
    count      BIGINT NOT NULL,
    last_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bot_id, origin, reason)
);
CREATE INDEX widget_refusals_by_bot ON widget_refusals (tenant_id, bot_id, last_at);

CREATE TABLE widget_secret (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    secret  TEXT NOT NULL
);
