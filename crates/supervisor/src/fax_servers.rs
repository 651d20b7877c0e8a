//! Withdrawing fax servers: revoking a fax server's credential, and deleting it. Either way its link is
//! closed at once, its credential refused from then on, and the attempts it held are abandoned and their
//! jobs routed to another fax server.

use crate::access::Caller;
use crate::auth::Revoked;
use crate::error::Error;
use crate::{AppState, audit};

/// Revokes a fax server's link credential (and any enrollment token it had not used).
pub async fn revoke(
    app: &AppState,
    caller: &Caller,
    fs: &store::FaxServer,
) -> crate::error::Result<()> {
    app.access.authorize_over_fax_server(caller, &fs.id)?;
    let mut tx = app.store.begin().await?;
    if !tx.revoke_fax_server(&fs.id).await? {
        return Err(Error::not_found("fax server"));
    }
    tx.commit_audited(audit::entry(
        Ok(caller),
        "fax_server.revoked",
        Some(&fs.id),
        audit::NONE,
        audit::NONE,
    ))
    .await?;
    withdraw(app, &fs.id, "the fax server's credential was revoked").await?;
    tracing::info!(by = %caller.name, fax_server = %fs.name, "fax server revoked");
    Ok(())
}

/// Deletes a fax server: revoked, out of every grouping, its inbound rules gone, its name free again.
pub async fn delete(
    app: &AppState,
    caller: &Caller,
    fs: &store::FaxServer,
) -> crate::error::Result<()> {
    app.access.authorize_over_fax_server(caller, &fs.id)?;
    let before = serde_json::json!({
        "name": fs.name, "dial_prefixes": fs.dial_prefixes(),
        "groupings": app.access.groupings_of_server(&fs.id),
    });
    let mut tx = app.store.begin().await?;
    if !tx.delete_fax_server(&fs.id).await? {
        return Err(Error::not_found("fax server"));
    }
    tx.commit_audited(audit::entry(
        Ok(caller),
        "fax_server.deleted",
        Some(&fs.id),
        Some(&before),
        audit::NONE,
    ))
    .await?;
    app.access.reload(&app.store).await?;
    withdraw(app, &fs.id, "the fax server was deleted").await?;
    tracing::info!(by = %caller.name, fax_server = %fs.name, "fax server deleted");
    Ok(())
}

/// How long a linked fax server being withdrawn has to confirm that its calls stopped before its link
/// closes.
const WITHDRAWAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes a fax server whose credential is void out of service: nothing more is offered to it, its
/// attempts are cancelled on it while its link is still up, and the jobs of those it confirms stopping
/// move on at once. Then its link closes; an attempt it did not confirm (it is unreachable, or did not
/// answer in time) is in doubt, and its job moves on once no call of it can still be running.
async fn withdraw(app: &AppState, fs_id: &str, why: &str) -> crate::error::Result<()> {
    let online = app.dispatcher.begin_withdrawal(fs_id, why);
    let held: Vec<store::Attempt> = app
        .store
        .open_attempts()
        .await?
        .into_iter()
        .filter(|a| a.fax_server_id == fs_id)
        .collect();
    for a in &held {
        app.dispatcher.request_cancel(a);
    }
    if online && !held.is_empty() {
        // Nothing new is offered to it, so once it holds no attempt every held one has ended.
        let until = tokio::time::Instant::now() + WITHDRAWAL_WAIT;
        while app.dispatcher.holds_attempts(fs_id) && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    app.dispatcher.unlink(fs_id);
    app.credentials
        .announce(Revoked::FaxServer(fs_id.to_owned()));
    Ok(())
}
