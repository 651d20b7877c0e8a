//! Recording administrative changes and sign-ins in the audit log. Callers pass states that are already
//! free of secrets (masked settings, client views without password hashes).

use crate::AppState;
use crate::access::Caller;
use crate::error::current_request_id;
use serde::Serialize;

/// Records an entry that goes with no change of state (a refused sign-in); a failure to record is logged,
/// not returned. An entry about a change is written in the change's own transaction instead:
/// [`store::Tx::commit_audited`] with an [`entry`].
pub async fn record<B: Serialize, A: Serialize>(
    app: &AppState,
    actor: Result<&Caller, &str>,
    action: &str,
    target: Option<&str>,
    before: Option<&B>,
    after: Option<&A>,
) {
    if let Err(e) = app
        .store
        .audit(entry(actor, action, target, before, after))
        .await
    {
        tracing::error!(action, "audit log write failed: {e}");
    }
}

/// An entry to store together with the change it records (in the change's own transaction).
pub fn entry<B: Serialize, A: Serialize>(
    actor: Result<&Caller, &str>,
    action: &str,
    target: Option<&str>,
    before: Option<&B>,
    after: Option<&A>,
) -> store::NewAudit {
    let (actor_id, actor_name) = match actor {
        Ok(c) => (Some(c.id.clone()), c.name.clone()),
        Err(name) => (None, name.to_owned()),
    };
    store::NewAudit {
        actor_id,
        actor_name,
        action: action.to_owned(),
        target: target.map(str::to_owned),
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
        request_id: Some(current_request_id()).filter(|r| !r.is_empty()),
    }
}

/// No state to record.
pub const NONE: Option<&()> = None;
