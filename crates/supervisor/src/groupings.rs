//! Groupings (claims 13 and 14): made, read and given members, each change authorized by `Access`,
//! committed with its audit entry and followed by a reload of `Access`, for every face.

use crate::AppState;
use crate::access::Caller;
use crate::audit;
use crate::clients::valid_name;
use crate::competence::{Competence, Target};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use store::{Grouping, MemberKind};

/// A member of a grouping, as it is named and recorded.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberRef {
    /// `client` or `fax_server`.
    pub kind: String,
    pub id: String,
}

/// The audit record of a grouping.
#[derive(Serialize)]
struct Recorded<'a> {
    id: &'a str,
    name: &'a str,
    created_at: String,
}

/// Makes a grouping (needs the competence to manage groupings everywhere).
pub async fn create(app: &AppState, caller: &Caller, name: &str) -> Result<Grouping> {
    app.access
        .authorize(caller, Competence::ManageGroupings, Target::System)?;
    valid_name("name", name)?;
    let mut tx = app.store.begin().await?;
    let g = tx.create_grouping(name).await?;
    let recorded = Recorded {
        id: &g.id,
        name: &g.name,
        created_at: crate::rfc3339(g.created_at),
    };
    tx.commit_audited(audit::entry(
        Ok(caller),
        "grouping.created",
        Some(&g.id),
        audit::NONE,
        Some(&recorded),
    ))
    .await?;
    Ok(g)
}

/// The groupings the caller belongs to or manages.
pub async fn list(app: &AppState, caller: &Caller) -> Result<Vec<Grouping>> {
    let all = app.store.groupings().await?;
    Ok(all
        .into_iter()
        .filter(|g| app.access.grouping_visible(caller, &g.id))
        .collect())
}

/// One grouping the caller may see, with its members.
pub async fn get(app: &AppState, caller: &Caller, id: &str) -> Result<(Grouping, Vec<MemberRef>)> {
    if !app.access.grouping_visible(caller, id) {
        return Err(Error::not_found("grouping"));
    }
    let g = app
        .store
        .grouping(id)
        .await?
        .ok_or_else(|| Error::not_found("grouping"))?;
    let members = app
        .store
        .grouping_members(id)
        .await?
        .into_iter()
        .map(|(kind, id)| MemberRef { kind, id })
        .collect();
    Ok((g, members))
}

/// A member kind as a face names it.
pub fn member_kind(field: &str, kind: &str) -> Result<MemberKind> {
    match kind {
        "client" => Ok(MemberKind::Client),
        "fax_server" => Ok(MemberKind::FaxServer),
        _ => Err(Error::field(field, "must be \"client\" or \"fax_server\"")),
    }
}

/// A grouping the caller may see and manage.
fn managed(app: &AppState, caller: &Caller, id: &str) -> Result<()> {
    if !app.access.grouping_visible(caller, id) {
        return Err(Error::not_found("grouping"));
    }
    app.access
        .authorize(caller, Competence::ManageGroupings, Target::Grouping(id))
}

/// Adds a client or fax server to a grouping. Only what the caller administers may be added, so a
/// grouping never opens a path the caller could not.
pub async fn add_member(app: &AppState, caller: &Caller, id: &str, m: &MemberRef) -> Result<()> {
    managed(app, caller, id)?;
    let kind = member_kind("kind", &m.kind)?;
    let exists = match kind {
        MemberKind::Client => {
            if app.access.client_visible(caller, &m.id) && app.store.client(&m.id).await?.is_some()
            {
                app.access.authorize_over_client(caller, &m.id)?;
                true
            } else {
                false
            }
        }
        MemberKind::FaxServer => {
            let known = app.access.holds(
                &caller.id,
                Competence::ManageGroupings,
                Target::FaxServer(&m.id),
            ) && app.store.fax_server(&m.id).await?.is_some();
            if known {
                // A new grouping shares the fax server's fallback inbox with the ones it serves.
                app.access.authorize_change_of_fax_server(
                    caller,
                    Competence::ManageGroupings,
                    &m.id,
                )?;
            }
            known
        }
    };
    if !exists {
        return Err(Error::field("id", format!("no {} {}", m.kind, m.id)));
    }
    let mut tx = app.store.begin().await?;
    tx.add_grouping_member(id, kind, &m.id).await?;
    tx.commit_audited(audit::entry(
        Ok(caller),
        "grouping.member_added",
        Some(id),
        audit::NONE,
        Some(m),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    tracing::info!(by = %caller.name, grouping = %id, kind = %m.kind, member = %m.id, "grouping member added");
    Ok(())
}

/// Removes a member from a grouping; a client only by whoever has authority over it.
pub async fn remove_member(
    app: &AppState,
    caller: &Caller,
    id: &str,
    kind: &str,
    member_id: &str,
) -> Result<()> {
    managed(app, caller, id)?;
    let kind = member_kind("kind", kind)?;
    if kind == MemberKind::Client && app.access.client_in_grouping(member_id, id) {
        app.access.authorize_over_client(caller, member_id)?;
    }
    let mut tx = app.store.begin().await?;
    if !tx.remove_grouping_member(id, kind, member_id).await? {
        return Err(Error::not_found("membership"));
    }
    let before = MemberRef {
        kind: kind.as_str().to_owned(),
        id: member_id.to_owned(),
    };
    tx.commit_audited(audit::entry(
        Ok(caller),
        "grouping.member_removed",
        Some(id),
        Some(&before),
        audit::NONE,
    ))
    .await?;
    app.access.reload(&app.store).await?;
    Ok(())
}

/// Refuses, naming `field[i]`, a grouping that does not exist or that the caller cannot see.
pub async fn check_exist(
    app: &AppState,
    caller: &Caller,
    field: &str,
    ids: &[String],
) -> Result<()> {
    for (i, g) in ids.iter().enumerate() {
        if !app.access.grouping_visible(caller, g) || app.store.grouping(g).await?.is_none() {
            return Err(Error::field(
                &format!("{field}[{i}]"),
                format!("no grouping {g}"),
            ));
        }
    }
    Ok(())
}
