//! The audit log face (administrators; the "read the audit log" competence refines this later).

use super::{rfc3339, Paged};
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::Json;
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

#[derive(Serialize, ToSchema)]
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
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), responses((status = 200, body = Paged<AuditView>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(app): State<AppState>, caller: Caller, Query(q): Query<AuditQuery>) -> ApiResult<Json<Paged<AuditView>>> {
    caller.require_admin()?;
    let limit = super::Page { limit: q.limit, cursor: None }.limit()?;
    let before_seq = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::field("cursor", "not a cursor from this list"))?),
    };
    let filter = store::AuditFilter { actor_id: q.actor, target: q.target, action: q.action, before_seq, limit };
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let items = app
        .store
        .audit_entries(&filter)
        .await?
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
