//! The audit log: who did what, when, with the state before and after.

use crate::{Result, Store, now_ms};

#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    /// Only entries older than this sequence number (the pagination cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

pub(crate) async fn insert(conn: &mut sqlx::SqliteConnection, entry: NewAudit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_name, action, target, before, after, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now_ms())
    .bind(&entry.actor_id)
    .bind(&entry.actor_name)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(entry.before.map(|v| v.to_string()))
    .bind(entry.after.map(|v| v.to_string()))
    .bind(&entry.request_id)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn audit(&self, entry: NewAudit) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        insert(&mut conn, entry).await
    }

    /// Entries, newest first.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT * FROM audit_log WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR target = $2)
                 AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR seq < $4)
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(&f.actor_id)
        .bind(&f.target)
        .bind(&f.action)
        .bind(f.before_seq)
        .bind(f.limit)
        .fetch_all(&self.reader)
        .await?)
    }
}
