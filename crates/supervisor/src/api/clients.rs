//! Sign-in, clients, their tokens, roles and grants (claims 11–12). Every decision goes through
//! `Access::authorize` / `Access::may_grant`: nobody hands out a competence or scope they do not hold.

use super::{PeerAddr, created, rfc3339};
use crate::access::{Caller, CompetenceSet};
use crate::api::error::{ApiError, ApiResult};
use crate::clients::{valid_name, valid_password};
use crate::competence::{Competence, Scope, Target, USER};
use crate::signin::{SignInError, sign_in};
use crate::{AppState, audit, auth};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::ClientKind;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Shown once; store it safely.
    pub token: String,
    /// The token's id, to list or revoke it.
    pub token_id: String,
    /// When the token stops working; absent: never.
    pub expires_at: Option<String>,
    pub client: ClientView,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// A disabled client's tokens and password open nothing.
    pub disabled: bool,
    pub created_at: String,
}

impl From<store::Client> for ClientView {
    fn from(c: store::Client) -> Self {
        Self {
            id: c.id,
            name: c.name,
            kind: c.kind,
            disabled: c.disabled,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// Signs a person in with name and password; answers a new API token that expires after the supervisor's
/// `sessions.login_token_ttl_secs`. Failed attempts are throttled per name and per address (429 with
/// `Retry-After`); when too many password checks already wait, 503 with `Retry-After` before any check.
#[utoipa::path(post, path = "/v1/sessions", request_body = LoginRequest,
    responses((status = 201, body = TokenResponse), (status = 401, body = crate::api::error::ErrorBody),
              (status = 429, description = "too many failed sign-ins; see Retry-After", body = crate::api::error::ErrorBody),
              (status = 503, description = "too many password checks at once; see Retry-After", body = crate::api::error::ErrorBody)))]
pub async fn login(
    State(app): State<AppState>,
    PeerAddr(peer): PeerAddr,
    Json(req): Json<LoginRequest>,
) -> Response {
    match sign_in(&app, &req.name, &req.password, peer).await {
        Ok(s) => created(
            &format!("/v1/clients/{}/tokens/{}", s.client.id, s.token_id),
            TokenResponse {
                token: s.token,
                token_id: s.token_id,
                expires_at: Some(rfc3339(s.expires_at)),
                client: s.client.into(),
            },
        ),
        Err(SignInError::Refused) => ApiError::unauthorized().into_response(),
        Err(SignInError::Throttled(wait)) => {
            ApiError::from(crate::signin::too_many(wait)).into_response()
        }
        Err(SignInError::Busy) => ApiError::from(crate::auth::HashError::Busy).into_response(),
        Err(SignInError::Internal(e)) => ApiError::from(e).into_response(),
    }
}

/// Signs out: revokes the token this request carries.
#[utoipa::path(delete, path = "/v1/sessions", responses((status = 204), (status = 401, body = crate::api::error::ErrorBody)))]
pub async fn logout(State(app): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let me = own_client(&app, &caller).await?;
    crate::clients::revoke_token(&app, &caller, &me, &caller.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn own_client(app: &AppState, caller: &Caller) -> ApiResult<store::Client> {
    app.store
        .client(&caller.id)
        .await?
        .ok_or_else(ApiError::unauthorized)
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq, Eq)]
pub struct ScopeBody {
    /// `all`, `grouping` or `fax_server`.
    pub kind: String,
    /// The grouping or fax server id (absent for `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl From<&Scope> for ScopeBody {
    fn from(s: &Scope) -> Self {
        ScopeBody {
            kind: s.kind().to_owned(),
            id: Some(s.id().to_owned()).filter(|i| !i.is_empty()),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub role_id: String,
    pub role: String,
    pub scope: ScopeBody,
    pub competences: Vec<Competence>,
    pub granted_by: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientDetail {
    #[serde(flatten)]
    pub client: ClientView,
    pub groupings: Vec<String>,
    pub grants: Vec<GrantView>,
}

async fn grant_views(app: &AppState, client_id: &str) -> ApiResult<Vec<GrantView>> {
    let roles = app.store.roles().await?;
    let mut out = Vec::new();
    for g in app.store.grants_of(client_id).await? {
        let Some(role) = roles.iter().find(|r| r.id == g.role_id) else {
            continue;
        };
        let scope = Scope::from_parts(&g.scope_kind, &g.scope_id).unwrap_or(Scope::All);
        out.push(GrantView {
            id: g.id,
            role_id: g.role_id,
            role: role.name.clone(),
            scope: ScopeBody::from(&scope),
            competences: competences_of(role).iter().collect(),
            granted_by: g.granted_by,
            created_at: rfc3339(g.created_at),
        });
    }
    Ok(out)
}

async fn detail(app: &AppState, client: store::Client) -> ApiResult<ClientDetail> {
    let groupings = app
        .store
        .groupings_of(store::MemberKind::Client, &client.id)
        .await?;
    let grants = grant_views(app, &client.id).await?;
    Ok(ClientDetail {
        client: client.into(),
        groupings,
        grants,
    })
}

/// The calling client, its groupings and what it may do where.
#[utoipa::path(get, path = "/v1/me", responses((status = 200, body = ClientDetail)))]
pub async fn me(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ClientDetail>> {
    let c = own_client(&app, &caller).await?;
    Ok(Json(detail(&app, c).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct GrantRequest {
    /// A role name (`administrator`, `grouping administrator`, `operator`, `user`, or one defined by an
    /// administrator) or role id.
    pub role: String,
    pub scope: ScopeBody,
}

#[derive(Deserialize, ToSchema)]
pub struct NewClient {
    pub name: String,
    /// `person` or `application`.
    pub kind: String,
    /// Required for people, refused for applications.
    pub password: Option<String>,
    /// Groupings to put the new client in.
    #[serde(default)]
    pub groupings: Vec<String>,
    /// Roles to grant. Absent: the `user` role in each of `groupings`.
    pub grants: Option<Vec<GrantRequest>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NewClientResponse {
    pub client: ClientDetail,
    /// An API token for applications, shown once.
    pub token: Option<String>,
}

/// The most groupings or grants one request may name.
const MAX_LISTED: usize = 100;

fn competences_of(role: &store::Role) -> CompetenceSet {
    CompetenceSet::of(
        role.competence_names()
            .iter()
            .filter_map(|n| Competence::parse(n)),
    )
}

/// Resolves and checks one grant request: the role exists, the scope names an existing object the caller
/// can see, and the caller may hand out that role there.
async fn resolve_grant(
    app: &AppState,
    caller: &Caller,
    field: &str,
    g: &GrantRequest,
) -> ApiResult<(store::Role, Scope)> {
    let role = match app.store.role(&g.role).await? {
        Some(r) => r,
        None => app.store.role_by_name(&g.role).await?.ok_or_else(|| {
            ApiError::field(&format!("{field}.role"), format!("no role {:?}", g.role))
        })?,
    };
    let id = g.scope.id.clone().unwrap_or_default();
    let scope = Scope::from_parts(&g.scope.kind, &id).ok_or_else(|| {
        ApiError::field(
            &format!("{field}.scope"),
            "kind must be \"all\", or \"grouping\" / \"fax_server\" with an id",
        )
    })?;
    let exists = match &scope {
        Scope::All => true,
        Scope::Grouping(id) => {
            app.store.grouping(id).await?.is_some() && app.access.grouping_visible(caller, id)
        }
        Scope::FaxServer(id) => {
            app.store.fax_server(id).await?.is_some() && app.access.fax_server_visible(caller, id)
        }
    };
    if !exists {
        return Err(ApiError::field(
            &format!("{field}.scope.id"),
            format!("no {} {id}", scope.kind()),
        ));
    }
    app.access
        .may_grant(caller, competences_of(&role), &scope)?;
    Ok((role, scope))
}

/// Creates a client: the caller needs `manage_clients` over every grouping named (or everywhere when none
/// is), and may grant only what it holds.
#[utoipa::path(post, path = "/v1/clients", request_body = NewClient,
    responses((status = 201, body = NewClientResponse), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn create_client(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewClient>,
) -> ApiResult<Response> {
    valid_name("name", &req.name)?;
    let kind = ClientKind::parse(&req.kind)
        .ok_or_else(|| ApiError::field("kind", "must be \"person\" or \"application\""))?;
    let password = match (kind, &req.password) {
        (ClientKind::Person, Some(p)) => {
            valid_password("password", p)?;
            Some(p.as_str())
        }
        (ClientKind::Person, None) => {
            return Err(ApiError::field(
                "password",
                "a person needs a password of at least 10 characters",
            ));
        }
        (ClientKind::Application, Some(_)) => {
            return Err(ApiError::field(
                "password",
                "applications sign in with tokens, not passwords",
            ));
        }
        (ClientKind::Application, None) => None,
    };
    // Each named grouping and grant costs lookups: a request names a sane number of them.
    if req.groupings.len() > MAX_LISTED {
        return Err(ApiError::field(
            "groupings",
            format!("at most {MAX_LISTED} groupings"),
        ));
    }
    if req.grants.as_ref().is_some_and(|g| g.len() > MAX_LISTED) {
        return Err(ApiError::field(
            "grants",
            format!("at most {MAX_LISTED} grants"),
        ));
    }
    crate::groupings::check_exist(&app, &caller, "groupings", &req.groupings).await?;
    if req.groupings.is_empty() {
        app.access
            .authorize(&caller, Competence::ManageClients, Target::System)?;
    }
    for g in &req.groupings {
        app.access
            .authorize(&caller, Competence::ManageClients, Target::Grouping(g))?;
    }
    let requested = match req.grants {
        Some(g) => g,
        None => req
            .groupings
            .iter()
            .map(|g| GrantRequest {
                role: USER.to_owned(),
                scope: ScopeBody {
                    kind: "grouping".into(),
                    id: Some(g.clone()),
                },
            })
            .collect(),
    };
    let mut grants = Vec::with_capacity(requested.len());
    for (i, g) in requested.iter().enumerate() {
        grants.push(resolve_grant(&app, &caller, &format!("grants[{i}]"), g).await?);
    }
    let hash = match password {
        Some(p) => Some(app.credentials.hash_password(p).await?),
        None => None,
    };
    let rows: Vec<(&str, &str, &str)> = grants
        .iter()
        .map(|(r, s)| (r.id.as_str(), s.kind(), s.id()))
        .collect();
    let mut tx = app.store.begin().await?;
    let client = tx
        .create_client(store::NewClient {
            name: &req.name,
            kind,
            password_hash: hash.as_deref(),
            groupings: &req.groupings,
            grants: &rows,
            granted_by: Some(&caller.id),
        })
        .await?;
    let token = if kind == ClientKind::Application {
        let t = auth::new_secret("fxh");
        tx.create_token(store::NewToken {
            client_id: &client.id,
            token_hash: &auth::hash_secret(&t),
            label: "created",
            expires_at: None,
            created_by: Some(&caller.id),
            session: false,
        })
        .await?;
        Some(t)
    } else {
        None
    };
    let recorded = serde_json::json!({
        "id": client.id, "name": client.name, "kind": client.kind, "groupings": req.groupings,
        "grants": grants.iter().map(|(role, scope)| serde_json::json!({
            "role": role.name, "scope": ScopeBody::from(scope),
        })).collect::<Vec<_>>(),
    });
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "client.created",
        Some(&client.id),
        audit::NONE,
        Some(&recorded),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    tracing::info!(by = %caller.name, client = %client.name, "client created");
    let view = detail(&app, client).await?;
    Ok(created(
        &format!("/v1/clients/{}", view.client.id),
        NewClientResponse {
            client: view,
            token,
        },
    ))
}

/// The clients the caller manages.
#[utoipa::path(get, path = "/v1/clients", responses((status = 200, body = [ClientView]), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn list_clients(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ClientView>>> {
    app.access
        .authorize(&caller, Competence::ManageClients, Target::Anywhere)?;
    let all = app.store.clients().await?;
    Ok(Json(
        all.into_iter()
            .filter(|c| app.access.client_visible(&caller, &c.id))
            .map(Into::into)
            .collect(),
    ))
}

async fn visible_client(app: &AppState, caller: &Caller, id: &str) -> ApiResult<store::Client> {
    if !app.access.client_visible(caller, id) {
        return Err(ApiError::not_found("client"));
    }
    app.store
        .client(id)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))
}

/// One client with its groupings and grants (itself, or one the caller manages).
#[utoipa::path(get, path = "/v1/clients/{id}", responses((status = 200, body = ClientDetail), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_client(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientDetail>> {
    let c = visible_client(&app, &caller, &id).await?;
    Ok(Json(detail(&app, c).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct ClientPatch {
    /// Disable (true) or enable (false) the client.
    pub disabled: Option<bool>,
}

/// Disables or enables a client (needs authority over everything the client reaches). A disabled client's
/// tokens and password open nothing and its event streams end; enabling it restores its tokens.
#[utoipa::path(patch, path = "/v1/clients/{id}", request_body = ClientPatch,
    responses((status = 200, body = ClientDetail), (status = 403, body = crate::api::error::ErrorBody),
              (status = 404, body = crate::api::error::ErrorBody), (status = 409, description = "the last administrator", body = crate::api::error::ErrorBody)))]
pub async fn patch_client(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ClientPatch>,
) -> ApiResult<Json<ClientDetail>> {
    let client = visible_client(&app, &caller, &id).await?;
    if let Some(disabled) = req.disabled {
        crate::clients::set_disabled(&app, &caller, &client, disabled).await?;
    }
    let c = visible_client(&app, &caller, &id).await?;
    Ok(Json(detail(&app, c).await?))
}

/// Deletes a client (needs authority over everything the client reaches): its tokens, grants,
/// memberships, webhooks and personal phonebook entries go, its queued jobs are cancelled, its name is free.
#[utoipa::path(delete, path = "/v1/clients/{id}",
    responses((status = 204), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody),
              (status = 409, description = "the last administrator", body = crate::api::error::ErrorBody)))]
pub async fn delete_client(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let client = visible_client(&app, &caller, &id).await?;
    crate::clients::delete(&app, &caller, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    /// 10 to 256 characters.
    pub password: String,
    /// Required when changing one's own password.
    pub current_password: Option<String>,
}

/// Sets a person's password: its own (with the current one), or another's with authority over everything
/// that client reaches. The sessions signed in with the old password end (but the request's own).
#[utoipa::path(put, path = "/v1/clients/{id}/password", request_body = PasswordRequest,
    responses((status = 204), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody),
              (status = 422, body = crate::api::error::ErrorBody), (status = 429, body = crate::api::error::ErrorBody)))]
pub async fn set_password(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<PasswordRequest>,
) -> ApiResult<StatusCode> {
    let client = visible_client(&app, &caller, &id).await?;
    crate::clients::set_password(
        &app,
        &caller,
        &client,
        &req.password,
        req.current_password.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    /// 1 to 64 characters, to tell tokens apart.
    pub label: String,
    /// The token stops working after this many seconds (at most ten years); absent: never. A token a
    /// client makes for itself lives no longer than the token it is made with (absent: as long), and one
    /// made with a sign-in token ends when the password changes.
    pub expires_in_secs: Option<u64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub created_at: String,
    /// The client that issued it; absent for sign-ins and the bootstrap token.
    pub created_by: Option<String>,
    pub expires_at: Option<String>,
    /// To the minute.
    pub last_used_at: Option<String>,
    /// Made by a password sign-in (a new password ends it).
    pub session: bool,
    /// The token of this request.
    pub current: bool,
}

fn token_view(t: store::ApiToken, caller: &Caller) -> TokenView {
    TokenView {
        current: t.id == caller.token_id,
        id: t.id,
        label: t.label,
        created_at: rfc3339(t.created_at),
        created_by: t.created_by,
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        session: t.session,
    }
}

/// Issues an API token for a client: a client for itself, or one with authority over everything that
/// client reaches.
#[utoipa::path(post, path = "/v1/clients/{id}/tokens", request_body = NewToken,
    responses((status = 201, body = TokenResponse), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewToken>,
) -> ApiResult<Response> {
    let client = visible_client(&app, &caller, &id).await?;
    let issued =
        crate::clients::issue_token(&app, &caller, &client, &req.label, req.expires_in_secs)
            .await?;
    Ok(created(
        &format!("/v1/clients/{}/tokens/{}", client.id, issued.info.id),
        TokenResponse {
            token: issued.token,
            token_id: issued.info.id,
            expires_at: issued.info.expires_at.map(rfc3339),
            client: client.into(),
        },
    ))
}

/// A client's live tokens (neither revoked nor expired), newest first; never the secrets.
#[utoipa::path(get, path = "/v1/clients/{id}/tokens", responses((status = 200, body = [TokenView]), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let client = visible_client(&app, &caller, &id).await?;
    let tokens = app.store.tokens_of(&client.id, store::now_ms()).await?;
    Ok(Json(
        tokens.into_iter().map(|t| token_view(t, &caller)).collect(),
    ))
}

/// Revokes a token: refused from the next request on; event streams opened with it end.
#[utoipa::path(delete, path = "/v1/clients/{id}/tokens/{token_id}",
    responses((status = 204), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let client = visible_client(&app, &caller, &id).await?;
    crate::clients::revoke_token(&app, &caller, &client, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grants a role in a scope to a client the caller manages.
#[utoipa::path(post, path = "/v1/clients/{id}/grants", request_body = GrantRequest, responses((status = 201, body = GrantView), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn add_grant(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<GrantRequest>,
) -> ApiResult<Response> {
    let client = visible_client(&app, &caller, &id).await?;
    app.access.authorize_over_client(&caller, &client.id)?;
    let (role, scope) = resolve_grant(&app, &caller, "grant", &req).await?;
    let mut tx = app.store.begin().await?;
    let g = tx
        .add_grant(
            &client.id,
            &role.id,
            scope.kind(),
            scope.id(),
            Some(&caller.id),
        )
        .await?;
    let recorded =
        serde_json::json!({"grant": g.id, "role": role.name, "scope": ScopeBody::from(&scope)});
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "grant.created",
        Some(&client.id),
        audit::NONE,
        Some(&recorded),
    ))
    .await?;
    app.access.reload(&app.store).await?;
    let view = grant_views(&app, &client.id)
        .await?
        .into_iter()
        .find(|v| v.id == g.id)
        .ok_or_else(|| ApiError::internal("reading a grant back", "missing"))?;
    tracing::info!(by = %caller.name, client = %client.name, role = %role.name, scope = scope.kind(), "role granted");
    Ok(created(
        &format!("/v1/clients/{}/grants/{}", client.id, view.id),
        view,
    ))
}

/// Withdraws a grant; the caller must be able to grant it itself. The last enabled holder of the
/// administrator role in scope `all` keeps it (409).
#[utoipa::path(delete, path = "/v1/clients/{id}/grants/{grant_id}", responses((status = 204), (status = 403, body = crate::api::error::ErrorBody),
    (status = 409, description = "the last administrator", body = crate::api::error::ErrorBody)))]
pub async fn remove_grant(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, grant_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let client = visible_client(&app, &caller, &id).await?;
    let grant = app
        .store
        .grant(&grant_id)
        .await?
        .filter(|g| g.client_id == client.id)
        .ok_or_else(|| ApiError::not_found("grant"))?;
    app.access.authorize_over_client(&caller, &client.id)?;
    let role = app
        .store
        .role(&grant.role_id)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    let scope = Scope::from_parts(&grant.scope_kind, &grant.scope_id).unwrap_or(Scope::All);
    app.access
        .may_grant(&caller, competences_of(&role), &scope)?;
    let before =
        serde_json::json!({"grant": grant.id, "role": role.name, "scope": ScopeBody::from(&scope)});
    let mut tx = app.store.begin().await?;
    tx.remove_grant(&grant.id).await?;
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "grant.removed",
        Some(&client.id),
        Some(&before),
        audit::NONE,
    ))
    .await?;
    app.access.reload(&app.store).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub competences: Vec<Competence>,
    pub builtin: bool,
}

fn role_view(r: &store::Role) -> RoleView {
    RoleView {
        id: r.id.clone(),
        name: r.name.clone(),
        competences: competences_of(r).iter().collect(),
        builtin: r.builtin,
    }
}

/// The roles: built-in ones and those administrators defined.
#[utoipa::path(get, path = "/v1/roles", responses((status = 200, body = [RoleView])))]
pub async fn list_roles(
    State(app): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<RoleView>>> {
    Ok(Json(
        app.store.roles().await?.iter().map(role_view).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewRole {
    pub name: String,
    pub competences: Vec<String>,
}

/// Defines a role. The caller needs `manage_clients` everywhere and must hold every competence it bundles.
#[utoipa::path(post, path = "/v1/roles", request_body = NewRole, responses((status = 201, body = RoleView), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn create_role(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewRole>,
) -> ApiResult<Response> {
    app.access
        .authorize(&caller, Competence::ManageClients, Target::System)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "give a name of 1 to 64 characters, no control characters",
        ));
    }
    if req.competences.is_empty() {
        return Err(ApiError::field(
            "competences",
            "name at least one competence",
        ));
    }
    let mut set = Vec::new();
    for (i, c) in req.competences.iter().enumerate() {
        let competence = Competence::parse(c).ok_or_else(|| {
            let known: Vec<&str> = Competence::ALL.iter().map(|c| c.as_str()).collect();
            ApiError::field(
                &format!("competences[{i}]"),
                format!("no competence {c:?}; known: {}", known.join(", ")),
            )
        })?;
        set.push(competence);
    }
    app.access
        .may_grant(&caller, CompetenceSet::of(set.iter().copied()), &Scope::All)?;
    let names: Vec<&str> = CompetenceSet::of(set)
        .iter()
        .map(Competence::as_str)
        .collect();
    let mut tx = app.store.begin().await?;
    let role = tx.create_role(name, &names, &caller.id).await?;
    let view = role_view(&role);
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "role.created",
        Some(&role.id),
        audit::NONE,
        Some(&view),
    ))
    .await?;
    Ok(created(&format!("/v1/roles/{}", view.id), view))
}

/// Deletes a role nobody holds (built-in roles stay).
#[utoipa::path(delete, path = "/v1/roles/{id}", responses((status = 204), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn delete_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.access
        .authorize(&caller, Competence::ManageClients, Target::System)?;
    let role = app
        .store
        .role(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    if role.builtin {
        return Err(ApiError::field("id", "built-in roles cannot be deleted"));
    }
    let mut tx = app.store.begin().await?;
    tx.delete_role(&role.id).await?;
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "role.deleted",
        Some(&role.id),
        Some(&role_view(&role)),
        audit::NONE,
    ))
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
