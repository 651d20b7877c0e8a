-- What a submission with an idempotency key asked for (a hash of its request), so that the key used again
-- for a different request is refused instead of answered with the first one's jobs.
ALTER TABLE jobs ADD COLUMN request_hash TEXT;
