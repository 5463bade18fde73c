-- The language a collection's text is analysed in for keyword search (ISO 639-1, or 'none').
ALTER TABLE collections ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
