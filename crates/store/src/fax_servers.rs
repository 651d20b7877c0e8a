//! Fax servers: registration, one-time enrollment and the credential of their link.

use crate::{Error, Result, Store, conflict_on_unique, new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FaxServer {
    pub id: String,
    pub name: String,
    /// E.164 prefixes it dials (a JSON array in the database).
    pub dial_prefixes: sqlx::types::Json<Vec<String>>,
    /// What it announced on its last connect (a JSON object in the database).
    pub capabilities: sqlx::types::Json<protocol::Capabilities>,
    pub enrolled_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    /// When its credential was revoked; it cannot link again until it is enrolled anew.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str =
    "id, name, dial_prefixes, capabilities, enrolled_at, last_seen_at, created_at, revoked_at";

impl FaxServer {
    pub fn dial_prefixes(&self) -> Vec<String> {
        self.dial_prefixes.0.clone()
    }
}

impl Store {
    /// Consumes an enrollment token: the fax server gets its link credential and the token is void.
    /// Returns `None` for an unknown, used or expired token.
    pub async fn enroll_fax_server(
        &self,
        enrollment_token_hash: &str,
        credential_hash: &str,
    ) -> Result<Option<FaxServer>> {
        let now = now_ms();
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE fax_servers SET enrollment_token_hash = NULL, enrollment_expires_at = NULL,
                 credential_hash = $1, enrolled_at = $2
             WHERE enrollment_token_hash = $3 AND enrollment_expires_at > $2
             RETURNING id",
        )
        .bind(credential_hash)
        .bind(now)
        .bind(enrollment_token_hash)
        .fetch_optional(&self.writer)
        .await?;
        match id {
            Some(id) => self.fax_server(&id).await,
            None => Ok(None),
        }
    }

    pub async fn fax_server(&self, id: &str) -> Result<Option<FaxServer>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM fax_servers WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?)
    }

    pub async fn fax_server_by_credential(
        &self,
        credential_hash: &str,
    ) -> Result<Option<FaxServer>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM fax_servers WHERE credential_hash = $1 AND deleted_at IS NULL"
        ))
        .bind(credential_hash)
        .fetch_optional(&self.reader)
        .await?)
    }

    pub async fn fax_servers(&self) -> Result<Vec<FaxServer>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM fax_servers WHERE deleted_at IS NULL ORDER BY name"
        ))
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn record_fax_server_hello(
        &self,
        id: &str,
        capabilities: &protocol::Capabilities,
    ) -> Result<()> {
        sqlx::query("UPDATE fax_servers SET capabilities = $1, last_seen_at = $2 WHERE id = $3")
            .bind(sqlx::types::Json(capabilities))
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// When a fax server was last heard of (its last heartbeat, kept when its link ends); never moved back.
    pub async fn record_fax_server_seen(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE fax_servers SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)",
        )
        .bind(at)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The highest link message id applied from this fax server.
    pub async fn link_last_applied(&self, fax_server_id: &str) -> Result<u64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT last_msg_id FROM link_applied WHERE fax_server_id = $1")
                .bind(fax_server_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    pub async fn insert_document(
        &self,
        sha256: &str,
        size: u64,
        media_type: &str,
        pages: u32,
        owner_id: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO documents (sha256, size, media_type, pages, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(media_type)
        .bind(i64::from(pages))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if let Some(owner) = owner_id {
            sqlx::query("INSERT INTO document_owners (sha256, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(sha256)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// (size, media type, pages) of a stored document.
    pub async fn document(&self, sha256: &str) -> Result<Option<(i64, String, i64)>> {
        Ok(
            sqlx::query_as("SELECT size, media_type, pages FROM documents WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// (size, media type, pages) of a stored document and the clients that uploaded it, in one read.
    pub async fn document_and_owners(
        &self,
        sha256: &str,
    ) -> Result<Option<((i64, String, i64), Vec<String>)>> {
        let rows: Vec<(i64, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT d.size, d.media_type, d.pages, o.client_id FROM documents d
             LEFT JOIN document_owners o ON o.sha256 = d.sha256
             WHERE d.sha256 = $1 ORDER BY o.client_id",
        )
        .bind(sha256)
        .fetch_all(&self.reader)
        .await?;
        let Some((size, media_type, pages, _)) = rows.first().cloned() else {
            return Ok(None);
        };
        let owners = rows.into_iter().filter_map(|r| r.3).collect();
        Ok(Some(((size, media_type, pages), owners)))
    }

    /// Whether a fax server may download this document: one of its attempts carries it.
    pub async fn document_visible_to_fax_server(
        &self,
        sha256: &str,
        fax_server_id: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM attempts a JOIN job_documents d ON d.job_id = a.job_id
             WHERE d.sha256 = $1 AND a.fax_server_id = $2",
        )
        .bind(sha256)
        .bind(fax_server_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(n > 0)
    }
}

impl crate::Tx {
    /// Registers a fax server that may enroll once with the token whose hash is given, until `expires_at`.
    pub async fn create_fax_server(
        &mut self,
        name: &str,
        dial_prefixes: &[String],
        enrollment_token_hash: &str,
        expires_at: i64,
    ) -> Result<FaxServer> {
        let fs = FaxServer {
            id: new_id("fs"),
            name: name.to_owned(),
            dial_prefixes: sqlx::types::Json(dial_prefixes.to_vec()),
            capabilities: sqlx::types::Json(protocol::Capabilities::default()),
            enrolled_at: None,
            last_seen_at: None,
            created_at: now_ms(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO fax_servers (id, name, enrollment_token_hash, enrollment_expires_at, dial_prefixes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&fs.id)
        .bind(&fs.name)
        .bind(enrollment_token_hash)
        .bind(expires_at)
        .bind(&fs.dial_prefixes)
        .bind(fs.created_at)
        .execute(self.conn())
        .await
        .map_err(conflict_on_unique("a fax server with that name"))?;
        Ok(fs)
    }

    /// Voids a fax server's link credential and any enrollment token it had not used; false if there is no
    /// such fax server.
    pub async fn revoke_fax_server(&mut self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE fax_servers SET credential_hash = NULL, enrollment_token_hash = NULL,
                 enrollment_expires_at = NULL, revoked_at = $1
             WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a fax server: its credential is void, it leaves every grouping, the inbound rules naming it
    /// go, and its name is freed. The row stays as a tombstone for the attempts and faxes that refer to it.
    pub async fn delete_fax_server(&mut self, id: &str) -> Result<bool> {
        let now = now_ms();
        // '~' is not allowed in fax server names, so the freed name can never collide with a live one.
        let done = sqlx::query(
            "UPDATE fax_servers SET credential_hash = NULL, enrollment_token_hash = NULL,
                 enrollment_expires_at = NULL, revoked_at = COALESCE(revoked_at, $1), deleted_at = $1,
                 name = name || '~deleted~' || id
             WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM grouping_members WHERE member_kind = 'fax_server' AND member_id = $1",
        )
        .bind(id)
        .execute(self.conn())
        .await?;
        sqlx::query("DELETE FROM inbound_rules WHERE fax_server_id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(true)
    }

    pub async fn set_fax_server_dial_prefixes(
        &mut self,
        id: &str,
        prefixes: &[String],
    ) -> Result<()> {
        let json = serde_json::to_string(prefixes).map_err(|e| Error::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE fax_servers SET dial_prefixes = $1 WHERE id = $2")
            .bind(json)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

crate::own_transaction! {
    /// Registers a fax server that may enroll once with the token whose hash is given, until `expires_at`.
    fn create_fax_server(&self, name: &str, dial_prefixes: &[String], enrollment_token_hash: &str, expires_at: i64) -> FaxServer;
    /// Voids a fax server's link credential and any enrollment token it had not used; false if there is no
    /// such fax server.
    fn revoke_fax_server(&self, id: &str) -> bool;
    /// Deletes a fax server: its credential is void, it leaves every grouping, the inbound rules naming it
    /// go, and its name is freed. The row stays as a tombstone for the attempts and faxes that refer to it.
    fn delete_fax_server(&self, id: &str) -> bool;
    fn set_fax_server_dial_prefixes(&self, id: &str, prefixes: &[String]) -> ();
}

/// Raises the highest applied link message id of each fax server named (never lowers it), within `tx`.
pub(crate) async fn set_links_applied(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    applied: &[(String, u64)],
) -> Result<()> {
    for chunk in applied.chunks(400) {
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO link_applied (fax_server_id, last_msg_id) ");
        q.push_values(chunk, |mut row, (fax_server_id, msg_id)| {
            row.push_bind(fax_server_id.as_str())
                .push_bind(i64::try_from(*msg_id).unwrap_or(i64::MAX));
        });
        q.push(
            " ON CONFLICT (fax_server_id) DO UPDATE SET last_msg_id = MAX(last_msg_id, excluded.last_msg_id)",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
