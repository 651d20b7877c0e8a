//! Clients (people and applications) and their API tokens.

use crate::{Result, Store, conflict_on_unique, new_id, now_ms};
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

impl Store {
    /// Creates a client with its grouping memberships and grants, all or nothing.
    pub async fn create_client(&self, new: NewClient<'_>) -> Result<Client> {
        let client = Client {
            id: new_id("cli"),
            name: new.name.to_owned(),
            kind: new.kind.as_str().to_owned(),
            password_hash: new.password_hash.map(str::to_owned),
            disabled: false,
            created_at: now_ms(),
        };
        let mut tx = self.writer.begin().await?;
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
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("a client with that name"))?;
        for g in new.groupings {
            sqlx::query(
                "INSERT INTO grouping_members (grouping_id, member_kind, member_id) VALUES ($1, 'client', $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(g)
            .bind(&client.id)
            .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(client)
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        Ok(sqlx::query_as("SELECT * FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn client_by_name(&self, name: &str) -> Result<Option<Client>> {
        Ok(sqlx::query_as("SELECT * FROM clients WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn clients(&self) -> Result<Vec<Client>> {
        Ok(sqlx::query_as("SELECT * FROM clients ORDER BY name")
            .fetch_all(&self.reader)
            .await?)
    }

    pub async fn count_clients(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.reader)
            .await?)
    }

    /// Stores the hash of a new API token; the token itself is never stored.
    pub async fn create_token(
        &self,
        client_id: &str,
        token_hash: &str,
        label: &str,
    ) -> Result<String> {
        let id = new_id("tok");
        sqlx::query(
            "INSERT INTO api_tokens (id, client_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(client_id)
        .bind(token_hash)
        .bind(label)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(conflict_on_unique("an API token"))?;
        Ok(id)
    }

    /// The enabled client holding a live token with this hash.
    pub async fn client_by_token_hash(&self, token_hash: &str) -> Result<Option<Client>> {
        Ok(sqlx::query_as(
            "SELECT c.* FROM api_tokens t JOIN clients c ON c.id = t.client_id
             WHERE t.token_hash = $1 AND t.revoked = 0 AND c.disabled = 0",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::store;
    use crate::{ClientKind, Error, NewClient};

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
        store
            .create_token(&alice.id, "abc", "cli")
            .await
            .expect("token");
        let found = store
            .client_by_token_hash("abc")
            .await
            .expect("query")
            .expect("found");
        assert_eq!(found.id, alice.id);
        assert!(
            store
                .client_by_token_hash("abd")
                .await
                .expect("query")
                .is_none()
        );
        let again = store.create_client(NewClient::application("alice")).await;
        assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    }
}
