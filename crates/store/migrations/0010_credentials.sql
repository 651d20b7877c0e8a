-- Credential lifecycle: API tokens expire, are revoked at a recorded time and remember when they were last
-- used (to the minute); clients and fax servers are withdrawn without losing the history that refers to them
-- (jobs, attempts, received faxes, the audit log), so they are marked, never removed.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
-- 1 for tokens a password sign-in made: a new password ends them.
ALTER TABLE api_tokens ADD COLUMN session INTEGER NOT NULL DEFAULT 0;
CREATE INDEX api_tokens_by_client ON api_tokens (client_id, created_at);

ALTER TABLE clients ADD COLUMN deleted_at INTEGER;

ALTER TABLE fax_servers ADD COLUMN revoked_at INTEGER;
ALTER TABLE fax_servers ADD COLUMN deleted_at INTEGER;
