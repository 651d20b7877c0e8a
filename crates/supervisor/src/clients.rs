//! The credential lifecycle of clients: API tokens (issued, listed, revoked, expiring), passwords, and
//! clients disabled or deleted. Faces (REST, CLI through REST) parse and render; the rules are here.
//!
//! A client acts on itself (its tokens, its password) freely. Acting on another client needs authority over
//! everything that client reaches (`Access::authorize_over_client`), because whoever holds a client's token
//! or password is that client. A revoked token, a disabled or a deleted client is refused from the next
//! request on, and the event streams opened with it end (`Credentials::announce`).

use crate::access::Caller;
use crate::auth::{self, MAX_PASSWORD_CHARS, Revoked};
use crate::error::Error;
use crate::{AppState, audit};
use store::{ApiToken, Client, ClientKind};

/// Names of clients, fax servers and groupings: 1 to 64 letters, digits, '-', '_', '.' or '@'.
pub fn valid_name(field: &str, name: &str) -> crate::error::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@".contains(c))
    {
        return Err(Error::field(
            field,
            "use 1 to 64 letters, digits, '-', '_', '.' or '@'",
        ));
    }
    Ok(())
}

pub fn valid_password(field: &str, password: &str) -> crate::error::Result<()> {
    let n = password.chars().count();
    if !(10..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(Error::field(
            field,
            format!("use 10 to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The longest lifetime a token can be issued with.
pub const MAX_TOKEN_TTL_SECS: u64 = 10 * 365 * 86_400;

fn valid_label(label: &str) -> crate::error::Result<()> {
    let n = label.chars().count();
    if !(1..=64).contains(&n) || label.chars().any(char::is_control) {
        return Err(Error::field(
            "label",
            "use 1 to 64 characters, no control characters",
        ));
    }
    Ok(())
}

/// 403 unless the caller is the client itself or has authority over it.
fn self_or_authority(app: &AppState, caller: &Caller, client_id: &str) -> crate::error::Result<()> {
    if caller.id == client_id {
        return Ok(());
    }
    app.access.authorize_over_client(caller, client_id)
}

/// A token just issued: the secret is shown once.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub info: ApiToken,
}

/// Issues an API token for a client, valid for `expires_in_secs` when given.
pub async fn issue_token(
    app: &AppState,
    caller: &Caller,
    client: &Client,
    label: &str,
    expires_in_secs: Option<u64>,
) -> crate::error::Result<IssuedToken> {
    self_or_authority(app, caller, &client.id)?;
    valid_label(label)?;
    let now = store::now_ms();
    let mut expires_at = match expires_in_secs {
        None => None,
        Some(s) if (1..=MAX_TOKEN_TTL_SECS).contains(&s) => {
            Some(now + i64::try_from(s * 1000).unwrap_or(i64::MAX / 2))
        }
        Some(_) => {
            return Err(Error::field(
                "expires_in_secs",
                format!("must be 1 to {MAX_TOKEN_TTL_SECS} seconds (ten years)"),
            ));
        }
    };
    // A token a client makes for itself never outlives the token that made it, and one made with a
    // sign-in token ends with the sessions when the password changes: a stolen token alone must not
    // become lasting access.
    let own = caller.id == client.id;
    if own && let Some(limit) = caller.token_expires_at {
        match expires_at {
            Some(at) if at > limit => {
                return Err(Error::field(
                    "expires_in_secs",
                    format!(
                        "a token you make for yourself cannot outlive the token you make it with: \
                         at most {} seconds",
                        (limit - now).max(0) / 1000
                    ),
                ));
            }
            None => expires_at = Some(limit),
            Some(_) => {}
        }
    }
    let session = own && caller.token_session;
    let token = auth::new_secret("fxh");
    let mut tx = app.store.begin().await?;
    let info = tx
        .create_token(store::NewToken {
            client_id: &client.id,
            token_hash: &auth::hash_secret(&token),
            label,
            expires_at,
            created_by: Some(&caller.id),
            session,
        })
        .await?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        "token.created",
        Some(&client.id),
        audit::NONE,
        Some(&info),
    ))
    .await?;
    Ok(IssuedToken { token, info })
}

/// Revokes one of a client's tokens: refused from the next request on, its event streams end.
pub async fn revoke_token(
    app: &AppState,
    caller: &Caller,
    client: &Client,
    token_id: &str,
) -> crate::error::Result<()> {
    self_or_authority(app, caller, &client.id)?;
    let token = app
        .store
        .token_of(&client.id, token_id, store::now_ms())
        .await?
        .ok_or_else(|| Error::not_found("token"))?;
    let mut tx = app.store.begin().await?;
    if !tx.revoke_token(&client.id, &token.id).await? {
        return Err(Error::not_found("token"));
    }
    tx.commit_audited(audit::entry(
        Ok(caller),
        "token.revoked",
        Some(&client.id),
        Some(&token),
        audit::NONE,
    ))
    .await?;
    app.credentials.announce(Revoked::Token(token.id.clone()));
    tracing::info!(by = %caller.name, client = %client.name, token = %token.id, "token revoked");
    Ok(())
}

/// Sets a person's password. The person itself must give its current one (a stolen token alone must not
/// take the account over); another client needs authority over it.
pub async fn set_password(
    app: &AppState,
    caller: &Caller,
    client: &Client,
    new: &str,
    current: Option<&str>,
) -> crate::error::Result<()> {
    if ClientKind::parse(&client.kind) != Some(ClientKind::Person) {
        return Err(Error::field(
            "password",
            "applications sign in with tokens, not passwords",
        ));
    }
    if caller.id == client.id {
        let Some(current) = current else {
            return Err(Error::field(
                "current_password",
                "give your current password to change it",
            ));
        };
        // Guessing the current password is throttled like signing in: a stolen token must not become a
        // way to find the password out.
        let guard = &app.credentials.sign_in;
        let attempt = guard
            .begin(&client.name, None, std::time::Instant::now())
            .map_err(crate::signin::too_many)?;
        let matches = app
            .credentials
            .verify_password(current, client.password_hash.as_deref())
            .await
            .inspect_err(|_| guard.withdrawn(&attempt))?;
        if !matches {
            guard.failed(&attempt);
            return Err(Error::forbidden("the current password does not match"));
        }
        guard.succeeded(&attempt, std::time::Instant::now());
    } else {
        app.access.authorize_over_client(caller, &client.id)?;
    }
    valid_password("password", new)?;
    let hash = app.credentials.hash_password(new).await?;
    let mut tx = app.store.begin().await?;
    if !tx.set_password(&client.id, &hash).await? {
        return Err(Error::not_found("client"));
    }
    // Whoever signed in with the old password is signed out (all but the request's own session).
    let except = (caller.id == client.id).then_some(caller.token_id.as_str());
    let ended = tx.revoke_sessions(&client.id, except).await?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        "client.password_set",
        Some(&client.id),
        audit::NONE,
        Some(&serde_json::json!({"sessions_ended": ended.len()})),
    ))
    .await?;
    for t in &ended {
        app.credentials.announce(Revoked::Token(t.clone()));
    }
    tracing::info!(by = %caller.name, client = %client.name, sessions_ended = ended.len(), "password set");
    Ok(())
}

/// Disables a client (its tokens and password open nothing, its event streams end, its queued jobs wait and
/// nothing received is delivered to it) or enables it again.
pub async fn set_disabled(
    app: &AppState,
    caller: &Caller,
    client: &Client,
    disabled: bool,
) -> crate::error::Result<()> {
    app.access.authorize_over_client(caller, &client.id)?;
    if client.disabled == disabled {
        return Ok(());
    }
    let action = if disabled {
        "client.disabled"
    } else {
        "client.enabled"
    };
    let mut tx = app.store.begin().await?;
    tx.set_client_disabled(&client.id, disabled).await?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        action,
        Some(&client.id),
        Some(&serde_json::json!({"disabled": client.disabled})),
        Some(&serde_json::json!({"disabled": disabled})),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    if disabled {
        app.credentials.announce(Revoked::Client(client.id.clone()));
    }
    tracing::info!(by = %caller.name, client = %client.name, "{action}");
    Ok(())
}

/// Deletes a client: its tokens, grants, memberships, webhooks and personal phonebook entries go, its
/// queued jobs are cancelled and jobs on a fax server are told to stop; its name is free again.
pub async fn delete(app: &AppState, caller: &Caller, client: &Client) -> crate::error::Result<()> {
    app.access.authorize_over_client(caller, &client.id)?;
    let before = serde_json::json!({
        "name": client.name, "kind": client.kind,
        "groupings": app.access.groupings_of_client(&client.id),
    });
    let mut tx = app.store.begin().await?;
    let gone = tx
        .delete_client(&client.id)
        .await?
        .ok_or_else(|| Error::not_found("client"))?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        "client.deleted",
        Some(&client.id),
        Some(&before),
        audit::NONE,
    ))
    .await?;
    app.credentials.announce(Revoked::Client(client.id.clone()));
    app.access.reload(&app.store).await?;
    for job in &gone.cancelled_jobs {
        app.dispatcher.dequeue(job);
    }
    for hook in &gone.webhooks {
        app.webhook_lanes.cancel(hook);
    }
    for job in &gone.open_jobs {
        for a in app.store.attempts_of(job).await? {
            if a.ended_at.is_none() {
                app.dispatcher.request_cancel(&a);
            }
        }
    }
    let personal: Vec<String> = app
        .phonebook
        .read()
        .entries()
        .filter(|e| e.owner_id == client.id && !e.is_shared())
        .map(|e| e.id.clone())
        .collect();
    for id in personal {
        app.phonebook.delete(&app.store, &id, None).await?;
    }
    tracing::info!(by = %caller.name, client = %client.name, cancelled = gone.cancelled_jobs.len(), "client deleted");
    Ok(())
}
