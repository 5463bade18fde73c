-- Bots, their conversations and messages. Every row carries tenant_id; times are unix
-- milliseconds. Deleting a bot deletes its conversations and their messages (ON DELETE CASCADE).

CREATE TABLE bots (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT,
    system_prompt    TEXT NOT NULL,
    -- chat model name; NULL: the server's default
    model            TEXT,
    temperature      REAL NOT NULL,
    max_tokens       INTEGER,
    top_k            INTEGER NOT NULL,
    retrieval_mode   TEXT NOT NULL CHECK (retrieval_mode IN ('hybrid', 'keyword', 'vector')),
    min_score        REAL,
    welcome_message  TEXT,
    -- JSON array of origins (`https://host[:port]`); only ever read whole, with the bot
    allowed_origins  TEXT NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX bots_by_tenant ON bots (tenant_id, id);

-- A bot's collections as a join table rather than a JSON list: the foreign key to collections
-- drops a deleted collection from every bot that named it (no dangling ids), and lists can ask
-- in SQL for the bots whose collections all lie inside an API key's scope, or for the documents
-- of a bot's collections. `position` keeps the order the bot was given.
CREATE TABLE bot_collections (
    bot_id         TEXT NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    collection_id  TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (bot_id, collection_id)
);
CREATE INDEX bot_collections_by_collection ON bot_collections (tenant_id, collection_id);

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    bot_id      TEXT NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    title       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX conversations_by_bot ON conversations (tenant_id, bot_id, id);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content            TEXT NOT NULL,
    -- JSON array of {marker, document_id, chunk_id, page, char_start, char_end}
    citations          TEXT NOT NULL DEFAULT '[]',
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (tenant_id, conversation_id, id);
