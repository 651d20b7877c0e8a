//! Persistence for the supervising server: schema, migrations and queries.
//!
//! Architecture invariant: only this crate knows SQL. The supervisor calls typed methods; every method that
//! changes state does so in one transaction together with the events it causes, so an event is never
//! published for a change that was rolled back, and a change never commits without its events.
//!
//! SQLite is the first backend: one database file, WAL journal, `synchronous = NORMAL` (a committed
//! transaction survives the process being killed; only an OS crash may lose the last few), foreign keys on.
//! Writes go through a single connection (SQLite has one writer anyway; queueing in the pool avoids
//! `SQLITE_BUSY`), reads through a small pool. The SQL is kept to what PostgreSQL also accepts (numbered
//! `$n` parameters, no SQLite-only functions in queries) so a PostgreSQL backend is a second pool type and a
//! mirrored migration set, not a redesign.

mod audit;
mod clients;
mod events;
mod fax_servers;
mod grants;
mod groupings;
mod inbound;
mod jobs;
mod phonebook;
mod retention;
mod settings;
mod webhooks;

pub use audit::{AuditEntry, AuditFilter, NewAudit};
pub use clients::{ApiToken, Client, ClientKind, DeletedClient, NewClient, NewToken, Session};
pub use events::{NewEvent, StoredEvent};
pub use fax_servers::FaxServer;
pub use grants::{Grant, Role};
pub use groupings::{Grouping, MemberKind};
pub use inbound::{InboundFax, InboundRule, InboxEntry, NewInbound, RuleTarget};
pub use jobs::{
    Attempt, AttemptFinish, Ended, Ending, Job, JobAlteration, JobDocument, JobFilter, JobOwners,
    JobUpdate, LinkBatch, NewJob, ProgressRecord, SentEnd,
};
pub use retention::{Cutoffs, Purged};
pub use settings::{SettingsState, SettingsVersion};
/// A JSON column decoded into its type (a value that does not decode is [`Error::Corrupt`]).
pub use sqlx::types::Json;
pub use webhooks::{Delivery, DeliveryStatus, Webhook};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// Errors of the store. The supervisor maps them to API errors; their text may name tables but never
/// values, so secrets cannot leak through them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The change would leave no enabled client holding the administrator role in scope `all`.
    #[error("no other enabled client holds the administrator role in scope all")]
    LastAdministrator,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write shared with others (a group commit) failed, or its writer stopped: nothing of it was stored.
    #[error("the database did not take the write: {0}")]
    NotWritten(String),
}

impl From<sqlx::Error> for Error {
    /// A value the database holds but that does not decode (a damaged JSON column, an unknown status)
    /// is corrupt data, not a failing database: said so, with the column.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { index, source } => {
                Error::Corrupt(format!("column {index} does not decode: {source}"))
            }
            other => Error::Database(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Milliseconds since the Unix epoch; the one clock format the schema uses.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh identifier with a readable prefix (`job_…`, `att_…`); time-ordered (UUIDv7) so ids sort by
/// creation and index well.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[derive(Clone, Debug)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Clients with at least one active webhook, so that appending an event looks webhooks up only for them.
    hooked: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl Store {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000")
            // Statement journals (multi-row statements inside a transaction) stay in memory, never in
            // temporary files.
            .pragma("temp_store", "memory");
        // Multi-row statements have as many shapes as batch sizes: the writer keeps many prepared, so that
        // a batch of a size seen before is not parsed and planned again.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().statement_cache_capacity(1024))
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let store = Self {
            writer,
            reader,
            hooked: Default::default(),
        };
        store.reload_hooked().await?;
        Ok(store)
    }

    pub(crate) async fn reload_hooked(&self) -> Result<()> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT client_id FROM webhooks WHERE active = 1")
                .fetch_all(&self.writer)
                .await?;
        *self.hooked.write().unwrap_or_else(|e| e.into_inner()) = ids.into_iter().collect();
        Ok(())
    }

    /// Whether any client has an active webhook (no webhook, no delivery to look for).
    pub fn any_webhooks(&self) -> bool {
        !self
            .hooked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub(crate) fn has_webhooks(&self, client_id: &str) -> bool {
        self.hooked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(client_id)
    }

    /// Whether the database answers: a read, and the writer connection free within `within` (a write
    /// stuck behind a held lock makes the supervisor unready, not just slow).
    pub async fn ready(&self, within: Duration) -> Result<()> {
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&self.reader)
            .await?;
        let writer = tokio::time::timeout(within, self.writer.acquire())
            .await
            .map_err(|_| Error::NotWritten("the database writer is busy".into()))??;
        drop(writer);
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// A change in the making: the writes made through it and the audit entry that records them commit
/// together, or not at all (a dropped `Tx` rolls back). It holds the one writer connection, so whoever
/// holds it does nothing slow (no password hashing, no network) and makes no other store write before
/// committing: that write would wait for this very connection.
#[derive(Debug)]
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    store: Store,
    /// The change touched webhooks: the store's list of clients with webhooks is read again once it
    /// commits (not before, so a change rolled back leaves it as it was).
    webhooks_changed: bool,
}

impl Store {
    /// Starts a change; see [`Tx`].
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.writer.begin().await?,
            store: self.clone(),
            webhooks_changed: false,
        })
    }
}

impl Tx {
    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }

    /// Commits the change together with the entry that records it in the audit log.
    pub async fn commit_audited(mut self, entry: NewAudit) -> Result<()> {
        audit::insert(self.conn(), entry).await?;
        self.commit().await
    }

    /// Commits a change that records nothing (internal bookkeeping).
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        if self.webhooks_changed {
            self.store.reload_hooked().await?;
        }
        Ok(())
    }
}

/// For writes of [`Tx`]: a [`Store`] method that makes one in a transaction of its own, for callers with
/// nothing to record beside it (tests, bootstrap, internal bookkeeping). A change a client or an operator
/// asks for goes through [`Store::begin`] and [`Tx::commit_audited`].
macro_rules! own_transaction {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*) => {
        impl crate::Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> crate::Result<$ret> {
                    let mut tx = self.begin().await?;
                    let out = tx.$name($($arg),*).await?;
                    tx.commit().await?;
                    Ok(out)
                }
            )*
        }
    };
}
pub(crate) use own_transaction;

fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict { what },
        _ => Error::Database(e),
    }
}

#[cfg(test)]
mod ready_tests {
    /// Ready while the database answers; not ready while a write holds the writer past the wait.
    #[tokio::test]
    async fn a_held_writer_makes_the_store_unready() {
        let (store, _dir) = crate::test_util::store().await;
        let wait = std::time::Duration::from_millis(200);
        store.ready(wait).await.expect("ready");
        let held = store.begin().await.expect("begin");
        let e = store.ready(wait).await.expect_err("writer held");
        assert!(e.to_string().contains("writer is busy"), "{e}");
        drop(held);
        store.ready(wait).await.expect("ready again");
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub async fn store() -> (Store, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let store = Store::open(&dir.path().join("faxhub.db"))
            .await
            .expect("open store");
        (store, dir)
    }

    /// A minimal temporary directory, so the store's tests need no extra crate.
    pub mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(crate::new_id("faxhub-store-test"));
                std::fs::create_dir_all(&path).expect("create temp dir");
                Self(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
