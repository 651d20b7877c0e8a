-- faxhub schema, version 1. Times are Unix milliseconds (INTEGER), ids are prefixed text.
-- Kept to SQL that SQLite and PostgreSQL both accept, so a PostgreSQL migration set can mirror it.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('person', 'application')),
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients(id),
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE groupings (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE grouping_members (
    grouping_id TEXT NOT NULL REFERENCES groupings(id),
    member_kind TEXT NOT NULL CHECK (member_kind IN ('client', 'fax_server')),
    member_id   TEXT NOT NULL,
    PRIMARY KEY (grouping_id, member_kind, member_id)
);
CREATE INDEX grouping_members_by_member ON grouping_members (member_kind, member_id);

CREATE TABLE fax_servers (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    enrollment_token_hash TEXT UNIQUE,
    enrollment_expires_at INTEGER,
    credential_hash       TEXT UNIQUE,
    -- JSON array of E.164 prefixes this fax server may dial; empty array = any number (a default route).
    dial_prefixes         TEXT NOT NULL DEFAULT '[]',
    -- JSON of the capabilities it announced on its last hello.
    capabilities          TEXT NOT NULL DEFAULT '{}',
    enrolled_at           INTEGER,
    last_seen_at          INTEGER,
    created_at            INTEGER NOT NULL
);

CREATE TABLE documents (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    pages      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Who uploaded a document: the same bytes uploaded by two clients are stored once and owned by both.
CREATE TABLE document_owners (
    sha256    TEXT NOT NULL REFERENCES documents(sha256),
    client_id TEXT NOT NULL,
    PRIMARY KEY (sha256, client_id)
);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    batch_id        TEXT NOT NULL,
    client_id       TEXT NOT NULL REFERENCES clients(id),
    recipient       TEXT NOT NULL,
    status          TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    options         TEXT NOT NULL,
    max_tries       INTEGER NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0,
    kill_at         INTEGER NOT NULL,
    not_before      INTEGER NOT NULL,
    pages_total     INTEGER NOT NULL,
    pages_sent      INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX jobs_by_client ON jobs (client_id, created_at);
CREATE INDEX jobs_by_status ON jobs (status);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (client_id, idempotency_key, recipient) WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_documents (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq    INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES documents(sha256),
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE attempts (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL REFERENCES jobs(id),
    number        INTEGER NOT NULL,
    fax_server_id TEXT NOT NULL REFERENCES fax_servers(id),
    status        TEXT NOT NULL,
    phase         TEXT NOT NULL,
    deadline_at   INTEGER,
    page          INTEGER,
    fault         TEXT,
    reason        TEXT,
    t30           TEXT,
    pages_sent    INTEGER NOT NULL DEFAULT 0,
    stats         TEXT,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    UNIQUE (job_id, number)
);
CREATE INDEX attempts_open ON attempts (status, deadline_at);
CREATE INDEX attempts_by_server ON attempts (fax_server_id, status);

CREATE TABLE inbound_faxes (
    id            TEXT PRIMARY KEY,
    fax_server_id TEXT NOT NULL REFERENCES fax_servers(id),
    sha256        TEXT NOT NULL REFERENCES documents(sha256),
    pages         INTEGER NOT NULL,
    caller_number TEXT,
    called_number TEXT,
    tsi           TEXT,
    started_at    TEXT NOT NULL,
    ended_at      TEXT NOT NULL,
    received_at   INTEGER NOT NULL
);

-- Where an inbound fax was delivered: a client's inbox, or a grouping's shared inbox.
CREATE TABLE inbox_entries (
    inbound_id  TEXT NOT NULL REFERENCES inbound_faxes(id),
    target_kind TEXT NOT NULL CHECK (target_kind IN ('client', 'grouping')),
    target_id   TEXT NOT NULL,
    rule_id     TEXT,
    PRIMARY KEY (inbound_id, target_kind, target_id)
);
CREATE INDEX inbox_by_target ON inbox_entries (target_kind, target_id);

CREATE TABLE inbound_rules (
    id             TEXT PRIMARY KEY,
    priority       INTEGER NOT NULL,
    fax_server_id  TEXT,
    called_number  TEXT,
    tsi            TEXT,
    caller_prefix  TEXT,
    -- JSON array of {"kind":"client"|"grouping","id":...}
    targets        TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

-- One row per (event, audience client). seq orders every client's stream and is its SSE id.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_client ON events (client_id, seq);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(id),
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    webhook_id    TEXT NOT NULL REFERENCES webhooks(id),
    event_seq     INTEGER NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    last_status   INTEGER,
    last_error    TEXT,
    updated_at    INTEGER NOT NULL,
    UNIQUE (webhook_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

-- Messages applied from each fax server's link, for de-duplication after reconnects.
CREATE TABLE link_applied (
    fax_server_id TEXT PRIMARY KEY,
    last_msg_id   INTEGER NOT NULL
);
