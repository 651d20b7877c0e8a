-- Settings registry (claims 5-8): every version of every fax server's settings document, and which version
-- is desired and which the fax server has applied. Secrets inside documents are sealed by the supervisor.
CREATE TABLE settings_versions (
    target     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    document   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (target, version)
);

CREATE TABLE settings_state (
    target          TEXT PRIMARY KEY,
    desired_version INTEGER NOT NULL,
    applied_version INTEGER NOT NULL DEFAULT 0,
    applied_at      INTEGER,
    last_error      TEXT,
    error_version   INTEGER
);
