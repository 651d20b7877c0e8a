//! Groupings, fax servers and inbound routing rules. Each change is authorized by `Access::authorize`
//! with the competence it needs, over the object it touches.

use super::clients::check_groupings;
use super::{created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::clients::valid_name;
use crate::competence::{Competence, Target};
use crate::{audit, auth};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::{InboundRule, MemberKind, RuleTarget};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct NewGrouping {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupingView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Present on single reads: `{kind, id}` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberRef>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MemberRef {
    /// `client` or `fax_server`.
    pub kind: String,
    pub id: String,
}

fn grouping_view(g: store::Grouping, members: Option<Vec<MemberRef>>) -> GroupingView {
    GroupingView {
        id: g.id,
        name: g.name,
        created_at: rfc3339(g.created_at),
        members,
    }
}

/// Creates a grouping (needs the competence over it).
#[utoipa::path(post, path = "/v1/groupings", request_body = NewGrouping, responses((status = 201, body = GroupingView)))]
pub async fn create_grouping(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewGrouping>,
) -> ApiResult<Response> {
    app.access
        .authorize(&caller, Competence::ManageGroupings, Target::System)?;
    valid_name("name", &req.name)?;
    let mut tx = app.store.begin().await?;
    let g = tx.create_grouping(&req.name).await?;
    let view = grouping_view(g, None);
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "grouping.created",
        Some(&view.id),
        audit::NONE,
        Some(&view),
    ))
    .await?;
    Ok(created(view))
}

/// Groupings the caller belongs to or manages.
#[utoipa::path(get, path = "/v1/groupings", responses((status = 200, body = [GroupingView])))]
pub async fn list_groupings(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<GroupingView>>> {
    let all = app.store.groupings().await?;
    Ok(Json(
        all.into_iter()
            .filter(|g| app.access.grouping_visible(&caller, &g.id))
            .map(|g| grouping_view(g, None))
            .collect(),
    ))
}

/// One grouping with its members.
#[utoipa::path(get, path = "/v1/groupings/{id}", responses((status = 200, body = GroupingView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_grouping(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupingView>> {
    if !app.access.grouping_visible(&caller, &id) {
        return Err(ApiError::not_found("grouping"));
    }
    let g = app
        .store
        .grouping(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("grouping"))?;
    let members = app
        .store
        .grouping_members(&id)
        .await?
        .into_iter()
        .map(|(kind, id)| MemberRef { kind, id })
        .collect();
    Ok(Json(grouping_view(g, Some(members))))
}

fn member_kind(field: &str, kind: &str) -> ApiResult<MemberKind> {
    match kind {
        "client" => Ok(MemberKind::Client),
        "fax_server" => Ok(MemberKind::FaxServer),
        _ => Err(ApiError::field(
            field,
            "must be \"client\" or \"fax_server\"",
        )),
    }
}

/// Adds a client or fax server to a grouping (needs the competence over it).
#[utoipa::path(put, path = "/v1/groupings/{id}/members", request_body = MemberRef, responses((status = 204)))]
pub async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(m): Json<MemberRef>,
) -> ApiResult<StatusCode> {
    if !app.access.grouping_visible(&caller, &id) {
        return Err(ApiError::not_found("grouping"));
    }
    app.access
        .authorize(&caller, Competence::ManageGroupings, Target::Grouping(&id))?;
    let kind = member_kind("kind", &m.kind)?;
    // Only what the caller administers may be added, so a grouping never opens a path the caller could not.
    let exists = match kind {
        MemberKind::Client => {
            if app.access.client_visible(&caller, &m.id) && app.store.client(&m.id).await?.is_some()
            {
                app.access.authorize_over_client(&caller, &m.id)?;
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
                    &caller,
                    Competence::ManageGroupings,
                    &m.id,
                )?;
            }
            known
        }
    };
    if !exists {
        return Err(ApiError::field("id", format!("no {} {}", m.kind, m.id)));
    }
    let mut tx = app.store.begin().await?;
    tx.add_grouping_member(&id, kind, &m.id).await?;
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "grouping.member_added",
        Some(&id),
        audit::NONE,
        Some(&m),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    tracing::info!(by = %caller.name, grouping = %id, kind = %m.kind, member = %m.id, "grouping member added");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member from a grouping (needs the competence over it).
#[utoipa::path(delete, path = "/v1/groupings/{id}/members/{kind}/{member_id}", responses((status = 204)))]
pub async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    if !app.access.grouping_visible(&caller, &id) {
        return Err(ApiError::not_found("grouping"));
    }
    app.access
        .authorize(&caller, Competence::ManageGroupings, Target::Grouping(&id))?;
    let kind = member_kind("kind", &kind)?;
    if kind == MemberKind::Client && app.access.client_in_grouping(&member_id, &id) {
        app.access.authorize_over_client(&caller, &member_id)?;
    }
    let mut tx = app.store.begin().await?;
    if !tx.remove_grouping_member(&id, kind, &member_id).await? {
        return Err(ApiError::not_found("membership"));
    }
    let before = MemberRef {
        kind: kind.as_str().to_owned(),
        id: member_id,
    };
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "grouping.member_removed",
        Some(&id),
        Some(&before),
        audit::NONE,
    ))
    .await?;
    app.access.reload(&app.store).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewFaxServer {
    pub name: String,
    /// E.164 prefixes this fax server may dial ("+81"); empty or absent for any number.
    #[serde(default)]
    pub dial_prefixes: Vec<String>,
    #[serde(default)]
    pub groupings: Vec<String>,
    /// How long the enrollment token stays valid (default one day).
    pub enrollment_ttl_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct FaxServerView {
    pub id: String,
    pub name: String,
    pub dial_prefixes: Vec<String>,
    pub groupings: Vec<String>,
    pub online: bool,
    pub free_channels: u32,
    pub open_attempts: usize,
    pub health: f64,
    /// Why the fax server's line offers fewer channels than configured, as it reported it (for example a
    /// failed SIP registration); absent when its line is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_status: Option<String>,
    pub capabilities: serde_json::Value,
    pub enrolled_at: Option<String>,
    pub last_seen_at: Option<String>,
    /// When its credential was revoked: it cannot link again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NewFaxServerResponse {
    pub fax_server: FaxServerView,
    /// One-time token for `faxhub node --enroll`, shown once.
    pub enrollment_token: String,
    pub enrollment_expires_at: String,
}

fn fax_server_view(app: &AppState, fs: store::FaxServer) -> FaxServerView {
    let (online, free_channels, open_attempts, health) = app
        .dispatcher
        .fax_server_status(&fs.id)
        .unwrap_or((false, 0, 0, 1.0));
    FaxServerView {
        groupings: app.access.groupings_of_server(&fs.id),
        line_status: app.dispatcher.line_status(&fs.id),
        dial_prefixes: fs.dial_prefixes(),
        capabilities: serde_json::to_value(&fs.capabilities.0).unwrap_or_default(),
        id: fs.id,
        name: fs.name,
        online,
        free_channels,
        open_attempts,
        health,
        enrolled_at: fs.enrolled_at.map(rfc3339),
        last_seen_at: fs.last_seen_at.map(rfc3339),
        revoked_at: fs.revoked_at.map(rfc3339),
    }
}

fn valid_prefixes(field: &str, prefixes: &[String]) -> ApiResult<()> {
    for (i, p) in prefixes.iter().enumerate() {
        let digits = p.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::field(
                &format!("{field}[{i}]"),
                format!("{p:?} is not an E.164 prefix like \"+81\""),
            ));
        }
    }
    Ok(())
}

/// Registers a fax server and issues its one-time enrollment token (needs the competence over it).
#[utoipa::path(post, path = "/v1/fax-servers", request_body = NewFaxServer, responses((status = 201, body = NewFaxServerResponse)))]
pub async fn create_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewFaxServer>,
) -> ApiResult<Response> {
    valid_name("name", &req.name)?;
    valid_prefixes("dial_prefixes", &req.dial_prefixes)?;
    check_groupings(&app, &caller, "groupings", &req.groupings).await?;
    if req.groupings.is_empty() {
        app.access
            .authorize(&caller, Competence::ChangeFaxServerSettings, Target::System)?;
    }
    for g in &req.groupings {
        app.access.authorize(
            &caller,
            Competence::ChangeFaxServerSettings,
            Target::Grouping(g),
        )?;
    }
    let token = auth::new_secret("fxe");
    let ttl =
        i64::try_from(req.enrollment_ttl_secs.unwrap_or(86_400).min(30 * 86_400)).unwrap_or(86_400);
    let expires = store::now_ms() + ttl * 1000;
    let mut tx = app.store.begin().await?;
    let fs = tx
        .create_fax_server(
            &req.name,
            &req.dial_prefixes,
            &auth::hash_secret(&token),
            expires,
        )
        .await?;
    for g in &req.groupings {
        tx.add_grouping_member(g, MemberKind::FaxServer, &fs.id)
            .await?;
    }
    let recorded = serde_json::json!({
        "id": fs.id, "name": fs.name, "dial_prefixes": fs.dial_prefixes(), "groupings": req.groupings,
        "enrollment_expires_at": rfc3339(expires),
    });
    tx.commit_audited(audit::entry(
        Ok(&caller),
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
    let view = fax_server_view(&app, fs);
    Ok(created(NewFaxServerResponse {
        fax_server: view,
        enrollment_token: token,
        enrollment_expires_at: rfc3339(expires),
    }))
}

/// Fax servers that share a grouping with the caller, or whose settings it may read.
#[utoipa::path(get, path = "/v1/fax-servers", responses((status = 200, body = [FaxServerView])))]
pub async fn list_fax_servers(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<FaxServerView>>> {
    let all = app.store.fax_servers().await?;
    Ok(Json(
        all.into_iter()
            .filter(|fs| app.access.fax_server_visible(&caller, &fs.id))
            .map(|fs| fax_server_view(&app, fs))
            .collect(),
    ))
}

async fn visible_fax_server(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<store::FaxServer> {
    if !app.access.fax_server_visible(caller, id) {
        return Err(ApiError::not_found("fax server"));
    }
    app.store
        .fax_server(id)
        .await?
        .ok_or_else(|| ApiError::not_found("fax server"))
}

/// One fax server.
#[utoipa::path(get, path = "/v1/fax-servers/{id}", responses((status = 200, body = FaxServerView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FaxServerView>> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    Ok(Json(fax_server_view(&app, fs)))
}

#[derive(Deserialize, ToSchema)]
pub struct FaxServerPatch {
    pub dial_prefixes: Option<Vec<String>>,
}

/// Changes a fax server's routing (needs the competence over it).
#[utoipa::path(patch, path = "/v1/fax-servers/{id}", request_body = FaxServerPatch, responses((status = 200, body = FaxServerView)))]
pub async fn patch_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<FaxServerPatch>,
) -> ApiResult<Json<FaxServerView>> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    app.access.authorize_change_of_fax_server(
        &caller,
        Competence::ChangeFaxServerSettings,
        &fs.id,
    )?;
    if let Some(prefixes) = req.dial_prefixes {
        valid_prefixes("dial_prefixes", &prefixes)?;
        let (before, after) = (
            serde_json::json!({"dial_prefixes": fs.dial_prefixes()}),
            serde_json::json!({"dial_prefixes": &prefixes}),
        );
        let mut tx = app.store.begin().await?;
        tx.set_fax_server_dial_prefixes(&fs.id, &prefixes).await?;
        tx.commit_audited(audit::entry(
            Ok(&caller),
            "fax_server.changed",
            Some(&fs.id),
            Some(&before),
            Some(&after),
        ))
        .await?;
        app.dispatcher.set_dial_prefixes(&fs.id, prefixes);
    }
    let fs = app
        .store
        .fax_server(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("fax server"))?;
    Ok(Json(fax_server_view(&app, fs)))
}

/// Revokes a fax server's credential: its link closes at once, it cannot link or fetch documents again,
/// and the jobs it held move to another fax server. Needs `change_fax_server_settings` over the fax server
/// and over every grouping it serves.
#[utoipa::path(post, path = "/v1/fax-servers/{id}/revoke",
    responses((status = 200, body = FaxServerView), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn revoke_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FaxServerView>> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    crate::fax_servers::revoke(&app, &caller, &fs).await?;
    let fs = visible_fax_server(&app, &caller, &id).await?;
    Ok(Json(fax_server_view(&app, fs)))
}

/// Deletes a fax server: revoked as above, out of every grouping, its inbound rules gone, its name free
/// again. Its attempts and received faxes stay in the history.
#[utoipa::path(delete, path = "/v1/fax-servers/{id}",
    responses((status = 204), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    crate::fax_servers::delete(&app, &caller, &fs).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
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

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RuleTargetBody {
    pub kind: String,
    pub id: String,
}

fn rule_view(r: InboundRule) -> RuleBody {
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

/// Creates an inbound routing rule (needs the competence over it).
#[utoipa::path(post, path = "/v1/inbound-rules", request_body = RuleBody, responses((status = 201, body = RuleBody)))]
pub async fn create_rule(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<RuleBody>,
) -> ApiResult<Response> {
    match &req.fax_server_id {
        Some(fs) if !app.access.fax_server_visible(&caller, fs) => {
            return Err(ApiError::field(
                "fax_server_id",
                format!("no fax server {fs}"),
            ));
        }
        Some(fs) => app.access.authorize_change_of_fax_server(
            &caller,
            Competence::ManageInboundRules,
            fs,
        )?,
        None => app
            .access
            .authorize(&caller, Competence::ManageInboundRules, Target::System)?,
    }
    if req.targets.is_empty() {
        return Err(ApiError::field(
            "targets",
            "name at least one client or grouping",
        ));
    }
    let mut targets = Vec::new();
    for (i, t) in req.targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        targets.push(match t.kind.as_str() {
            "client"
                if app.access.client_visible(&caller, &t.id)
                    && app.store.client(&t.id).await?.is_some() =>
            {
                RuleTarget::Client(t.id.clone())
            }
            "grouping"
                if app.access.grouping_visible(&caller, &t.id)
                    && app.store.grouping(&t.id).await?.is_some() =>
            {
                RuleTarget::Grouping(t.id.clone())
            }
            "client" | "grouping" => {
                return Err(ApiError::field(&field, format!("no {} {}", t.kind, t.id)));
            }
            _ => {
                return Err(ApiError::field(
                    &format!("{field}.kind"),
                    "must be \"client\" or \"grouping\"",
                ));
            }
        });
    }
    if let Some(fs) = &req.fax_server_id
        && app.store.fax_server(fs).await?.is_none()
    {
        return Err(ApiError::field(
            "fax_server_id",
            format!("no fax server {fs}"),
        ));
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
    let rule = rule_view(tx.create_inbound_rule(rule, &targets).await?);
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "inbound_rule.created",
        Some(&rule.id),
        audit::NONE,
        Some(&rule),
    ))
    .await?;
    Ok(created(rule))
}

/// Inbound routing rules (needs the competence over it).
#[utoipa::path(get, path = "/v1/inbound-rules", responses((status = 200, body = [RuleBody])))]
pub async fn list_rules(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RuleBody>>> {
    app.access
        .authorize(&caller, Competence::ManageInboundRules, Target::Anywhere)?;
    let rules = app.store.inbound_rules().await?;
    Ok(Json(
        rules
            .into_iter()
            .filter(|r| rule_in_reach(&app, &caller, r))
            .map(rule_view)
            .collect(),
    ))
}

/// Deletes an inbound routing rule (needs the competence over it).
#[utoipa::path(delete, path = "/v1/inbound-rules/{id}", responses((status = 204)))]
pub async fn delete_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let rule = app
        .store
        .inbound_rules()
        .await?
        .into_iter()
        .find(|r| r.id == id);
    let Some(rule) = rule.filter(|r| rule_in_reach(&app, &caller, r)) else {
        return Err(ApiError::not_found("inbound rule"));
    };
    // Deleting a rule changes where the fax server's faxes go for every grouping it serves.
    if let Some(fs) = rule.fax_server_id.as_deref() {
        app.access
            .authorize_change_of_fax_server(&caller, Competence::ManageInboundRules, fs)?;
    }
    let mut tx = app.store.begin().await?;
    if !tx.delete_inbound_rule(&rule.id).await? {
        return Err(ApiError::not_found("inbound rule"));
    }
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "inbound_rule.deleted",
        Some(&id),
        Some(&rule_view(rule)),
        audit::NONE,
    ))
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the caller manages this rule: over its fax server, or everywhere for rules on every fax server.
fn rule_in_reach(app: &AppState, caller: &Caller, rule: &InboundRule) -> bool {
    let target = rule
        .fax_server_id
        .as_deref()
        .map_or(Target::System, Target::FaxServer);
    app.access
        .holds(&caller.id, Competence::ManageInboundRules, target)
}
