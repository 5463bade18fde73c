-- A conversation belongs to whoever started it: a user or an API key (at most one is set).
-- Conversations from before this migration have neither: only admins read and continue them.
ALTER TABLE conversations ADD COLUMN owner_user_id TEXT;
ALTER TABLE conversations ADD COLUMN owner_key_id TEXT;
