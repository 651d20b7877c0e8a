//! Inbound routing rules (claims 3 and 24): which clients or groupings a received fax goes to, by fax
//! server, called number, sender's identity or caller prefix. Made, read and deleted here for every
//! face; `inbound::route` applies them.

use crate::access::Caller;
use crate::competence::{Competence, Target};
use crate::error::{Error, Result};
use crate::{AppState, audit};
use serde::{Deserialize, Serialize};
use store::{InboundRule, RuleTarget};
use utoipa::ToSchema;

/// A rule as it is asked for and shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleBody {
    #[serde(default)]
    pub id: String,
    /// Lower numbers are tried first (default 100).
    pub priority: Option<i64>,
    pub fax_server_id: Option<String>,
    pub called_number: Option<String>,
    pub tsi: Option<String>,
    pub caller_prefix: Option<String>,
    /// `{"kind": "client" | "grouping", "id": ...}`
    pub targets: Vec<RuleTargetBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleTargetBody {
    pub kind: String,
    pub id: String,
}

/// A stored rule as it is shown.
pub fn view(r: InboundRule) -> RuleBody {
    let targets = r
        .targets()
        .into_iter()
        .map(|t| match t {
            RuleTarget::Client(id) => RuleTargetBody {
                kind: "client".into(),
                id,
            },
            RuleTarget::Grouping(id) => RuleTargetBody {
                kind: "grouping".into(),
                id,
            },
        })
        .collect();
    RuleBody {
        id: r.id,
        priority: Some(r.priority),
        fax_server_id: r.fax_server_id,
        called_number: r.called_number,
        tsi: r.tsi,
        caller_prefix: r.caller_prefix,
        targets,
    }
}

/// Makes a rule. On one fax server it needs the competence over that fax server and every grouping it
/// serves; on every fax server, the competence everywhere. Its targets must be clients or groupings the
/// caller can see.
pub async fn create(app: &AppState, caller: &Caller, req: RuleBody) -> Result<RuleBody> {
    let no_fax_server = |fs: &str| Error::field("fax_server_id", format!("no fax server {fs}"));
    match &req.fax_server_id {
        Some(fs) if !app.access.fax_server_visible(caller, fs) => return Err(no_fax_server(fs)),
        Some(fs) => {
            app.access
                .authorize_change_of_fax_server(caller, Competence::ManageInboundRules, fs)?
        }
        None => app
            .access
            .authorize(caller, Competence::ManageInboundRules, Target::System)?,
    }
    if req.targets.is_empty() {
        return Err(Error::field(
            "targets",
            "name at least one client or grouping",
        ));
    }
    let mut targets = Vec::with_capacity(req.targets.len());
    for (i, t) in req.targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        targets.push(match t.kind.as_str() {
            "client"
                if app.access.client_visible(caller, &t.id)
                    && app.store.client(&t.id).await?.is_some() =>
            {
                RuleTarget::Client(t.id.clone())
            }
            "grouping"
                if app.access.grouping_visible(caller, &t.id)
                    && app.store.grouping(&t.id).await?.is_some() =>
            {
                RuleTarget::Grouping(t.id.clone())
            }
            "client" | "grouping" => {
                return Err(Error::field(&field, format!("no {} {}", t.kind, t.id)));
            }
            _ => {
                return Err(Error::field(
                    &format!("{field}.kind"),
                    "must be \"client\" or \"grouping\"",
                ));
            }
        });
    }
    if let Some(fs) = &req.fax_server_id
        && app.store.fax_server(fs).await?.is_none()
    {
        return Err(no_fax_server(fs));
    }
    let rule = InboundRule {
        id: String::new(),
        priority: req.priority.unwrap_or(100),
        fax_server_id: req.fax_server_id,
        called_number: req.called_number,
        tsi: req.tsi,
        caller_prefix: req.caller_prefix,
        targets: store::Json(Vec::new()),
        created_by: caller.id.clone(),
        created_at: 0,
    };
    let mut tx = app.store.begin().await?;
    let rule = view(tx.create_inbound_rule(rule, &targets).await?);
    tx.commit_audited(audit::entry(
        Ok(caller),
        "inbound_rule.created",
        Some(&rule.id),
        audit::NONE,
        Some(&rule),
    ))
    .await?;
    Ok(rule)
}

/// The rules the caller manages (needs the competence somewhere).
pub async fn list(app: &AppState, caller: &Caller) -> Result<Vec<InboundRule>> {
    app.access
        .authorize(caller, Competence::ManageInboundRules, Target::Anywhere)?;
    let rules = app.store.inbound_rules().await?;
    Ok(rules
        .into_iter()
        .filter(|r| in_reach(app, caller, r))
        .collect())
}

/// Deletes a rule the caller manages; one on a fax server needs the competence over every grouping it
/// serves (where that fax server's faxes go changes for each).
pub async fn delete(app: &AppState, caller: &Caller, id: &str) -> Result<()> {
    let rule = app
        .store
        .inbound_rules()
        .await?
        .into_iter()
        .find(|r| r.id == id);
    let Some(rule) = rule.filter(|r| in_reach(app, caller, r)) else {
        return Err(Error::not_found("inbound rule"));
    };
    if let Some(fs) = rule.fax_server_id.as_deref() {
        app.access
            .authorize_change_of_fax_server(caller, Competence::ManageInboundRules, fs)?;
    }
    let mut tx = app.store.begin().await?;
    if !tx.delete_inbound_rule(&rule.id).await? {
        return Err(Error::not_found("inbound rule"));
    }
    tx.commit_audited(audit::entry(
        Ok(caller),
        "inbound_rule.deleted",
        Some(id),
        Some(&view(rule)),
        audit::NONE,
    ))
    .await?;
    Ok(())
}

/// Whether the caller manages this rule: over its fax server, or everywhere for rules on every fax server.
fn in_reach(app: &AppState, caller: &Caller, rule: &InboundRule) -> bool {
    let target = rule
        .fax_server_id
        .as_deref()
        .map_or(Target::System, Target::FaxServer);
    app.access
        .holds(&caller.id, Competence::ManageInboundRules, target)
}
