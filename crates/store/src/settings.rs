//! The settings registry: versioned documents per target (a fax server id), with the desired and the
//! applied version. Documents are opaque JSON here; the supervisor types and validates them.

use crate::{Result, Store, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsVersion {
    pub target: String,
    pub version: i64,
    pub document: String,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct SettingsState {
    pub target: String,
    pub desired_version: i64,
    pub applied_version: i64,
    pub applied_at: Option<i64>,
    pub last_error: Option<String>,
    pub error_version: Option<i64>,
}

impl Store {
    pub async fn settings_state(&self, target: &str) -> Result<Option<SettingsState>> {
        Ok(
            sqlx::query_as("SELECT * FROM settings_state WHERE target = $1")
                .bind(target)
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    pub async fn settings_version(
        &self,
        target: &str,
        version: i64,
    ) -> Result<Option<SettingsVersion>> {
        Ok(
            sqlx::query_as("SELECT * FROM settings_versions WHERE target = $1 AND version = $2")
                .bind(target)
                .bind(version)
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    /// Every version, newest first.
    pub async fn settings_history(&self, target: &str) -> Result<Vec<SettingsVersion>> {
        Ok(sqlx::query_as(
            "SELECT * FROM settings_versions WHERE target = $1 ORDER BY version DESC",
        )
        .bind(target)
        .fetch_all(&self.reader)
        .await?)
    }
}

impl crate::Tx {
    /// Stores a new version and makes it the desired one; returns its number.
    pub async fn put_settings(
        &mut self,
        target: &str,
        document: &str,
        created_by: &str,
    ) -> Result<i64> {
        self.register_settings(target, document, created_by, None)
            .await
    }

    /// Stores a new version, makes it the desired one, and sets the fax server's dial prefixes when given;
    /// returns the version's number.
    pub async fn register_settings(
        &mut self,
        target: &str,
        document: &str,
        created_by: &str,
        dial_prefixes: Option<&[String]>,
    ) -> Result<i64> {
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM settings_versions WHERE target = $1",
        )
        .bind(target)
        .fetch_one(self.conn())
        .await?;
        sqlx::query("INSERT INTO settings_versions (target, version, document, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(target)
            .bind(version)
            .bind(document)
            .bind(created_by)
            .bind(now_ms())
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO settings_state (target, desired_version) VALUES ($1, $2)
             ON CONFLICT (target) DO UPDATE SET desired_version = excluded.desired_version",
        )
        .bind(target)
        .bind(version)
        .execute(self.conn())
        .await?;
        if let Some(prefixes) = dial_prefixes {
            sqlx::query("UPDATE fax_servers SET dial_prefixes = $1 WHERE id = $2")
                .bind(sqlx::types::Json(prefixes))
                .bind(target)
                .execute(self.conn())
                .await?;
        }
        Ok(version)
    }

    /// Records what the fax server said of a version: applied, or refused with an error.
    pub async fn settings_result(
        &mut self,
        target: &str,
        version: i64,
        applied: bool,
        error: Option<&str>,
    ) -> Result<()> {
        if applied {
            sqlx::query(
                "UPDATE settings_state SET applied_version = $1, applied_at = $2,
                     last_error = CASE WHEN error_version <= $1 THEN NULL ELSE last_error END
                 WHERE target = $3",
            )
            .bind(version)
            .bind(now_ms())
            .bind(target)
            .execute(self.conn())
            .await?;
        } else {
            sqlx::query(
                "UPDATE settings_state SET last_error = $1, error_version = $2 WHERE target = $3",
            )
            .bind(error)
            .bind(version)
            .bind(target)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

crate::own_transaction! {
    /// Stores a new version and makes it the desired one; returns its number.
    fn put_settings(&self, target: &str, document: &str, created_by: &str) -> i64;
    /// Records what the fax server said of a version: applied, or refused with an error.
    fn settings_result(&self, target: &str, version: i64, applied: bool, error: Option<&str>) -> ();
}

#[cfg(test)]
mod tests {
    use crate::test_util::store;

    #[tokio::test]
    async fn versions_count_up_and_results_are_recorded() {
        let (store, _dir) = store().await;
        assert_eq!(
            store
                .put_settings("fs_1", "{\"a\":1}", "cli_1")
                .await
                .expect("put"),
            1
        );
        assert_eq!(
            store
                .put_settings("fs_1", "{\"a\":2}", "cli_1")
                .await
                .expect("put"),
            2
        );
        assert_eq!(
            store
                .put_settings("fs_2", "{}", "cli_1")
                .await
                .expect("put"),
            1
        );
        store
            .settings_result("fs_1", 2, false, Some("too many channels"))
            .await
            .expect("refused");
        let st = store
            .settings_state("fs_1")
            .await
            .expect("state")
            .expect("exists");
        assert_eq!(
            (
                st.desired_version,
                st.applied_version,
                st.last_error.as_deref()
            ),
            (2, 0, Some("too many channels"))
        );
        store
            .settings_result("fs_1", 1, true, None)
            .await
            .expect("applied");
        let st = store
            .settings_state("fs_1")
            .await
            .expect("state")
            .expect("exists");
        assert_eq!(
            (st.applied_version, st.last_error.as_deref()),
            (1, Some("too many channels")),
            "an older success keeps the newer error"
        );
        store
            .settings_result("fs_1", 2, true, None)
            .await
            .expect("applied");
        let st = store
            .settings_state("fs_1")
            .await
            .expect("state")
            .expect("exists");
        assert_eq!((st.applied_version, st.last_error), (2, None));
        let history = store.settings_history("fs_1").await.expect("history");
        assert_eq!(
            history.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![2, 1]
        );
    }
}
