-- Webhook secret rotation (Standard Webhooks): the secret in force is derived from the server key, the
-- webhook id and its generation; after a rotation the previous generation's secret still signs deliveries
-- (a second signature) until previous_secret_until (Unix ms).
ALTER TABLE webhooks ADD COLUMN secret_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN previous_secret_until INTEGER;
