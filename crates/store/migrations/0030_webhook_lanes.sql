-- Webhook deliveries are taken per webhook (each webhook's own lane, so one slow endpoint delays no other),
-- and deleting a webhook cancels what it still had pending.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, status, next_at);

-- Deliveries left pending by webhooks deleted before deletion cancelled them.
UPDATE webhook_deliveries SET status = 'cancelled'
 WHERE status = 'pending' AND webhook_id IN (SELECT id FROM webhooks WHERE active = 0);
