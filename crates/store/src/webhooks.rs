//! Webhooks and their delivery log. A delivery row is queued in the same transaction as the event it
//! carries, so a committed event is always delivered (at least once) to every matching webhook.

use crate::{Result, Store, new_id, now_ms};
use sqlx::SqliteConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: String,
    pub client_id: String,
    pub url: String,
    /// Event kinds it takes (a JSON array in the database).
    pub events: sqlx::types::Json<Vec<String>>,
    pub active: bool,
    pub created_at: i64,
    /// Which secret signs its deliveries (bumped by each rotation).
    pub secret_generation: i64,
    /// Until when (Unix ms) the previous generation's secret signs too, after a rotation.
    pub previous_secret_until: Option<i64>,
}

impl Webhook {
    pub fn event_kinds(&self) -> Vec<String> {
        self.events.0.clone()
    }
}

/// Where a delivery stands. `Pending` ones are tried (again) at `next_at`; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Its webhook was deleted before it was delivered.
    Cancelled,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_seq: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

fn kind_matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == kind
            || p.strip_suffix(".*")
                .is_some_and(|pre| kind.starts_with(pre))
    })
}

pub(crate) async fn queue_deliveries(
    conn: &mut SqliteConnection,
    client_id: &str,
    kind: &str,
    seq: i64,
    now: i64,
) -> Result<()> {
    let hooks: Vec<Webhook> =
        sqlx::query_as("SELECT * FROM webhooks WHERE client_id = $1 AND active = 1")
            .bind(client_id)
            .fetch_all(&mut *conn)
            .await?;
    for hook in hooks
        .iter()
        .filter(|h| kind_matches(&h.event_kinds(), kind))
    {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, status, next_at, updated_at)
             VALUES ($1, $2, $3, 'pending', $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(new_id("dlv"))
        .bind(&hook.id)
        .bind(seq)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn create_webhook(
        &self,
        client_id: &str,
        url: &str,
        events: &[String],
    ) -> Result<Webhook> {
        let hook = Webhook {
            id: new_id("wh"),
            client_id: client_id.to_owned(),
            url: url.to_owned(),
            events: sqlx::types::Json(events.to_vec()),
            active: true,
            created_at: now_ms(),
            secret_generation: 0,
            previous_secret_until: None,
        };
        sqlx::query("INSERT INTO webhooks (id, client_id, url, events, active, created_at) VALUES ($1, $2, $3, $4, 1, $5)")
            .bind(&hook.id)
            .bind(&hook.client_id)
            .bind(&hook.url)
            .bind(&hook.events)
            .bind(hook.created_at)
            .execute(&self.writer)
            .await?;
        self.reload_hooked().await?;
        Ok(hook)
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        Ok(sqlx::query_as("SELECT * FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn webhooks_of(&self, client_id: &str) -> Result<Vec<Webhook>> {
        Ok(
            sqlx::query_as("SELECT * FROM webhooks WHERE client_id = $1 ORDER BY created_at")
                .bind(client_id)
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// Webhooks a client has not deleted.
    pub async fn active_webhook_count(&self, client_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE client_id = $1 AND active = 1")
                .bind(client_id)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// Deactivates a webhook and cancels its pending deliveries, together.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query("UPDATE webhooks SET active = 0 WHERE id = $1 AND active = 1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, updated_at = $2 WHERE webhook_id = $3 AND status = $4",
        )
        .bind(DeliveryStatus::Cancelled)
        .bind(now_ms())
        .bind(id)
        .bind(DeliveryStatus::Pending)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.reload_hooked().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Active webhooks with a delivery due now, the most overdue first.
    pub async fn webhooks_with_due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT d.webhook_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             JOIN clients c ON c.id = w.client_id
             WHERE d.status = $1 AND d.next_at <= $2 AND w.active = 1 AND c.disabled = 0
             GROUP BY d.webhook_id ORDER BY MIN(d.next_at) LIMIT $3",
        )
        .bind(DeliveryStatus::Pending)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// One webhook's deliveries due now, oldest event first.
    pub async fn due_deliveries_of(
        &self,
        webhook_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 AND status = $2 AND next_at <= $3
                 AND EXISTS (SELECT 1 FROM webhooks w JOIN clients c ON c.id = w.client_id
                             WHERE w.id = $1 AND c.disabled = 0)
             ORDER BY event_seq LIMIT $4",
        )
        .bind(webhook_id)
        .bind(DeliveryStatus::Pending)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Records one try of a pending delivery: `next_at` None ends it as `final_status`. A delivery that is
    /// no longer pending (cancelled meanwhile) is left as it is.
    pub async fn record_delivery_try(
        &self,
        id: &str,
        http_status: Option<u16>,
        error: Option<&str>,
        next_at: Option<i64>,
        final_status: DeliveryStatus,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1, last_error = $2,
                 status = $3, next_at = $4, updated_at = $5 WHERE id = $6 AND status = $7",
        )
        .bind(http_status.map(i64::from))
        .bind(error)
        .bind(if next_at.is_some() {
            DeliveryStatus::Pending
        } else {
            final_status
        })
        .bind(next_at.unwrap_or(now))
        .bind(now)
        .bind(id)
        .bind(DeliveryStatus::Pending)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Changes an active webhook's URL and event kinds (those given); the webhook as it is now.
    pub async fn update_webhook(
        &self,
        id: &str,
        url: Option<&str>,
        events: Option<&[String]>,
    ) -> Result<Option<Webhook>> {
        let hook = sqlx::query_as(
            "UPDATE webhooks SET url = COALESCE($1, url), events = COALESCE($2, events)
             WHERE id = $3 AND active = 1 RETURNING *",
        )
        .bind(url)
        .bind(events.map(|e| sqlx::types::Json(e.to_vec())))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        self.reload_hooked().await?;
        Ok(hook)
    }

    /// Moves an active webhook to its next secret; the previous one still signs until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        previous_until: i64,
    ) -> Result<Option<Webhook>> {
        Ok(sqlx::query_as(
            "UPDATE webhooks SET secret_generation = secret_generation + 1, previous_secret_until = $1
             WHERE id = $2 AND active = 1 RETURNING *",
        )
        .bind(previous_until)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Delivers a past event of a webhook again: its delivery is pending from now, with a fresh count of
    /// tries. `None` when the delivery is not the webhook's or is pending already.
    pub async fn redeliver(&self, webhook_id: &str, delivery_id: &str) -> Result<Option<Delivery>> {
        let now = now_ms();
        Ok(sqlx::query_as(
            "UPDATE webhook_deliveries SET status = $1, attempts = 0, next_at = $2, updated_at = $2
             WHERE id = $3 AND webhook_id = $4 AND status <> $1
                 AND EXISTS (SELECT 1 FROM webhooks WHERE id = $4 AND active = 1)
             RETURNING *",
        )
        .bind(DeliveryStatus::Pending)
        .bind(now)
        .bind(delivery_id)
        .bind(webhook_id)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Queues a `webhook.ping` event for one webhook only: the event belongs to no client's stream (it is
    /// not an event of theirs), and its delivery is the webhook's alone.
    pub async fn ping_webhook(&self, webhook_id: &str) -> Result<Delivery> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, client_id, kind, payload, created_at)
             VALUES ($1, '', 'webhook.ping', $2, $3) RETURNING seq",
        )
        .bind(new_id("evt"))
        .bind(serde_json::json!({"webhook_id": webhook_id}).to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let delivery = sqlx::query_as(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, status, next_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
        )
        .bind(new_id("dlv"))
        .bind(webhook_id)
        .bind(seq)
        .bind(DeliveryStatus::Pending)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(delivery)
    }

    pub async fn deliveries_of(&self, webhook_id: &str, limit: i64) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY event_seq DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{DeliveryStatus, kind_matches};
    use crate::test_util::store;
    use crate::{NewClient, NewEvent, now_ms};

    /// A disabled client's deliveries wait (nothing is delivered to it) and go once it is enabled again.
    #[tokio::test]
    async fn a_disabled_clients_deliveries_wait_until_it_is_enabled() {
        let (store, _dir) = store().await;
        let c = store
            .create_client(NewClient::application("app"))
            .await
            .expect("client");
        let hook = store
            .create_webhook(&c.id, "https://a.example/", &["*".into()])
            .await
            .expect("hook");
        let event = NewEvent::new("job.queued", serde_json::json!({}), vec![c.id.clone()]);
        store.append_events(&[event]).await.expect("events");
        let now = now_ms() + 1;
        assert!(
            store
                .set_client_disabled(&c.id, true)
                .await
                .expect("disable")
        );
        assert!(
            store
                .webhooks_with_due_deliveries(now, 10)
                .await
                .expect("due")
                .is_empty()
        );
        assert!(
            store
                .due_deliveries_of(&hook.id, now, 10)
                .await
                .expect("due")
                .is_empty()
        );
        assert!(
            store
                .set_client_disabled(&c.id, false)
                .await
                .expect("enable")
        );
        assert_eq!(
            store
                .webhooks_with_due_deliveries(now, 10)
                .await
                .expect("due"),
            vec![hook.id.clone()]
        );
        assert_eq!(
            store
                .due_deliveries_of(&hook.id, now, 10)
                .await
                .expect("due")
                .len(),
            1
        );
    }

    /// Regression: deleting a webhook left its pending deliveries to be tried on, and a try that finished
    /// after the deletion could set a delivery back to pending.
    #[tokio::test]
    async fn deleting_a_webhook_cancels_its_pending_deliveries() {
        let (store, _dir) = store().await;
        let c = store
            .create_client(NewClient::application("app"))
            .await
            .expect("client");
        let keep = store
            .create_webhook(&c.id, "https://a.example/", &["*".into()])
            .await
            .expect("hook");
        let gone = store
            .create_webhook(&c.id, "https://b.example/", &["*".into()])
            .await
            .expect("hook");
        assert_eq!(store.active_webhook_count(&c.id).await.expect("n"), 2);
        let event = NewEvent::new("job.queued", serde_json::json!({}), vec![c.id.clone()]);
        store
            .append_events(&[event.clone(), event])
            .await
            .expect("events");
        let now = now_ms() + 1;
        let mut due = store
            .webhooks_with_due_deliveries(now, 10)
            .await
            .expect("due");
        due.sort();
        let mut both = vec![keep.id.clone(), gone.id.clone()];
        both.sort();
        assert_eq!(due, both);
        let in_flight = store
            .due_deliveries_of(&gone.id, now, 1)
            .await
            .expect("due");
        assert_eq!(in_flight.len(), 1, "the limit holds");
        assert!(store.delete_webhook(&gone.id).await.expect("delete"));
        assert!(!store.delete_webhook(&gone.id).await.expect("again"));
        assert_eq!(store.active_webhook_count(&c.id).await.expect("n"), 1);
        // The try that was under way when the webhook was deleted ends.
        store
            .record_delivery_try(
                &in_flight[0].id,
                None,
                Some("x"),
                Some(now),
                DeliveryStatus::Failed,
            )
            .await
            .expect("record");
        let log = store.deliveries_of(&gone.id, 10).await.expect("log");
        assert_eq!(log.len(), 2);
        assert!(
            log.iter()
                .all(|d| d.status == DeliveryStatus::Cancelled && d.attempts == 0),
            "{log:?}"
        );
        assert_eq!(
            store
                .webhooks_with_due_deliveries(now, 10)
                .await
                .expect("due"),
            vec![keep.id.clone()]
        );
        assert_eq!(
            store
                .due_deliveries_of(&keep.id, now, 10)
                .await
                .expect("due")
                .len(),
            2
        );
    }

    #[test]
    fn event_kind_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(kind_matches(&p(&["*"]), "inbound.received"));
        assert!(kind_matches(&p(&["inbound.*"]), "inbound.received"));
        assert!(!kind_matches(&p(&["job.*"]), "inbound.received"));
        assert!(kind_matches(&p(&["job.finished"]), "job.finished"));
        assert!(!kind_matches(&p(&[]), "job.finished"));
    }
}
