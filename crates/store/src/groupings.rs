//! Groupings (claims 13–14): sets of clients and fax servers; data passes only within a shared grouping.

use crate::{Error, Result, Store, conflict_on_unique, new_id, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    Client,
    FaxServer,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Client => "client",
            MemberKind::FaxServer => "fax_server",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Grouping {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    pub async fn grouping(&self, id: &str) -> Result<Option<Grouping>> {
        Ok(sqlx::query_as("SELECT * FROM groupings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn groupings(&self) -> Result<Vec<Grouping>> {
        Ok(sqlx::query_as("SELECT * FROM groupings ORDER BY name")
            .fetch_all(&self.reader)
            .await?)
    }

    pub async fn grouping_members(&self, grouping_id: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT member_kind, member_id FROM grouping_members WHERE grouping_id = $1
             ORDER BY member_kind, member_id",
        )
        .bind(grouping_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Ids of the groupings a member belongs to.
    pub async fn groupings_of(&self, kind: MemberKind, member_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT grouping_id FROM grouping_members WHERE member_kind = $1 AND member_id = $2 ORDER BY grouping_id",
        )
        .bind(kind.as_str())
        .bind(member_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Every (grouping, member kind, member id) row: the supervisor keeps this in memory for routing.
    pub async fn all_grouping_members(&self) -> Result<Vec<(String, String, String)>> {
        Ok(
            sqlx::query_as("SELECT grouping_id, member_kind, member_id FROM grouping_members")
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

impl crate::Tx {
    pub async fn create_grouping(&mut self, name: &str) -> Result<Grouping> {
        let g = Grouping {
            id: new_id("grp"),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO groupings (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&g.id)
            .bind(&g.name)
            .bind(g.created_at)
            .execute(self.conn())
            .await
            .map_err(conflict_on_unique("a grouping with that name"))?;
        Ok(g)
    }

    /// Adds a member; adding one twice is not an error.
    pub async fn add_grouping_member(
        &mut self,
        grouping_id: &str,
        kind: MemberKind,
        member_id: &str,
    ) -> Result<()> {
        let known: Option<String> = sqlx::query_scalar("SELECT id FROM groupings WHERE id = $1")
            .bind(grouping_id)
            .fetch_optional(self.conn())
            .await?;
        if known.is_none() {
            return Err(Error::NotFound { what: "grouping" });
        }
        sqlx::query(
            "INSERT INTO grouping_members (grouping_id, member_kind, member_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(grouping_id)
        .bind(kind.as_str())
        .bind(member_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn remove_grouping_member(
        &mut self,
        grouping_id: &str,
        kind: MemberKind,
        member_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM grouping_members WHERE grouping_id = $1 AND member_kind = $2 AND member_id = $3",
        )
        .bind(grouping_id)
        .bind(kind.as_str())
        .bind(member_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

crate::own_transaction! {
    fn create_grouping(&self, name: &str) -> Grouping;
    /// Adds a member; adding one twice is not an error.
    fn add_grouping_member(&self, grouping_id: &str, kind: MemberKind, member_id: &str) -> ();
    fn remove_grouping_member(&self, grouping_id: &str, kind: MemberKind, member_id: &str) -> bool;
}
