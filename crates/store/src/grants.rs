//! Roles and grants (claims 11–12). The supervisor owns the meaning of competence names; here they are
//! plain strings in a JSON array.

use crate::{Error, Result, Store, conflict_on_unique, new_id, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// JSON array of competence names.
    /// Competence names (a JSON array in the database).
    pub competences: sqlx::types::Json<Vec<String>>,
    pub builtin: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
}

impl Role {
    pub fn competence_names(&self) -> Vec<String> {
        self.competences.0.clone()
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub role_id: String,
    pub scope_kind: String,
    pub scope_id: String,
    pub granted_by: Option<String>,
    pub created_at: i64,
}

impl Store {
    pub async fn roles(&self) -> Result<Vec<Role>> {
        Ok(
            sqlx::query_as("SELECT * FROM roles ORDER BY builtin DESC, name")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    pub async fn role(&self, id: &str) -> Result<Option<Role>> {
        Ok(sqlx::query_as("SELECT * FROM roles WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn role_by_name(&self, name: &str) -> Result<Option<Role>> {
        Ok(sqlx::query_as("SELECT * FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn all_grants(&self) -> Result<Vec<Grant>> {
        Ok(
            sqlx::query_as("SELECT * FROM client_grants ORDER BY client_id, created_at")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    pub async fn grants_of(&self, client_id: &str) -> Result<Vec<Grant>> {
        Ok(
            sqlx::query_as("SELECT * FROM client_grants WHERE client_id = $1 ORDER BY created_at")
                .bind(client_id)
                .fetch_all(&self.reader)
                .await?,
        )
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        Ok(sqlx::query_as("SELECT * FROM client_grants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
}

impl crate::Tx {
    pub async fn create_role(
        &mut self,
        name: &str,
        competences: &[&str],
        created_by: &str,
    ) -> Result<Role> {
        let role = Role {
            id: new_id("role"),
            name: name.to_owned(),
            competences: sqlx::types::Json(competences.iter().map(|c| (*c).to_owned()).collect()),
            builtin: false,
            created_by: Some(created_by.to_owned()),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO roles (id, name, competences, builtin, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&role.id)
        .bind(&role.name)
        .bind(&role.competences)
        .bind(role.builtin)
        .bind(&role.created_by)
        .bind(role.created_at)
        .execute(self.conn())
        .await
        .map_err(conflict_on_unique("a role with that name"))?;
        Ok(role)
    }

    /// Deletes a role no client holds; built-in roles stay.
    pub async fn delete_role(&mut self, id: &str) -> Result<bool> {
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM client_grants WHERE role_id = $1")
            .bind(id)
            .fetch_one(self.conn())
            .await?;
        if held > 0 {
            return Err(Error::Conflict {
                what: "a grant of this role",
            });
        }
        let done = sqlx::query("DELETE FROM roles WHERE id = $1 AND builtin = 0")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives a client a role in a scope; granting the same again is not an error and answers the grant held.
    pub async fn add_grant(
        &mut self,
        client_id: &str,
        role_id: &str,
        scope_kind: &str,
        scope_id: &str,
        granted_by: Option<&str>,
    ) -> Result<Grant> {
        let grant = Grant {
            id: new_id("gr"),
            client_id: client_id.to_owned(),
            role_id: role_id.to_owned(),
            scope_kind: scope_kind.to_owned(),
            scope_id: scope_id.to_owned(),
            granted_by: granted_by.map(str::to_owned),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO client_grants (id, client_id, role_id, scope_kind, scope_id, granted_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(&grant.role_id)
        .bind(&grant.scope_kind)
        .bind(&grant.scope_id)
        .bind(&grant.granted_by)
        .bind(grant.created_at)
        .execute(self.conn())
        .await?;
        Ok(sqlx::query_as(
            "SELECT * FROM client_grants WHERE client_id = $1 AND role_id = $2 AND scope_kind = $3 AND scope_id = $4",
        )
        .bind(client_id)
        .bind(role_id)
        .bind(scope_kind)
        .bind(scope_id)
        .fetch_one(self.conn())
        .await?)
    }

    /// Withdraws a grant; the last enabled holder of the administrator role in scope `all` keeps it.
    pub async fn remove_grant(&mut self, id: &str) -> Result<bool> {
        let Some(grant) = sqlx::query_as::<_, Grant>("SELECT * FROM client_grants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.conn())
            .await?
        else {
            return Ok(false);
        };
        if grant.role_id == crate::clients::ADMINISTRATOR
            && grant.scope_kind == "all"
            && !crate::clients::another_administrator_remains(self.conn(), &grant.client_id).await?
        {
            return Err(Error::LastAdministrator);
        }
        let done = sqlx::query("DELETE FROM client_grants WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

crate::own_transaction! {
    fn create_role(&self, name: &str, competences: &[&str], created_by: &str) -> Role;
    /// Deletes a role no client holds; built-in roles stay.
    fn delete_role(&self, id: &str) -> bool;
    /// Gives a client a role in a scope; granting the same again is not an error and answers the grant held.
    fn add_grant(&self, client_id: &str, role_id: &str, scope_kind: &str, scope_id: &str, granted_by: Option<&str>) -> Grant;
    /// Withdraws a grant; the last enabled holder of the administrator role in scope `all` keeps it.
    fn remove_grant(&self, id: &str) -> bool;
}

#[cfg(test)]
mod tests {
    use crate::test_util::store;

    #[tokio::test]
    async fn roles_and_grants() {
        let (s, _dir) = store().await;
        let names: Vec<String> = s
            .roles()
            .await
            .expect("roles")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            names,
            [
                "administrator",
                "grouping administrator",
                "operator",
                "user"
            ]
        );
        let c = s
            .create_client(crate::NewClient::application("ann"))
            .await
            .expect("client");
        let role = s
            .create_role("sender", &["send_faxes"], "admin")
            .await
            .expect("role");
        assert_eq!(role.competence_names(), ["send_faxes"]);
        assert!(matches!(
            s.create_role("sender", &[], "admin").await,
            Err(crate::Error::Conflict { .. })
        ));
        let g = s
            .add_grant(&c.id, &role.id, "grouping", "grp_1", Some("admin"))
            .await
            .expect("grant");
        let again = s
            .add_grant(&c.id, &role.id, "grouping", "grp_1", Some("admin"))
            .await
            .expect("grant");
        assert_eq!(g.id, again.id);
        assert_eq!(s.grants_of(&c.id).await.expect("grants").len(), 1);
        assert!(matches!(
            s.delete_role(&role.id).await,
            Err(crate::Error::Conflict { .. })
        ));
        assert!(s.remove_grant(&g.id).await.expect("remove"));
        assert!(s.delete_role(&role.id).await.expect("delete"));
        assert!(!s.delete_role("role_user").await.expect("builtin stays"));
    }
}
