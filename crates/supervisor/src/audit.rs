//! Recording administrative changes and sign-ins in the audit log. Callers pass states that are already
//! free of secrets (masked settings, client views without password hashes).

use crate::AppState;
use crate::access::Caller;
use crate::error::current_request_id;
use serde::Serialize;

/// Records one entry; a failure to record is logged, not returned, so it never undoes the change itself.
pub async fn record<B: Serialize, A: Serialize>(
    app: &AppState,
    actor: Result<&Caller, &str>,
    action: &str,
    target: Option<&str>,
    before: Option<&B>,
    after: Option<&A>,
) {
    let (actor_id, actor_name) = match actor {
        Ok(c) => (Some(c.id.clone()), c.name.clone()),
        Err(name) => (None, name.to_owned()),
    };
    let entry = store::NewAudit {
        actor_id,
        actor_name,
        action: action.to_owned(),
        target: target.map(str::to_owned),
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
        request_id: Some(current_request_id()).filter(|r| !r.is_empty()),
    };
    if let Err(e) = app.store.audit(entry).await {
        tracing::error!(action, "audit log write failed: {e}");
    }
}

/// No state to record.
pub const NONE: Option<&()> = None;
