//! Groupings, fax servers and inbound routing rules as the REST API shows them. What each change needs
//! and does is decided in the domain modules `groupings`, `fax_servers` and `inbound_rules`.

use super::{created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::ApiResult;
use crate::fax_servers::NewFaxServer as Registration;
pub use crate::groupings::MemberRef;
pub use crate::inbound_rules::RuleBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct NewGrouping {
    pub name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GroupingView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Present on single reads: `{kind, id}` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberRef>>,
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
    let g = crate::groupings::create(&app, &caller, &req.name).await?;
    let view = grouping_view(g, None);
    Ok(created(&format!("/v1/groupings/{}", view.id), view))
}

/// Groupings the caller belongs to or manages.
#[utoipa::path(get, path = "/v1/groupings", responses((status = 200, body = [GroupingView])))]
pub async fn list_groupings(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<GroupingView>>> {
    let all = crate::groupings::list(&app, &caller).await?;
    Ok(Json(
        all.into_iter().map(|g| grouping_view(g, None)).collect(),
    ))
}

/// One grouping with its members.
#[utoipa::path(get, path = "/v1/groupings/{id}", responses((status = 200, body = GroupingView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_grouping(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupingView>> {
    let (g, members) = crate::groupings::get(&app, &caller, &id).await?;
    Ok(Json(grouping_view(g, Some(members))))
}

/// Adds a client or fax server to a grouping (needs the competence over it).
#[utoipa::path(put, path = "/v1/groupings/{id}/members", request_body = MemberRef, responses((status = 204)))]
pub async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(m): Json<MemberRef>,
) -> ApiResult<StatusCode> {
    crate::groupings::add_member(&app, &caller, &id, &m).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member from a grouping (needs the competence over it).
#[utoipa::path(delete, path = "/v1/groupings/{id}/members/{kind}/{member_id}", responses((status = 204)))]
pub async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    crate::groupings::remove_member(&app, &caller, &id, &kind, &member_id).await?;
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

#[derive(Serialize, Deserialize, ToSchema)]
pub struct FaxServerView {
    pub id: String,
    pub name: String,
    pub dial_prefixes: Vec<String>,
    pub groupings: Vec<String>,
    pub online: bool,
    /// `channels.free`.
    pub free_channels: u32,
    pub channels: ChannelsView,
    pub open_attempts: usize,
    pub health: f64,
    /// Why the fax server's line offers fewer channels than configured, as it reported it (for example a
    /// failed SIP registration); absent when its line is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_status: Option<String>,
    pub capabilities: serde_json::Value,
    pub enrolled_at: Option<String>,
    /// Its last hello or heartbeat (every `heartbeat_secs` while it is linked).
    pub last_seen_at: Option<String>,
    /// When its current link came up; absent while it is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    /// When its credential was revoked: it cannot link again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A fax server's channels; `sending + receiving + free == usable <= configured`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ChannelsView {
    /// What its settings give it.
    pub configured: u32,
    /// What its line offers now (fewer while, say, its SIP registration fails); 0 while it is offline.
    pub usable: u32,
    /// Taken by attempts offered to it or under way.
    pub sending: u32,
    pub receiving: u32,
    pub free: u32,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NewFaxServerResponse {
    pub fax_server: FaxServerView,
    /// One-time token for `faxhub node --enroll`, shown once.
    pub enrollment_token: String,
    pub enrollment_expires_at: String,
}

/// A fax server's channels as the API and `/metrics` show them: the fleet's figures while it is online;
/// offline, what its settings give it and none usable. With its fleet status.
pub(crate) fn channels_of(
    app: &AppState,
    fs: &store::FaxServer,
) -> (ChannelsView, Option<crate::dispatch::FleetStatus>) {
    let configured = fs.capabilities.0.channels;
    let status = app.dispatcher.fax_server_status(&fs.id, configured);
    let channels = match &status {
        Some(s) if s.online => ChannelsView {
            configured: s.configured,
            usable: s.usable,
            sending: s.sending,
            receiving: s.receiving,
            free: s.free,
        },
        _ => ChannelsView {
            configured,
            usable: 0,
            sending: 0,
            receiving: 0,
            free: 0,
        },
    };
    (channels, status)
}

fn fax_server_view(app: &AppState, fs: store::FaxServer) -> FaxServerView {
    let (channels, status) = channels_of(app, &fs);
    let online = status.as_ref().is_some_and(|s| s.online);
    let open_attempts = status.as_ref().map_or(0, |s| s.open_attempts);
    let health = status.as_ref().map_or(1.0, |s| s.health);
    let last_seen_at = fs
        .last_seen_at
        .max(status.as_ref().and_then(|s| s.last_heard));
    FaxServerView {
        groupings: app.access.groupings_of_server(&fs.id),
        line_status: app.dispatcher.line_status(&fs.id),
        dial_prefixes: fs.dial_prefixes(),
        capabilities: serde_json::to_value(&fs.capabilities.0).unwrap_or_default(),
        id: fs.id,
        name: fs.name,
        online,
        free_channels: channels.free,
        channels,
        open_attempts,
        health,
        enrolled_at: fs.enrolled_at.map(rfc3339),
        last_seen_at: last_seen_at.map(rfc3339),
        connected_since: status.as_ref().and_then(|s| s.linked_at).map(rfc3339),
        revoked_at: fs.revoked_at.map(rfc3339),
    }
}

/// Registers a fax server and issues its one-time enrollment token (needs the competence over it).
#[utoipa::path(post, path = "/v1/fax-servers", request_body = NewFaxServer, responses((status = 201, body = NewFaxServerResponse)))]
pub async fn create_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewFaxServer>,
) -> ApiResult<Response> {
    let registration = Registration {
        name: &req.name,
        dial_prefixes: &req.dial_prefixes,
        groupings: &req.groupings,
        enrollment_ttl_secs: req.enrollment_ttl_secs,
    };
    let enrolled = crate::fax_servers::create(&app, &caller, &registration).await?;
    let view = fax_server_view(&app, enrolled.fax_server);
    Ok(created(
        &format!("/v1/fax-servers/{}", view.id),
        NewFaxServerResponse {
            fax_server: view,
            enrollment_token: enrolled.token,
            enrollment_expires_at: rfc3339(enrolled.expires_at),
        },
    ))
}

/// Fax servers that share a grouping with the caller, or whose settings it may read.
#[utoipa::path(get, path = "/v1/fax-servers", responses((status = 200, body = [FaxServerView])))]
pub async fn list_fax_servers(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<FaxServerView>>> {
    let all = crate::fax_servers::list(&app, &caller).await?;
    Ok(Json(
        all.into_iter()
            .map(|fs| fax_server_view(&app, fs))
            .collect(),
    ))
}

/// One fax server.
#[utoipa::path(get, path = "/v1/fax-servers/{id}", responses((status = 200, body = FaxServerView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FaxServerView>> {
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
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
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
    crate::fax_servers::change(&app, &caller, &fs, req.dial_prefixes).await?;
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
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
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
    crate::fax_servers::revoke(&app, &caller, &fs).await?;
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
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
    let fs = crate::fax_servers::visible(&app, &caller, &id).await?;
    crate::fax_servers::delete(&app, &caller, &fs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an inbound routing rule (needs the competence over it).
#[utoipa::path(post, path = "/v1/inbound-rules", request_body = RuleBody, responses((status = 201, body = RuleBody)))]
pub async fn create_rule(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<RuleBody>,
) -> ApiResult<Response> {
    let rule = crate::inbound_rules::create(&app, &caller, req).await?;
    Ok(created(&format!("/v1/inbound-rules/{}", rule.id), rule))
}

/// Inbound routing rules (needs the competence over it).
#[utoipa::path(get, path = "/v1/inbound-rules", responses((status = 200, body = [RuleBody])))]
pub async fn list_rules(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RuleBody>>> {
    let rules = crate::inbound_rules::list(&app, &caller).await?;
    Ok(Json(
        rules.into_iter().map(crate::inbound_rules::view).collect(),
    ))
}

/// Deletes an inbound routing rule (needs the competence over it).
#[utoipa::path(delete, path = "/v1/inbound-rules/{id}", responses((status = 204)))]
pub async fn delete_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    crate::inbound_rules::delete(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
