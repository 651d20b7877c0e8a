-- Queue administration (HylaFAX's faxalter / faxrm for an administrator): the competence manage_jobs lets a
-- client see and act on every job of the clients in its scope. The built-in roles that administer get it.
UPDATE roles SET competences = '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","change_supervisor_settings","manage_clients","manage_groupings","manage_inbound_rules","read_audit_log","manage_jobs"]'
 WHERE id = 'role_administrator';
UPDATE roles SET competences = '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","manage_clients","manage_groupings","manage_inbound_rules","read_audit_log","manage_jobs"]'
 WHERE id = 'role_grouping_administrator';
UPDATE roles SET competences = '["send_faxes","receive_faxes","read_phonebook","edit_shared_phonebook","read_fax_server_settings","change_fax_server_settings","manage_inbound_rules","manage_jobs"]'
 WHERE id = 'role_operator';
