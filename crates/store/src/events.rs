//! The event log: what each client is told, in order. One row per (event, audience client); `seq` is the
//! client's stream position and the Server-Sent Events id, `event_id` is shared by every copy so that a
//! receiver of several channels (SSE and webhook) can drop duplicates.

use crate::{Result, Store, new_id, now_ms};
use sqlx::SqliteConnection;

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub payload: serde_json::Value,
    pub audience: Vec<String>,
}

impl NewEvent {
    pub fn new(kind: &str, payload: serde_json::Value, audience: Vec<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            payload,
            audience,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    pub event_id: String,
    pub client_id: String,
    pub kind: String,
    /// A JSON value in the database.
    pub payload: sqlx::types::Json<serde_json::Value>,
    pub created_at: i64,
}

/// Rows per multi-row INSERT: 5 parameters each, well under SQLite's limit of 32766.
const ROWS_PER_INSERT: usize = 1000;

/// Appends events inside the caller's transaction, and queues their webhook deliveries with them. Events
/// for clients without webhooks go in multi-row INSERTs (one round trip per thousand rows); the others one by
/// one, since their sequence numbers are needed for the delivery rows.
pub(crate) async fn append(
    store: &Store,
    conn: &mut SqliteConnection,
    events: &[NewEvent],
) -> Result<()> {
    let now = now_ms();
    let mut plain: Vec<(String, &str, &str, String)> = Vec::new();
    for event in events {
        let event_id = new_id("evt");
        let payload = event.payload.to_string();
        for client in &event.audience {
            if !store.has_webhooks(client) {
                plain.push((event_id.clone(), client, &event.kind, payload.clone()));
                continue;
            }
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO events (event_id, client_id, kind, payload, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            )
            .bind(&event_id)
            .bind(client)
            .bind(&event.kind)
            .bind(&payload)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            crate::webhooks::queue_deliveries(conn, client, &event.kind, seq, now).await?;
        }
    }
    for chunk in plain.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO events (event_id, client_id, kind, payload, created_at) ",
        );
        insert.push_values(chunk, |mut row, (event_id, client, kind, payload)| {
            row.push_bind(event_id)
                .push_bind(*client)
                .push_bind(*kind)
                .push_bind(payload)
                .push_bind(now);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        append(self, &mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A client's events after `after_seq`, oldest first.
    pub async fn events_after(
        &self,
        client_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        Ok(sqlx::query_as(
            "SELECT * FROM events WHERE client_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(client_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn event(&self, seq: i64) -> Result<Option<StoredEvent>> {
        Ok(sqlx::query_as("SELECT * FROM events WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The newest sequence number of any event (0 when there is none).
    pub async fn last_event_seq(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&self.reader)
                .await?,
        )
    }
}
