-- The inbox lists received faxes newest first by when they were received (their ids are random).
CREATE INDEX inbound_faxes_by_received ON inbound_faxes (received_at, id);
