-- Competences (claims 11-12): roles are named bundles of competences; a grant gives a client a role in a
-- scope ('all', a grouping or one fax server). scope_id is '' for 'all' so the unique key holds.
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- JSON array of competence names.
    competences TEXT NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_by  TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE client_grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(id),
    role_id    TEXT NOT NULL REFERENCES roles(id),
    scope_kind TEXT NOT NULL CHECK (scope_kind IN ('all', 'grouping', 'fax_server')),
    scope_id   TEXT NOT NULL DEFAULT '',
    granted_by TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (client_id, role_id, scope_kind, scope_id)
);
CREATE INDEX client_grants_by_role ON client_grants (role_id);

INSERT INTO roles (id, name, competences, builtin, created_at) VALUES
 ('role_administrator', 'administrator', '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","change_supervisor_settings","manage_clients","manage_groupings","manage_inbound_rules","read_audit_log"]', 1, 0),
 ('role_grouping_administrator', 'grouping administrator', '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","manage_clients","manage_groupings","manage_inbound_rules","read_audit_log"]', 1, 0),
 ('role_operator', 'operator', '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","manage_inbound_rules"]', 1, 0),
 ('role_user', 'user', '["send_faxes","receive_faxes","read_phonebook"]', 1, 0);

-- Clients from before competences: administrators keep everything, everybody else is a user.
INSERT INTO client_grants (id, client_id, role_id, scope_kind, scope_id, created_at)
 SELECT 'gr_' || id, id, CASE WHEN is_admin = 1 THEN 'role_administrator' ELSE 'role_user' END, 'all', '', created_at
 FROM clients;

-- is_admin is superseded by the grants above.
ALTER TABLE clients DROP COLUMN is_admin;
