//! Clients (people and applications) and their API tokens.

use crate::{Error, Result, Store, conflict_on_unique, new_id, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Person,
    Application,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Person => "person",
            ClientKind::Application => "application",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(ClientKind::Person),
            "application" => Some(ClientKind::Application),
            _ => None,
        }
    }
}

/// What a new client starts with.
#[derive(Debug, Clone, Copy)]
pub struct NewClient<'a> {
    pub name: &'a str,
    pub kind: ClientKind,
    pub password_hash: Option<&'a str>,
    pub groupings: &'a [String],
    /// `(role id, scope kind, scope id)`.
    pub grants: &'a [(&'a str, &'a str, &'a str)],
    pub granted_by: Option<&'a str>,
}

impl<'a> NewClient<'a> {
    /// An application in no grouping with no grants (tests and tools).
    pub fn application(name: &'a str) -> Self {
        NewClient {
            name,
            kind: ClientKind::Application,
            password_hash: None,
            groupings: &[],
            grants: &[],
            granted_by: None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[sqlx(default)]
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
}

/// An API token as its owner and administrators see it; its hash never leaves the store.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub client_id: String,
    pub label: String,
    pub created_at: i64,
    /// Who issued it (absent for sign-ins and the bootstrap token).
    pub created_by: Option<String>,
    pub expires_at: Option<i64>,
    /// Written at most once a minute per token, so a busy client does not turn reads into writes.
    pub last_used_at: Option<i64>,
    /// Made by a password sign-in.
    pub session: bool,
}

/// What a request's bearer token stands for: the enabled client and the live token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    #[sqlx(flatten)]
    pub client: Client,
    pub token_id: String,
    pub token_expires_at: Option<i64>,
    /// The token came from a password sign-in (a new password ends it).
    pub token_session: bool,
}

/// A new API token: its hash, and for how long it is good.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub client_id: &'a str,
    pub token_hash: &'a str,
    pub label: &'a str,
    pub expires_at: Option<i64>,
    pub created_by: Option<&'a str>,
    /// Made by a password sign-in (ended by a new password).
    pub session: bool,
}

/// The role whose last enabled holder in scope `all` may not lose it (the migration that made it names it).
pub(crate) const ADMINISTRATOR: &str = "role_administrator";

/// A token is live while it is neither revoked nor past its expiry.
const LIVE_TOKEN: &str = "t.revoked = 0 AND (t.expires_at IS NULL OR t.expires_at > $2)";

const TOKEN_COLUMNS: &str = "t.id, t.client_id, t.label, t.created_at, t.created_by, t.expires_at, t.last_used_at, t.session";

/// Whether, once `client_id` no longer holds the administrator role in scope `all` (or is disabled or
/// deleted), another enabled client still does. Runs inside the caller's transaction so that two
/// administrators removing each other cannot both succeed.
pub(crate) async fn another_administrator_remains(
    conn: &mut sqlx::SqliteConnection,
    client_id: &str,
) -> Result<bool> {
    let holds: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM client_grants g JOIN clients c ON c.id = g.client_id
         WHERE g.client_id = $1 AND g.role_id = $2 AND g.scope_kind = 'all'
           AND c.disabled = 0 AND c.deleted_at IS NULL",
    )
    .bind(client_id)
    .bind(ADMINISTRATOR)
    .fetch_one(&mut *conn)
    .await?;
    if holds == 0 {
        return Ok(true);
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT g.client_id) FROM client_grants g JOIN clients c ON c.id = g.client_id
         WHERE g.client_id <> $1 AND g.role_id = $2 AND g.scope_kind = 'all'
           AND c.disabled = 0 AND c.deleted_at IS NULL",
    )
    .bind(client_id)
    .bind(ADMINISTRATOR)
    .fetch_one(&mut *conn)
    .await?;
    Ok(others > 0)
}

/// What deleting a client changed beyond the client itself, for the supervisor's in-memory views.
#[derive(Debug, Default)]
pub struct DeletedClient {
    /// Jobs that were waiting in the queue, now cancelled.
    pub cancelled_jobs: Vec<String>,
    /// Jobs with an attempt on a fax server (in doubt included), which the supervisor asks to stop; each
    /// is marked cancel-requested, so it is never queued or offered again.
    pub open_jobs: Vec<String>,
    /// Its webhooks, deactivated: deliveries under way stop.
    pub webhooks: Vec<String>,
}

impl Store {
    /// A client that has not been deleted.
    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        Ok(
            sqlx::query_as("SELECT * FROM clients WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    pub async fn client_by_name(&self, name: &str) -> Result<Option<Client>> {
        Ok(
            sqlx::query_as("SELECT * FROM clients WHERE name = $1 AND deleted_at IS NULL")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    pub async fn clients(&self) -> Result<Vec<Client>> {
        Ok(
            sqlx::query_as("SELECT * FROM clients WHERE deleted_at IS NULL ORDER BY name")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// Every client ever created, deleted ones included (so that a first start is told from a later one).
    pub async fn count_clients(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.reader)
            .await?)
    }

    /// The enabled client holding a live token with this hash, and that token.
    pub async fn session_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Session>> {
        Ok(sqlx::query_as(&format!(
            "SELECT c.*, t.id AS token_id, t.expires_at AS token_expires_at, t.session AS token_session
             FROM api_tokens t JOIN clients c ON c.id = t.client_id
             WHERE t.token_hash = $1 AND {LIVE_TOKEN} AND c.disabled = 0 AND c.deleted_at IS NULL"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Whether a token still opens the API: live, and its client enabled.
    pub async fn token_live(&self, token_id: &str, now: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM api_tokens t JOIN clients c ON c.id = t.client_id
             WHERE t.id = $1 AND {LIVE_TOKEN} AND c.disabled = 0 AND c.deleted_at IS NULL"
        ))
        .bind(token_id)
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        Ok(n > 0)
    }

    /// A client's live tokens, newest first.
    pub async fn tokens_of(&self, client_id: &str, now: i64) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.client_id = $1 AND {LIVE_TOKEN}
             ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(client_id)
        .bind(now)
        .fetch_all(&self.reader)
        .await?)
    }

    /// One live token of a client.
    pub async fn token_of(
        &self,
        client_id: &str,
        token_id: &str,
        now: i64,
    ) -> Result<Option<ApiToken>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.client_id = $3 AND t.id = $1 AND {LIVE_TOKEN}"
        ))
        .bind(token_id)
        .bind(now)
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Ids of the clients that are disabled (deleted ones included).
    pub async fn disabled_clients(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM clients WHERE disabled = 1")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// Records that a token was used at `at`.
    pub async fn touch_token(&self, token_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(token_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

impl crate::Tx {
    /// Creates a client with its grouping memberships and grants, all or nothing.
    pub async fn create_client(&mut self, new: NewClient<'_>) -> Result<Client> {
        let client = Client {
            id: new_id("cli"),
            name: new.name.to_owned(),
            kind: new.kind.as_str().to_owned(),
            password_hash: new.password_hash.map(str::to_owned),
            disabled: false,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO clients (id, name, kind, password_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.kind)
        .bind(&client.password_hash)
        .bind(client.disabled)
        .bind(client.created_at)
        .execute(self.conn())
        .await
        .map_err(conflict_on_unique("a client with that name"))?;
        for g in new.groupings {
            sqlx::query(
                "INSERT INTO grouping_members (grouping_id, member_kind, member_id) VALUES ($1, 'client', $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(g)
            .bind(&client.id)
            .execute(self.conn())
            .await?;
        }
        for (role, scope_kind, scope_id) in new.grants {
            sqlx::query(
                "INSERT INTO client_grants (id, client_id, role_id, scope_kind, scope_id, granted_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(new_id("gr"))
            .bind(&client.id)
            .bind(role)
            .bind(scope_kind)
            .bind(scope_id)
            .bind(new.granted_by)
            .bind(client.created_at)
            .execute(self.conn())
            .await?;
        }
        Ok(client)
    }

    /// Stores the hash of a new API token; the token itself is never stored.
    pub async fn create_token(&mut self, new: NewToken<'_>) -> Result<ApiToken> {
        let token = ApiToken {
            id: new_id("tok"),
            client_id: new.client_id.to_owned(),
            label: new.label.to_owned(),
            created_at: now_ms(),
            created_by: new.created_by.map(str::to_owned),
            expires_at: new.expires_at,
            last_used_at: None,
            session: new.session,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, client_id, token_hash, label, created_at, created_by, expires_at, session)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.client_id)
        .bind(new.token_hash)
        .bind(&token.label)
        .bind(token.created_at)
        .bind(&token.created_by)
        .bind(token.expires_at)
        .bind(token.session)
        .execute(self.conn())
        .await
        .map_err(conflict_on_unique("an API token"))?;
        Ok(token)
    }

    /// Revokes a live token of a client; false if there was none.
    pub async fn revoke_token(&mut self, client_id: &str, token_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked = 1, revoked_at = $1 WHERE id = $2 AND client_id = $3 AND revoked = 0",
        )
        .bind(now_ms())
        .bind(token_id)
        .bind(client_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes a client's sign-in tokens but `except`; their ids.
    pub async fn revoke_sessions(
        &mut self,
        client_id: &str,
        except: Option<&str>,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "UPDATE api_tokens SET revoked = 1, revoked_at = $1
             WHERE client_id = $2 AND session = 1 AND revoked = 0 AND ($3 IS NULL OR id <> $3) RETURNING id",
        )
        .bind(now_ms())
        .bind(client_id)
        .bind(except)
        .fetch_all(self.conn())
        .await?)
    }

    pub async fn set_password(&mut self, client_id: &str, password_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE clients SET password_hash = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(password_hash)
        .bind(client_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Disables or enables a client. A disabled client's tokens and password open nothing; enabling it
    /// again restores them. The last enabled administrator in scope `all` cannot be disabled.
    pub async fn set_client_disabled(&mut self, client_id: &str, disabled: bool) -> Result<bool> {
        if disabled && !another_administrator_remains(self.conn(), client_id).await? {
            return Err(Error::LastAdministrator);
        }
        let done =
            sqlx::query("UPDATE clients SET disabled = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(disabled)
                .bind(client_id)
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a client: its tokens, grants, memberships and webhooks go, its queued jobs are cancelled,
    /// and its name is freed. The row stays as a tombstone because jobs and the audit log refer to it.
    /// `None` if there is no such client; the last enabled administrator in scope `all` cannot be deleted.
    pub async fn delete_client(&mut self, client_id: &str) -> Result<Option<DeletedClient>> {
        let now = now_ms();
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM clients WHERE id = $1 AND deleted_at IS NULL")
                .bind(client_id)
                .fetch_optional(self.conn())
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        if !another_administrator_remains(self.conn(), client_id).await? {
            return Err(Error::LastAdministrator);
        }
        // '~' is not allowed in client names, so the freed name can never collide with a live one.
        sqlx::query(
            "UPDATE clients SET name = name || '~deleted~' || id, password_hash = NULL, disabled = 1,
                 deleted_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(client_id)
        .execute(self.conn())
        .await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked = 1, revoked_at = $1 WHERE client_id = $2 AND revoked = 0",
        )
        .bind(now)
        .bind(client_id)
        .execute(self.conn())
        .await?;
        sqlx::query("DELETE FROM client_grants WHERE client_id = $1")
            .bind(client_id)
            .execute(self.conn())
            .await?;
        sqlx::query("DELETE FROM grouping_members WHERE member_kind = 'client' AND member_id = $1")
            .bind(client_id)
            .execute(self.conn())
            .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the client was deleted', updated_at = $1
             WHERE status = 'pending' AND webhook_id IN (SELECT id FROM webhooks WHERE client_id = $2)",
        )
        .bind(now)
        .bind(client_id)
        .execute(self.conn())
        .await?;
        let webhooks: Vec<String> =
            sqlx::query_scalar("UPDATE webhooks SET active = 0 WHERE client_id = $1 RETURNING id")
                .bind(client_id)
                .fetch_all(self.conn())
                .await?;
        let cancelled_jobs: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'cancelled', reason = 'the client was deleted', updated_at = $1,
                 finished_at = $1 WHERE client_id = $2 AND status = 'queued' RETURNING id",
        )
        .bind(now)
        .bind(client_id)
        .fetch_all(self.conn())
        .await?;
        let mut open_jobs: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET cancel_requested = 1
             WHERE client_id = $1 AND status IN ('dispatched', 'active', 'in_doubt') RETURNING id",
        )
        .bind(client_id)
        .fetch_all(self.conn())
        .await?;
        open_jobs.sort_unstable();
        self.webhooks_changed = true;
        Ok(Some(DeletedClient {
            cancelled_jobs,
            open_jobs,
            webhooks,
        }))
    }
}

crate::own_transaction! {
    /// Creates a client with its grouping memberships and grants, all or nothing.
    fn create_client(&self, new: NewClient<'_>) -> Client;
    /// Stores the hash of a new API token; the token itself is never stored.
    fn create_token(&self, new: NewToken<'_>) -> ApiToken;
    /// Revokes a live token of a client; false if there was none.
    fn revoke_token(&self, client_id: &str, token_id: &str) -> bool;
    /// Revokes a client's sign-in tokens but `except`; their ids.
    fn revoke_sessions(&self, client_id: &str, except: Option<&str>) -> Vec<String>;
    fn set_password(&self, client_id: &str, password_hash: &str) -> bool;
    /// Disables or enables a client. A disabled client's tokens and password open nothing; enabling it
    /// again restores them. The last enabled administrator in scope `all` cannot be disabled.
    fn set_client_disabled(&self, client_id: &str, disabled: bool) -> bool;
    /// Deletes a client: its tokens, grants, memberships and webhooks go, its queued jobs are cancelled,
    /// and its name is freed. The row stays as a tombstone because jobs and the audit log refer to it.
    /// `None` if there is no such client; the last enabled administrator in scope `all` cannot be deleted.
    fn delete_client(&self, client_id: &str) -> Option<DeletedClient>;
}

#[cfg(test)]
mod tests {
    use crate::test_util::store;
    use crate::{ClientKind, Error, NewClient, NewToken, now_ms};

    fn token<'a>(client_id: &'a str, hash: &'a str, expires_at: Option<i64>) -> NewToken<'a> {
        NewToken {
            client_id,
            token_hash: hash,
            label: "cli",
            expires_at,
            created_by: None,
            session: false,
        }
    }

    #[tokio::test]
    async fn tokens_resolve_to_their_client_and_names_are_unique() {
        let (store, _dir) = store().await;
        let alice = store
            .create_client(NewClient {
                kind: ClientKind::Person,
                password_hash: Some("h"),
                ..NewClient::application("alice")
            })
            .await
            .expect("create");
        let t = store
            .create_token(token(&alice.id, "abc", None))
            .await
            .expect("token");
        let found = store
            .session_by_token_hash("abc", now_ms())
            .await
            .expect("query")
            .expect("found");
        assert_eq!(
            (found.client.id.as_str(), found.token_id.as_str()),
            (alice.id.as_str(), t.id.as_str())
        );
        assert!(
            store
                .session_by_token_hash("abd", now_ms())
                .await
                .expect("query")
                .is_none()
        );
        let again = store.create_client(NewClient::application("alice")).await;
        assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    }

    #[tokio::test]
    async fn expired_revoked_and_disabled_tokens_open_nothing() {
        let (store, _dir) = store().await;
        let c = store
            .create_client(NewClient::application("app"))
            .await
            .expect("create");
        let now = now_ms();
        let short = store
            .create_token(token(&c.id, "short", Some(now + 1000)))
            .await
            .expect("token");
        let long = store
            .create_token(token(&c.id, "long", None))
            .await
            .expect("token");
        let live = |hash: &'static str, at: i64| {
            let store = store.clone();
            async move {
                store
                    .session_by_token_hash(hash, at)
                    .await
                    .expect("q")
                    .is_some()
            }
        };
        assert!(live("short", now).await);
        assert!(!live("short", now + 1000).await, "expired at its expiry");
        assert_eq!(
            store.tokens_of(&c.id, now + 1000).await.expect("l").len(),
            1
        );
        assert!(store.revoke_token(&c.id, &long.id).await.expect("revoke"));
        assert!(!store.revoke_token(&c.id, &long.id).await.expect("again"));
        assert!(!live("long", now).await);
        assert!(!store.token_live(&long.id, now).await.expect("q"));
        assert!(store.token_live(&short.id, now).await.expect("q"));
        assert!(
            store
                .set_client_disabled(&c.id, true)
                .await
                .expect("disable")
        );
        assert!(
            !live("short", now).await,
            "a disabled client's tokens open nothing"
        );
        assert!(!store.token_live(&short.id, now).await.expect("q"));
        store
            .set_client_disabled(&c.id, false)
            .await
            .expect("enable");
        assert!(live("short", now).await, "enabling restores them");
        let signed_in = store
            .create_token(NewToken {
                session: true,
                ..token(&c.id, "session", None)
            })
            .await
            .expect("token");
        let other = store
            .create_token(NewToken {
                session: true,
                ..token(&c.id, "session2", None)
            })
            .await
            .expect("token");
        assert_eq!(
            store
                .revoke_sessions(&c.id, Some(&other.id))
                .await
                .expect("revoke"),
            std::slice::from_ref(&signed_in.id)
        );
        assert!(!live("session", now).await);
        assert!(live("session2", now).await, "the one excepted stays");
        assert!(live("short", now).await, "tokens not from a sign-in stay");
        store.touch_token(&short.id, now + 5).await.expect("touch");
        let listed = store.tokens_of(&c.id, now).await.expect("l");
        assert_eq!(listed.len(), 2);
        let short_listed = listed.iter().find(|t| t.id == short.id).expect("listed");
        assert_eq!(short_listed.last_used_at, Some(now + 5));
    }

    #[tokio::test]
    async fn the_last_administrator_everywhere_stays() {
        let (store, _dir) = store().await;
        let admin = |name: &'static str| {
            let store = store.clone();
            async move {
                store
                    .create_client(NewClient {
                        grants: &[("role_administrator", "all", "")],
                        ..NewClient::application(name)
                    })
                    .await
                    .expect("admin")
            }
        };
        let a = admin("a").await;
        let b = admin("b").await;
        let grant_of = |id: String| {
            let store = store.clone();
            async move { store.grants_of(&id).await.expect("grants").remove(0) }
        };
        assert!(
            store
                .set_client_disabled(&a.id, true)
                .await
                .expect("a disabled")
        );
        assert!(matches!(
            store.set_client_disabled(&b.id, true).await,
            Err(Error::LastAdministrator)
        ));
        assert!(matches!(
            store.remove_grant(&grant_of(b.id.clone()).await.id).await,
            Err(Error::LastAdministrator)
        ));
        assert!(matches!(
            store.delete_client(&b.id).await,
            Err(Error::LastAdministrator)
        ));
        // A disabled administrator is no administrator: its grant may go.
        assert!(
            store
                .remove_grant(&grant_of(a.id.clone()).await.id)
                .await
                .expect("a's grant")
        );
        let c = admin("c").await;
        let gone = store.delete_client(&b.id).await.expect("delete");
        assert!(gone.is_some());
        assert!(store.client(&b.id).await.expect("q").is_none());
        assert!(store.client_by_name("b").await.expect("q").is_none());
        store
            .create_client(NewClient::application("b"))
            .await
            .expect("the name is free again");
        assert!(matches!(
            store.delete_client(&c.id).await,
            Err(Error::LastAdministrator)
        ));
        assert!(store.delete_client(&b.id).await.expect("twice").is_none());
    }
}
