//! Received faxes, inbound routing rules and inboxes (claims 3–4).

use crate::{NewEvent, Result, Store, events, new_id, now_ms};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct InboundFax {
    pub id: String,
    pub fax_server_id: String,
    pub sha256: String,
    pub pages: i64,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    pub tsi: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub received_at: i64,
    /// What arrived of each page, as the fax server said (empty from fax servers that did not).
    #[sqlx(json)]
    pub page_info: Vec<protocol::InboundPage>,
    /// Why the call ended before the fax was complete.
    pub failure: Option<String>,
}

pub type NewInbound = InboundFax;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RuleTarget {
    Client(String),
    Grouping(String),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundRule {
    pub id: String,
    pub priority: i64,
    pub fax_server_id: Option<String>,
    pub called_number: Option<String>,
    pub tsi: Option<String>,
    pub caller_prefix: Option<String>,
    /// Where its faxes go (a JSON array in the database).
    pub targets: sqlx::types::Json<Vec<RuleTarget>>,
    pub created_by: String,
    pub created_at: i64,
}

impl InboundRule {
    pub fn targets(&self) -> Vec<RuleTarget> {
        self.targets.0.clone()
    }
}

#[derive(Debug, Clone)]
pub struct InboxEntry {
    pub target: RuleTarget,
    pub rule_id: Option<String>,
}

impl Store {
    /// Stores a received fax with the inbox entries it was routed to and its events, once: a repeated
    /// `inbound_id` (the fax server re-sending after a reconnect) changes nothing and returns false.
    pub async fn insert_inbound(
        &self,
        fax: &NewInbound,
        entries: &[InboxEntry],
        events: &[NewEvent],
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbound_faxes (id, fax_server_id, sha256, pages, caller_number, called_number, tsi,
                 started_at, ended_at, received_at, page_info, failure)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&fax.id)
        .bind(&fax.fax_server_id)
        .bind(&fax.sha256)
        .bind(fax.pages)
        .bind(&fax.caller_number)
        .bind(&fax.called_number)
        .bind(&fax.tsi)
        .bind(&fax.started_at)
        .bind(&fax.ended_at)
        .bind(fax.received_at)
        .bind(sqlx::types::Json(&fax.page_info))
        .bind(&fax.failure)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        for entry in entries {
            let (kind, id) = match &entry.target {
                RuleTarget::Client(id) => ("client", id),
                RuleTarget::Grouping(id) => ("grouping", id),
            };
            sqlx::query(
                "INSERT INTO inbox_entries (inbound_id, target_kind, target_id, rule_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&fax.id)
            .bind(kind)
            .bind(id)
            .bind(&entry.rule_id)
            .execute(&mut *tx)
            .await?;
        }
        events::append(self, &mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn inbound(&self, id: &str) -> Result<Option<InboundFax>> {
        Ok(sqlx::query_as("SELECT * FROM inbound_faxes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Faxes delivered to this client or to the shared inbox of one of these groupings, the most
    /// recently received first, after the cursor `before` (received time and id of the last one seen)
    /// (`crate::access` in the supervisor says which groupings, and filters what it returns).
    pub async fn inbox_for(
        &self,
        client_id: &str,
        groupings: &[String],
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<InboundFax>> {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT DISTINCT f.* FROM inbound_faxes f JOIN inbox_entries e ON e.inbound_id = f.id
             WHERE ((e.target_kind = 'client' AND e.target_id = ",
        );
        q.push_bind(client_id);
        q.push(")");
        if !groupings.is_empty() {
            q.push(" OR (e.target_kind = 'grouping' AND e.target_id IN (");
            let mut ids = q.separated(", ");
            for g in groupings {
                ids.push_bind(g);
            }
            q.push("))");
        }
        q.push(")");
        if let Some((received_at, id)) = before {
            q.push(" AND (f.received_at < ");
            q.push_bind(received_at);
            q.push(" OR (f.received_at = ");
            q.push_bind(received_at);
            q.push(" AND f.id < ");
            q.push_bind(id);
            q.push("))");
        }
        q.push(" ORDER BY f.received_at DESC, f.id DESC LIMIT ");
        q.push_bind(limit);
        Ok(q.build_query_as().fetch_all(&self.reader).await?)
    }

    /// Where an inbound fax was delivered.
    pub async fn inbox_targets(&self, inbound_id: &str) -> Result<Vec<RuleTarget>> {
        let mut all = self.inbox_targets_of(&[inbound_id.to_owned()]).await?;
        Ok(all.remove(inbound_id).unwrap_or_default())
    }

    /// Where each of these inbound faxes was delivered (one query for a page of the inbox).
    pub async fn inbox_targets_of(
        &self,
        inbound_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<RuleTarget>>> {
        let mut out: std::collections::HashMap<String, Vec<RuleTarget>> = Default::default();
        if inbound_ids.is_empty() {
            return Ok(out);
        }
        let mut q = sqlx::QueryBuilder::new(
            "SELECT inbound_id, target_kind, target_id FROM inbox_entries WHERE inbound_id IN (",
        );
        let mut ids = q.separated(", ");
        for id in inbound_ids {
            ids.push_bind(id);
        }
        q.push(") ORDER BY inbound_id, target_kind, target_id");
        let rows: Vec<(String, String, String)> =
            q.build_query_as().fetch_all(&self.reader).await?;
        for (inbound, kind, id) in rows {
            let target = match kind.as_str() {
                "client" => RuleTarget::Client(id),
                "grouping" => RuleTarget::Grouping(id),
                other => return Err(crate::Error::Corrupt(format!("inbox entry kind {other:?}"))),
            };
            out.entry(inbound).or_default().push(target);
        }
        Ok(out)
    }

    /// Rules in the order they are tried: lower priority number first, then oldest first.
    pub async fn inbound_rules(&self) -> Result<Vec<InboundRule>> {
        Ok(
            sqlx::query_as("SELECT * FROM inbound_rules ORDER BY priority, created_at, id")
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

impl crate::Tx {
    pub async fn create_inbound_rule(
        &mut self,
        mut rule: InboundRule,
        targets: &[RuleTarget],
    ) -> Result<InboundRule> {
        rule.id = new_id("rule");
        rule.created_at = now_ms();
        rule.targets = sqlx::types::Json(targets.to_vec());
        sqlx::query(
            "INSERT INTO inbound_rules (id, priority, fax_server_id, called_number, tsi, caller_prefix, targets,
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&rule.id)
        .bind(rule.priority)
        .bind(&rule.fax_server_id)
        .bind(&rule.called_number)
        .bind(&rule.tsi)
        .bind(&rule.caller_prefix)
        .bind(&rule.targets)
        .bind(&rule.created_by)
        .bind(rule.created_at)
        .execute(self.conn())
        .await?;
        Ok(rule)
    }

    pub async fn delete_inbound_rule(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM inbound_rules WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

crate::own_transaction! {
    fn create_inbound_rule(&self, rule: InboundRule, targets: &[RuleTarget]) -> InboundRule;
    fn delete_inbound_rule(&self, id: &str) -> bool;
}
