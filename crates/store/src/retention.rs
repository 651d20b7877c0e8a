//! Retention: removing what the supervisor's settings say is old enough. Open jobs, and documents that a
//! kept job or fax still needs, are never removed.

use crate::{Result, Store};

/// Cut-off times (Unix ms); `None` keeps that kind forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cutoffs {
    pub finished_jobs: Option<i64>,
    pub inbound_faxes: Option<i64>,
    pub documents: Option<i64>,
    pub events: Option<i64>,
    pub audit: Option<i64>,
}

/// What a purge removed; `documents` are the hashes whose files the caller deletes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub jobs: u64,
    pub inbound_faxes: u64,
    pub events: u64,
    pub audit: u64,
    pub documents: Vec<String>,
}

impl Store {
    /// Removes everything older than its cut-off, in one transaction.
    pub async fn purge(&self, c: Cutoffs) -> Result<Purged> {
        let mut out = Purged::default();
        let mut tx = self.writer.begin().await?;
        if let Some(t) = c.finished_jobs {
            let old = "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1";
            sqlx::query(&format!("DELETE FROM attempts WHERE job_id IN ({old})"))
                .bind(t)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "DELETE FROM job_documents WHERE job_id IN ({old})"
            ))
            .bind(t)
            .execute(&mut *tx)
            .await?;
            out.jobs =
                sqlx::query("DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1")
                    .bind(t)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        if let Some(t) = c.inbound_faxes {
            sqlx::query("DELETE FROM inbox_entries WHERE inbound_id IN (SELECT id FROM inbound_faxes WHERE received_at < $1)")
                .bind(t)
                .execute(&mut *tx)
                .await?;
            out.inbound_faxes = sqlx::query("DELETE FROM inbound_faxes WHERE received_at < $1")
                .bind(t)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        if let Some(t) = c.events {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed', 'cancelled') AND updated_at < $1",
            )
            .bind(t)
            .execute(&mut *tx)
            .await?;
            out.events = sqlx::query("DELETE FROM events WHERE created_at < $1")
                .bind(t)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        if let Some(t) = c.audit {
            out.audit = sqlx::query("DELETE FROM audit_log WHERE at < $1")
                .bind(t)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        if let Some(t) = c.documents {
            let unused = "SELECT sha256 FROM documents d WHERE created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM job_documents j WHERE j.sha256 = d.sha256)
                 AND NOT EXISTS (SELECT 1 FROM inbound_faxes f WHERE f.sha256 = d.sha256)";
            out.documents = sqlx::query_scalar(unused)
                .bind(t)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "DELETE FROM document_owners WHERE sha256 IN ({unused})"
            ))
            .bind(t)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("DELETE FROM documents WHERE sha256 IN ({unused})"))
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Cutoffs;
    use crate::test_util::store;

    async fn exec(s: &crate::Store, sql: &str) {
        sqlx::query(sql).execute(&s.writer).await.expect(sql);
    }

    #[tokio::test]
    async fn purges_old_records_and_keeps_what_is_still_needed() {
        let (s, _dir) = store().await;
        exec(
            &s,
            "INSERT INTO clients (id, name, kind, created_at) VALUES ('c', 'c', 'application', 0)",
        )
        .await;
        exec(
            &s,
            "INSERT INTO fax_servers (id, name, created_at) VALUES ('fs', 'fs', 0)",
        )
        .await;
        for (sha, at) in [
            ("old_unused", 10),
            ("old_used_by_open_job", 10),
            ("old_used_by_kept_fax", 10),
            ("new_unused", 5000),
            ("old_used_by_old_job", 10),
        ] {
            exec(&s, &format!("INSERT INTO documents (sha256, size, media_type, pages, created_at) VALUES ('{sha}', 1, 'image/tiff', 1, {at})")).await;
            exec(
                &s,
                &format!("INSERT INTO document_owners (sha256, client_id) VALUES ('{sha}', 'c')"),
            )
            .await;
        }
        let job = |id: &str, finished: &str, sha: &str| {
            format!(
                "INSERT INTO jobs (id, batch_id, client_id, recipient, status, priority, options, max_tries, kill_at, not_before, pages_total, created_at, updated_at, finished_at)
                 VALUES ('{id}', 'b', 'c', '+1', 'x', 1, '{{}}', 1, 0, 0, 1, 0, 0, {finished});
                 INSERT INTO job_documents (job_id, seq, sha256) VALUES ('{id}', 0, '{sha}');
                 INSERT INTO attempts (id, job_id, number, fax_server_id, status, phase, started_at) VALUES ('a_{id}', '{id}', 1, 'fs', 'x', 'x', 0)"
            )
        };
        for q in [
            job("old", "10", "old_used_by_old_job"),
            job("open", "NULL", "old_used_by_open_job"),
            job("recent", "5000", "new_unused"),
        ] {
            sqlx::raw_sql(&q).execute(&s.writer).await.expect("job");
        }
        exec(&s, "INSERT INTO inbound_faxes (id, fax_server_id, sha256, pages, started_at, ended_at, received_at) VALUES ('in_new', 'fs', 'old_used_by_kept_fax', 1, '', '', 5000)").await;
        exec(&s, "INSERT INTO inbox_entries (inbound_id, target_kind, target_id) VALUES ('in_new', 'client', 'c')").await;
        exec(&s, "INSERT INTO audit_log (at, actor_name, action) VALUES (10, 'a', 'old'), (5000, 'a', 'new')").await;
        let all = Some(1000);
        let purged = s
            .purge(Cutoffs {
                finished_jobs: all,
                inbound_faxes: all,
                documents: all,
                events: all,
                audit: all,
            })
            .await
            .expect("purge");
        assert_eq!((purged.jobs, purged.inbound_faxes, purged.audit), (1, 0, 1));
        let mut docs = purged.documents.clone();
        docs.sort();
        assert_eq!(
            docs,
            ["old_unused", "old_used_by_old_job"],
            "documents of removed jobs go; those still needed stay"
        );
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
            .fetch_all(&s.reader)
            .await
            .expect("jobs");
        assert_eq!(left, ["open", "recent"]);
        let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attempts")
            .fetch_one(&s.reader)
            .await
            .expect("n");
        assert_eq!(attempts, 2);
        // Nothing is removed when nothing is old enough, or when retention keeps forever.
        assert_eq!(
            s.purge(Cutoffs::default()).await.expect("purge"),
            super::Purged::default()
        );
    }
}
