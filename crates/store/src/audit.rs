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

#[cfg(test)]
mod tests {
    use crate::test_util::store;
    use crate::{AuditFilter, Error, NewAudit};

    fn entry(action: &str) -> NewAudit {
        NewAudit {
            actor_id: None,
            actor_name: "admin".into(),
            action: action.into(),
            target: None,
            before: None,
            after: None,
            request_id: None,
        }
    }

    async fn actions(s: &crate::Store) -> Vec<String> {
        let f = AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        };
        let entries = s.audit_entries(&f).await.expect("audit entries");
        entries.into_iter().map(|e| e.action).collect()
    }

    #[tokio::test]
    async fn a_change_and_its_audit_entry_commit_together_or_not_at_all() {
        let (s, _dir) = store().await;
        // Committed with its entry: both are there.
        let mut tx = s.begin().await.expect("begin");
        tx.create_grouping("sales").await.expect("create");
        tx.commit_audited(entry("grouping.created"))
            .await
            .expect("commit");
        // A change that fails half way (the second write breaks a rule): neither its first write nor its
        // entry remains.
        let mut tx = s.begin().await.expect("begin");
        tx.create_grouping("support").await.expect("create");
        let refused = tx.create_grouping("sales").await;
        assert!(
            matches!(refused, Err(Error::Conflict { .. })),
            "{refused:?}"
        );
        drop(tx);
        // Dropped before committing: nothing.
        let mut tx = s.begin().await.expect("begin");
        tx.create_grouping("billing").await.expect("create");
        drop(tx);
        let names: Vec<String> = s
            .groupings()
            .await
            .expect("groupings")
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["sales"]);
        assert_eq!(actions(&s).await, ["grouping.created"]);
        // The store's own single writes still work once the dropped transactions let the writer go.
        s.create_grouping("after").await.expect("a write after");
    }
}
