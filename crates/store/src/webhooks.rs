//! Webhooks and their delivery log. A delivery row is queued in the same transaction as the event it
//! carries, so a committed event is always delivered (at least once) to every matching webhook.

use crate::{Result, Store, new_id, now_ms};
use sqlx::SqliteConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: String,
    pub client_id: String,
    pub url: String,
    pub events: String,
    pub active: bool,
    pub created_at: i64,
}

impl Webhook {
    pub fn event_kinds(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_seq: i64,
    pub status: String,
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
            events: serde_json::to_string(events).unwrap_or_else(|_| "[]".into()),
            active: true,
            created_at: now_ms(),
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

    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE webhooks SET active = 0 WHERE id = $1 AND active = 1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        self.reload_hooked().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deliveries due now, oldest first.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Records one try: `next_at` None ends the delivery as `status` ('delivered' or 'failed').
    pub async fn record_delivery_try(
        &self,
        id: &str,
        http_status: Option<u16>,
        error: Option<&str>,
        next_at: Option<i64>,
        final_status: &str,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1, last_error = $2,
                 status = $3, next_at = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(http_status.map(i64::from))
        .bind(error)
        .bind(if next_at.is_some() { "pending" } else { final_status })
        .bind(next_at.unwrap_or(now))
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
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
    use super::kind_matches;

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
