-- The audit log: every administrative change and every sign-in, with the state before and after
-- (secrets redacted by the supervisor before they get here).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor_id   TEXT,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    before     TEXT,
    after      TEXT,
    request_id TEXT
);
CREATE INDEX audit_by_target ON audit_log (target, seq);
CREATE INDEX audit_by_actor ON audit_log (actor_id, seq);
