//! Sign-in, clients, groupings, fax servers and inbound routing rules.

use super::{created, rfc3339};
use crate::access::Caller;
use crate::{audit, auth};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use store::{ClientKind, InboundRule, MemberKind, RuleTarget};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Shown once; store it safely.
    pub token: String,
    pub client: ClientView,
}

#[derive(Serialize, ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub is_admin: bool,
    pub created_at: String,
}

impl From<store::Client> for ClientView {
    fn from(c: store::Client) -> Self {
        Self { id: c.id, name: c.name, kind: c.kind, is_admin: c.is_admin, created_at: rfc3339(c.created_at) }
    }
}

/// Signs a person in with name and password; answers a new API token.
#[utoipa::path(post, path = "/v1/sessions", request_body = LoginRequest,
    responses((status = 201, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn login(State(app): State<AppState>, Json(req): Json<LoginRequest>) -> ApiResult<Response> {
    let client = app.store.client_by_name(&req.name).await?;
    let ok = client.as_ref().is_some_and(|c| {
        !c.disabled && c.password_hash.as_deref().is_some_and(|h| auth::verify_password(&req.password, h))
    });
    let Some(client) = client.filter(|_| ok) else {
        tracing::info!(name = %req.name, "sign-in refused");
        audit::record(&app, Err(&req.name), "session.refused", None, audit::NONE, audit::NONE).await;
        return Err(ApiError::unauthorized());
    };
    let token = auth::new_secret("fxh");
    app.store.create_token(&client.id, &auth::hash_secret(&token), "session").await?;
    tracing::info!(client = %client.name, "signed in");
    let caller = Caller { id: client.id.clone(), name: client.name.clone(), is_admin: client.is_admin };
    audit::record(&app, Ok(&caller), "session.created", Some(&client.id), audit::NONE, audit::NONE).await;
    Ok(created(TokenResponse { token, client: client.into() }))
}

/// The calling client.
#[utoipa::path(get, path = "/v1/me", responses((status = 200, body = ClientView)))]
pub async fn me(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ClientView>> {
    let c = app.store.client(&caller.id).await?.ok_or_else(ApiError::unauthorized)?;
    Ok(Json(c.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct NewClient {
    pub name: String,
    /// `person` or `application`.
    pub kind: String,
    /// Required for people, refused for applications.
    pub password: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    /// Groupings to put the new client in.
    #[serde(default)]
    pub groupings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NewClientResponse {
    pub client: ClientView,
    /// An API token for applications, shown once.
    pub token: Option<String>,
}

fn valid_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_alphanumeric() || "-_.@".contains(c)) {
        return Err(ApiError::field(field, "use 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    Ok(())
}

async fn check_groupings(app: &AppState, field: &str, ids: &[String]) -> ApiResult<()> {
    for (i, g) in ids.iter().enumerate() {
        if app.store.grouping(g).await?.is_none() {
            return Err(ApiError::field(&format!("{field}[{i}]"), format!("no grouping {g}")));
        }
    }
    Ok(())
}

/// Creates a client (administrators).
#[utoipa::path(post, path = "/v1/clients", request_body = NewClient,
    responses((status = 201, body = NewClientResponse), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_client(State(app): State<AppState>, caller: Caller, Json(req): Json<NewClient>) -> ApiResult<Response> {
    caller.require_admin()?;
    valid_name("name", &req.name)?;
    let kind = ClientKind::parse(&req.kind).ok_or_else(|| ApiError::field("kind", "must be \"person\" or \"application\""))?;
    let hash = match (kind, &req.password) {
        (ClientKind::Person, Some(p)) if p.chars().count() >= 10 => {
            Some(auth::hash_password(p).map_err(|e| ApiError::internal("hashing a password", e))?)
        }
        (ClientKind::Person, _) => return Err(ApiError::field("password", "a person needs a password of at least 10 characters")),
        (ClientKind::Application, Some(_)) => return Err(ApiError::field("password", "applications sign in with tokens, not passwords")),
        (ClientKind::Application, None) => None,
    };
    check_groupings(&app, "groupings", &req.groupings).await?;
    let client = app.store.create_client(&req.name, kind, hash.as_deref(), req.is_admin).await?;
    for g in &req.groupings {
        app.store.add_grouping_member(g, MemberKind::Client, &client.id).await?;
    }
    app.access.reload(&app.store).await?;
    let token = if kind == ClientKind::Application {
        let t = auth::new_secret("fxh");
        app.store.create_token(&client.id, &auth::hash_secret(&t), "created").await?;
        Some(t)
    } else {
        None
    };
    tracing::info!(by = %caller.name, client = %client.name, "client created");
    let view = ClientView::from(client);
    let after = serde_json::json!({"client": &view, "groupings": &req.groupings});
    audit::record(&app, Ok(&caller), "client.created", Some(&view.id), audit::NONE, Some(&after)).await;
    Ok(created(NewClientResponse { client: view, token }))
}

/// Lists clients (administrators).
#[utoipa::path(get, path = "/v1/clients", responses((status = 200, body = [ClientView])))]
pub async fn list_clients(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<ClientView>>> {
    caller.require_admin()?;
    Ok(Json(app.store.clients().await?.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    pub label: String,
}

/// Issues an API token for a client: administrators for anyone, a client for itself.
#[utoipa::path(post, path = "/v1/clients/{id}/tokens", request_body = NewToken, responses((status = 201, body = TokenResponse)))]
pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewToken>,
) -> ApiResult<Response> {
    if !caller.is_admin && caller.id != id {
        return Err(ApiError::not_found("client"));
    }
    let client = app.store.client(&id).await?.ok_or_else(|| ApiError::not_found("client"))?;
    let token = auth::new_secret("fxh");
    app.store.create_token(&client.id, &auth::hash_secret(&token), &req.label).await?;
    let after = serde_json::json!({"label": req.label});
    audit::record(&app, Ok(&caller), "token.created", Some(&client.id), audit::NONE, Some(&after)).await;
    Ok(created(TokenResponse { token, client: client.into() }))
}

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
    GroupingView { id: g.id, name: g.name, created_at: rfc3339(g.created_at), members }
}

/// Creates a grouping (administrators).
#[utoipa::path(post, path = "/v1/groupings", request_body = NewGrouping, responses((status = 201, body = GroupingView)))]
pub async fn create_grouping(State(app): State<AppState>, caller: Caller, Json(req): Json<NewGrouping>) -> ApiResult<Response> {
    caller.require_admin()?;
    valid_name("name", &req.name)?;
    let g = app.store.create_grouping(&req.name).await?;
    let view = grouping_view(g, None);
    audit::record(&app, Ok(&caller), "grouping.created", Some(&view.id), audit::NONE, Some(&view)).await;
    Ok(created(view))
}

/// Groupings the caller belongs to (administrators: all).
#[utoipa::path(get, path = "/v1/groupings", responses((status = 200, body = [GroupingView])))]
pub async fn list_groupings(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<GroupingView>>> {
    let all = app.store.groupings().await?;
    Ok(Json(all.into_iter().filter(|g| app.access.grouping_visible(&caller, &g.id)).map(|g| grouping_view(g, None)).collect()))
}

/// One grouping with its members.
#[utoipa::path(get, path = "/v1/groupings/{id}", responses((status = 200, body = GroupingView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_grouping(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<GroupingView>> {
    if !app.access.grouping_visible(&caller, &id) {
        return Err(ApiError::not_found("grouping"));
    }
    let g = app.store.grouping(&id).await?.ok_or_else(|| ApiError::not_found("grouping"))?;
    let members = app.store.grouping_members(&id).await?.into_iter().map(|(kind, id)| MemberRef { kind, id }).collect();
    Ok(Json(grouping_view(g, Some(members))))
}

fn member_kind(field: &str, kind: &str) -> ApiResult<MemberKind> {
    match kind {
        "client" => Ok(MemberKind::Client),
        "fax_server" => Ok(MemberKind::FaxServer),
        _ => Err(ApiError::field(field, "must be \"client\" or \"fax_server\"")),
    }
}

/// Adds a client or fax server to a grouping (administrators).
#[utoipa::path(put, path = "/v1/groupings/{id}/members", request_body = MemberRef, responses((status = 204)))]
pub async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(m): Json<MemberRef>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let kind = member_kind("kind", &m.kind)?;
    let exists = match kind {
        MemberKind::Client => app.store.client(&m.id).await?.is_some(),
        MemberKind::FaxServer => app.store.fax_server(&m.id).await?.is_some(),
    };
    if !exists {
        return Err(ApiError::field("id", format!("no {} {}", m.kind, m.id)));
    }
    app.store.add_grouping_member(&id, kind, &m.id).await?;
    app.access.reload(&app.store).await?;
    tracing::info!(by = %caller.name, grouping = %id, kind = %m.kind, member = %m.id, "grouping member added");
    audit::record(&app, Ok(&caller), "grouping.member_added", Some(&id), audit::NONE, Some(&m)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member from a grouping (administrators).
#[utoipa::path(delete, path = "/v1/groupings/{id}/members/{kind}/{member_id}", responses((status = 204)))]
pub async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let kind = member_kind("kind", &kind)?;
    if !app.store.remove_grouping_member(&id, kind, &member_id).await? {
        return Err(ApiError::not_found("membership"));
    }
    app.access.reload(&app.store).await?;
    let before = MemberRef { kind: kind.as_str().to_owned(), id: member_id };
    audit::record(&app, Ok(&caller), "grouping.member_removed", Some(&id), Some(&before), audit::NONE).await;
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
    pub capabilities: serde_json::Value,
    pub enrolled_at: Option<String>,
    pub last_seen_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NewFaxServerResponse {
    pub fax_server: FaxServerView,
    /// One-time token for `faxhub node --enroll`, shown once.
    pub enrollment_token: String,
    pub enrollment_expires_at: String,
}

fn fax_server_view(app: &AppState, fs: store::FaxServer) -> FaxServerView {
    let (online, free_channels, open_attempts, health) = app.dispatcher.server_status(&fs.id).unwrap_or((false, 0, 0, 1.0));
    FaxServerView {
        groupings: app.access.groupings_of_server(&fs.id),
        dial_prefixes: fs.dial_prefixes(),
        capabilities: serde_json::from_str(&fs.capabilities).unwrap_or_default(),
        id: fs.id,
        name: fs.name,
        online,
        free_channels,
        open_attempts,
        health,
        enrolled_at: fs.enrolled_at.map(rfc3339),
        last_seen_at: fs.last_seen_at.map(rfc3339),
    }
}

fn valid_prefixes(field: &str, prefixes: &[String]) -> ApiResult<()> {
    for (i, p) in prefixes.iter().enumerate() {
        let digits = p.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::field(&format!("{field}[{i}]"), format!("{p:?} is not an E.164 prefix like \"+81\"")));
        }
    }
    Ok(())
}

/// Registers a fax server and issues its one-time enrollment token (administrators).
#[utoipa::path(post, path = "/v1/fax-servers", request_body = NewFaxServer, responses((status = 201, body = NewFaxServerResponse)))]
pub async fn create_fax_server(State(app): State<AppState>, caller: Caller, Json(req): Json<NewFaxServer>) -> ApiResult<Response> {
    caller.require_admin()?;
    valid_name("name", &req.name)?;
    valid_prefixes("dial_prefixes", &req.dial_prefixes)?;
    check_groupings(&app, "groupings", &req.groupings).await?;
    let token = auth::new_secret("fxe");
    let ttl = i64::try_from(req.enrollment_ttl_secs.unwrap_or(86_400).min(30 * 86_400)).unwrap_or(86_400);
    let expires = store::now_ms() + ttl * 1000;
    let fs = app.store.create_fax_server(&req.name, &req.dial_prefixes, &auth::hash_secret(&token), expires).await?;
    for g in &req.groupings {
        app.store.add_grouping_member(g, MemberKind::FaxServer, &fs.id).await?;
    }
    app.access.reload(&app.store).await?;
    app.dispatcher.register_server(&fs.id, fs.dial_prefixes());
    tracing::info!(by = %caller.name, fax_server = %fs.name, "fax server registered");
    let view = fax_server_view(&app, fs);
    audit::record(&app, Ok(&caller), "fax_server.created", Some(&view.id), audit::NONE, Some(&view)).await;
    Ok(created(NewFaxServerResponse {
        fax_server: view,
        enrollment_token: token,
        enrollment_expires_at: rfc3339(expires),
    }))
}

/// Fax servers that share a grouping with the caller (administrators: all).
#[utoipa::path(get, path = "/v1/fax-servers", responses((status = 200, body = [FaxServerView])))]
pub async fn list_fax_servers(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<FaxServerView>>> {
    let all = app.store.fax_servers().await?;
    Ok(Json(
        all.into_iter()
            .filter(|fs| app.access.fax_server_visible(&caller, &fs.id))
            .map(|fs| fax_server_view(&app, fs))
            .collect(),
    ))
}

async fn visible_fax_server(app: &AppState, caller: &Caller, id: &str) -> ApiResult<store::FaxServer> {
    if !app.access.fax_server_visible(caller, id) {
        return Err(ApiError::not_found("fax server"));
    }
    app.store.fax_server(id).await?.ok_or_else(|| ApiError::not_found("fax server"))
}

/// One fax server.
#[utoipa::path(get, path = "/v1/fax-servers/{id}", responses((status = 200, body = FaxServerView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_fax_server(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<FaxServerView>> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    Ok(Json(fax_server_view(&app, fs)))
}

#[derive(Deserialize, ToSchema)]
pub struct FaxServerPatch {
    pub dial_prefixes: Option<Vec<String>>,
}

/// Changes a fax server's routing (administrators).
#[utoipa::path(patch, path = "/v1/fax-servers/{id}", request_body = FaxServerPatch, responses((status = 200, body = FaxServerView)))]
pub async fn patch_fax_server(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<FaxServerPatch>,
) -> ApiResult<Json<FaxServerView>> {
    let fs = visible_fax_server(&app, &caller, &id).await?;
    caller.require_admin()?;
    if let Some(prefixes) = req.dial_prefixes {
        valid_prefixes("dial_prefixes", &prefixes)?;
        app.store.set_fax_server_dial_prefixes(&fs.id, &prefixes).await?;
        let (before, after) = (serde_json::json!({"dial_prefixes": fs.dial_prefixes()}), serde_json::json!({"dial_prefixes": &prefixes}));
        app.dispatcher.set_dial_prefixes(&fs.id, prefixes);
        audit::record(&app, Ok(&caller), "fax_server.changed", Some(&fs.id), Some(&before), Some(&after)).await;
    }
    let fs = app.store.fax_server(&id).await?.ok_or_else(|| ApiError::not_found("fax server"))?;
    Ok(Json(fax_server_view(&app, fs)))
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
            RuleTarget::Client(id) => RuleTargetBody { kind: "client".into(), id },
            RuleTarget::Grouping(id) => RuleTargetBody { kind: "grouping".into(), id },
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

/// Creates an inbound routing rule (administrators).
#[utoipa::path(post, path = "/v1/inbound-rules", request_body = RuleBody, responses((status = 201, body = RuleBody)))]
pub async fn create_rule(State(app): State<AppState>, caller: Caller, Json(req): Json<RuleBody>) -> ApiResult<Response> {
    caller.require_admin()?;
    if req.targets.is_empty() {
        return Err(ApiError::field("targets", "name at least one client or grouping"));
    }
    let mut targets = Vec::new();
    for (i, t) in req.targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        targets.push(match t.kind.as_str() {
            "client" if app.store.client(&t.id).await?.is_some() => RuleTarget::Client(t.id.clone()),
            "grouping" if app.store.grouping(&t.id).await?.is_some() => RuleTarget::Grouping(t.id.clone()),
            "client" | "grouping" => return Err(ApiError::field(&field, format!("no {} {}", t.kind, t.id))),
            _ => return Err(ApiError::field(&format!("{field}.kind"), "must be \"client\" or \"grouping\"")),
        });
    }
    if let Some(fs) = &req.fax_server_id
        && app.store.fax_server(fs).await?.is_none() {
            return Err(ApiError::field("fax_server_id", format!("no fax server {fs}")));
        }
    let rule = InboundRule {
        id: String::new(),
        priority: req.priority.unwrap_or(100),
        fax_server_id: req.fax_server_id,
        called_number: req.called_number,
        tsi: req.tsi,
        caller_prefix: req.caller_prefix,
        targets: String::new(),
        created_by: caller.id.clone(),
        created_at: 0,
    };
    let rule = rule_view(app.store.create_inbound_rule(rule, &targets).await?);
    audit::record(&app, Ok(&caller), "inbound_rule.created", Some(&rule.id), audit::NONE, Some(&rule)).await;
    Ok(created(rule))
}

/// Inbound routing rules (administrators).
#[utoipa::path(get, path = "/v1/inbound-rules", responses((status = 200, body = [RuleBody])))]
pub async fn list_rules(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<RuleBody>>> {
    caller.require_admin()?;
    Ok(Json(app.store.inbound_rules().await?.into_iter().map(rule_view).collect()))
}

/// Deletes an inbound routing rule (administrators).
#[utoipa::path(delete, path = "/v1/inbound-rules/{id}", responses((status = 204)))]
pub async fn delete_rule(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    if !app.store.delete_inbound_rule(&id).await? {
        return Err(ApiError::not_found("inbound rule"));
    }
    audit::record(&app, Ok(&caller), "inbound_rule.deleted", Some(&id), audit::NONE, audit::NONE).await;
    Ok(StatusCode::NO_CONTENT)
}
