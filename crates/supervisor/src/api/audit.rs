//! The audit log face: holders of "read the audit log" see the entries whose target their scope covers.

use super::{Paged, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::competence::{Competence, Target};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// A client id.
    pub actor: Option<String>,
    /// The id of the changed object.
    pub target: Option<String>,
    /// e.g. `settings.changed`, `session.created`.
    pub action: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

/// Administrative changes and sign-ins, newest first.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), responses((status = 200, body = Paged<AuditView>), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Paged<AuditView>>> {
    app.access
        .authorize(&caller, Competence::ReadAuditLog, Target::Anywhere)?;
    let limit = super::Page {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let mut before_seq = match &q.cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::field("cursor", "not a cursor from this list"))?,
        ),
    };
    let everything = app
        .access
        .holds(&caller.id, Competence::ReadAuditLog, Target::System);
    // Holders in a narrower scope see the entries whose target their scope covers. Not those merely made
    // by a client in their scope: an administrator of everything who is also in a grouping would otherwise
    // show that grouping's administrators every change it makes anywhere. Reading on in pages until the
    // page is full keeps the cursor meaning "older than this".
    let in_scope = |e: &store::AuditEntry| {
        everything
            || e.target
                .as_deref()
                .and_then(target_of)
                .is_some_and(|t| app.access.holds(&caller.id, Competence::ReadAuditLog, t))
    };
    let mut entries = Vec::new();
    loop {
        let filter = store::AuditFilter {
            actor_id: q.actor.clone(),
            target: q.target.clone(),
            action: q.action.clone(),
            before_seq,
            limit,
        };
        let batch = app.store.audit_entries(&filter).await?;
        let exhausted = i64::try_from(batch.len()).unwrap_or(i64::MAX) < limit;
        before_seq = batch.last().map(|e| e.seq);
        entries.extend(batch.into_iter().filter(|e| in_scope(e)));
        if exhausted || i64::try_from(entries.len()).unwrap_or(i64::MAX) >= limit {
            break;
        }
    }
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let items = entries
        .into_iter()
        .map(|e| AuditView {
            seq: e.seq,
            at: rfc3339(e.at),
            actor_id: e.actor_id,
            actor_name: e.actor_name,
            action: e.action,
            target: e.target,
            before: parse(e.before),
            after: parse(e.after),
            request_id: e.request_id,
        })
        .collect();
    Ok(Json(Paged::new(items, limit, |e| e.seq.to_string())))
}

/// What an object id in the audit log names, by its prefix.
fn target_of(id: &str) -> Option<Target<'_>> {
    match id.split_once('_')?.0 {
        "cli" => Some(Target::Client(id)),
        "grp" => Some(Target::Grouping(id)),
        "fs" => Some(Target::FaxServer(id)),
        _ => None,
    }
}
