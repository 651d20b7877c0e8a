-- The phonebook (claims 17-22): entries owned by a client, visible to others through labels.
-- An entry without labels is personal to its owner.
CREATE TABLE phonebook_entries (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES clients(id),
    name         TEXT NOT NULL,
    company      TEXT NOT NULL DEFAULT '',
    fax_number   TEXT NOT NULL,
    voice_number TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    notes        TEXT NOT NULL DEFAULT '',
    -- JSON array of tags.
    tags         TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX phonebook_by_owner ON phonebook_entries (owner_id);

CREATE TABLE phonebook_labels (
    entry_id TEXT NOT NULL REFERENCES phonebook_entries(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('everyone', 'client', 'grouping')),
    ref      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (entry_id, kind, ref)
);
