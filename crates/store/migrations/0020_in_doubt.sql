-- Attempts in doubt (a fax server gone silent mid-call). Each attempt keeps the call limit its offer
-- carried: the fax server hangs up when it is reached, so the supervisor may dispatch the job again once the
-- fax server has been silent that long, also after a restart of the supervisor. A job keeps its client's
-- cancel request, so a job whose fax server is away ends cancelled instead of being dispatched again.
ALTER TABLE attempts ADD COLUMN call_limit_ms INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
