//! Fax servers (claims 1 and 4): registered with a one-time enrollment token, read, routed (dial
//! prefixes), and withdrawn: revoking a fax server's credential, and deleting it. Either way its link is
//! closed at once, its credential refused from then on, and the attempts it held are abandoned and their
//! jobs routed to another fax server.

use crate::access::Caller;
use crate::auth::{self, Revoked};
use crate::clients::valid_name;
use crate::competence::{Competence, Target};
use crate::error::{Error, Result};
use crate::settings::rules;
use crate::{AppState, audit};
use store::MemberKind;

/// The longest an enrollment token may stay valid, and its default.
const MAX_ENROLLMENT_SECS: u64 = 30 * 86_400;
const DEFAULT_ENROLLMENT_SECS: u64 = 86_400;

/// A fax server to register.
#[derive(Debug)]
pub struct NewFaxServer<'a> {
    pub name: &'a str,
    /// E.164 prefixes it may dial ("+81"); none for any number.
    pub dial_prefixes: &'a [String],
    pub groupings: &'a [String],
    /// How long the enrollment token stays valid (default one day, at most 30).
    pub enrollment_ttl_secs: Option<u64>,
}

/// A registered fax server and its one-time enrollment token (shown once, kept only hashed).
#[derive(Debug)]
pub struct Enrollment {
    pub fax_server: store::FaxServer,
    pub token: String,
    pub expires_at: i64,
}

/// Registers a fax server in its groupings and issues its enrollment token. Needs the competence to
/// change fax server settings in each grouping (everywhere, for one in none).
pub async fn create(app: &AppState, caller: &Caller, new: &NewFaxServer<'_>) -> Result<Enrollment> {
    valid_name("name", new.name)?;
    rules::dial_prefixes("dial_prefixes", new.dial_prefixes)?;
    crate::groupings::check_exist(app, caller, "groupings", new.groupings).await?;
    if new.groupings.is_empty() {
        app.access
            .authorize(caller, Competence::ChangeFaxServerSettings, Target::System)?;
    }
    for g in new.groupings {
        app.access.authorize(
            caller,
            Competence::ChangeFaxServerSettings,
            Target::Grouping(g),
        )?;
    }
    let token = auth::new_secret("fxe");
    let ttl = new
        .enrollment_ttl_secs
        .unwrap_or(DEFAULT_ENROLLMENT_SECS)
        .min(MAX_ENROLLMENT_SECS);
    let expires_at = store::now_ms() + i64::try_from(ttl).unwrap_or(0) * 1000;
    let mut tx = app.store.begin().await?;
    let fs = tx
        .create_fax_server(
            new.name,
            new.dial_prefixes,
            &auth::hash_secret(&token),
            expires_at,
        )
        .await?;
    for g in new.groupings {
        tx.add_grouping_member(g, MemberKind::FaxServer, &fs.id)
            .await?;
    }
    let recorded = serde_json::json!({
        "id": fs.id, "name": fs.name, "dial_prefixes": fs.dial_prefixes(), "groupings": new.groupings,
        "enrollment_expires_at": crate::rfc3339(expires_at),
    });
    tx.commit_audited(audit::entry(
        Ok(caller),
        "fax_server.created",
        Some(&fs.id),
        audit::NONE,
        Some(&recorded),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    app.dispatcher
        .register_fax_server(&fs.id, fs.dial_prefixes());
    tracing::info!(by = %caller.name, fax_server = %fs.name, "fax server registered");
    Ok(Enrollment {
        fax_server: fs,
        token,
        expires_at,
    })
}

/// The fax servers that share a grouping with the caller, or whose settings it may read.
pub async fn list(app: &AppState, caller: &Caller) -> Result<Vec<store::FaxServer>> {
    let all = app.store.fax_servers().await?;
    Ok(all
        .into_iter()
        .filter(|fs| app.access.fax_server_visible(caller, &fs.id))
        .collect())
}

/// One fax server the caller may see.
pub async fn visible(app: &AppState, caller: &Caller, id: &str) -> Result<store::FaxServer> {
    if !app.access.fax_server_visible(caller, id) {
        return Err(Error::not_found("fax server"));
    }
    app.store
        .fax_server(id)
        .await?
        .ok_or_else(|| Error::not_found("fax server"))
}

/// Changes a fax server's routing: which numbers it may dial, when given. Needs the competence over it
/// and over every grouping it serves. The dispatcher routes by them from its next round.
pub async fn change(
    app: &AppState,
    caller: &Caller,
    fs: &store::FaxServer,
    dial_prefixes: Option<Vec<String>>,
) -> Result<()> {
    app.access.authorize_change_of_fax_server(
        caller,
        Competence::ChangeFaxServerSettings,
        &fs.id,
    )?;
    let Some(prefixes) = dial_prefixes else {
        return Ok(());
    };
    rules::dial_prefixes("dial_prefixes", &prefixes)?;
    let (before, after) = (
        serde_json::json!({"dial_prefixes": fs.dial_prefixes()}),
        serde_json::json!({"dial_prefixes": &prefixes}),
    );
    let mut tx = app.store.begin().await?;
    tx.set_fax_server_dial_prefixes(&fs.id, &prefixes).await?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        "fax_server.changed",
        Some(&fs.id),
        Some(&before),
        Some(&after),
    ))
    .await?;
    app.dispatcher.set_dial_prefixes(&fs.id, prefixes);
    Ok(())
}

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
