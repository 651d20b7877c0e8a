//! Sign-in, clients, their tokens, roles and grants (claims 11–12). Every decision goes through
//! `Access::authorize` / `Access::may_grant`: nobody hands out a competence or scope they do not hold.

use super::{created, rfc3339};
use crate::access::{Caller, CompetenceSet};
use crate::competence::{Competence, Scope, Target, USER};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, audit, auth};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::ClientKind;
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
    pub created_at: String,
}

impl From<store::Client> for ClientView {
    fn from(c: store::Client) -> Self {
        Self {
            id: c.id,
            name: c.name,
            kind: c.kind,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// Signs a person in with name and password; answers a new API token.
#[utoipa::path(post, path = "/v1/sessions", request_body = LoginRequest,
    responses((status = 201, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn login(
    State(app): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let client = app.store.client_by_name(&req.name).await?;
    let ok = client.as_ref().is_some_and(|c| {
        !c.disabled
            && c.password_hash
                .as_deref()
                .is_some_and(|h| auth::verify_password(&req.password, h))
    });
    let Some(client) = client.filter(|_| ok) else {
        tracing::info!(name = %req.name, "sign-in refused");
        audit::record(
            &app,
            Err(&req.name),
            "session.refused",
            None,
            audit::NONE,
            audit::NONE,
        )
        .await;
        return Err(ApiError::unauthorized());
    };
    let token = auth::new_secret("fxh");
    app.store
        .create_token(&client.id, &auth::hash_secret(&token), "session")
        .await?;
    tracing::info!(client = %client.name, "signed in");
    let caller = Caller {
        id: client.id.clone(),
        name: client.name.clone(),
    };
    audit::record(
        &app,
        Ok(&caller),
        "session.created",
        Some(&client.id),
        audit::NONE,
        audit::NONE,
    )
    .await;
    Ok(created(TokenResponse {
        token,
        client: client.into(),
    }))
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

#[derive(Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub role_id: String,
    pub role: String,
    pub scope: ScopeBody,
    pub competences: Vec<Competence>,
    pub granted_by: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
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
    let c = app
        .store
        .client(&caller.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
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

#[derive(Serialize, ToSchema)]
pub struct NewClientResponse {
    pub client: ClientDetail,
    /// An API token for applications, shown once.
    pub token: Option<String>,
}

pub(super) fn valid_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@".contains(c))
    {
        return Err(ApiError::field(
            field,
            "use 1 to 64 letters, digits, '-', '_', '.' or '@'",
        ));
    }
    Ok(())
}

/// Every grouping named exists and is visible to the caller (an invisible one reads as missing).
pub(super) async fn check_groupings(
    app: &AppState,
    caller: &Caller,
    field: &str,
    ids: &[String],
) -> ApiResult<()> {
    for (i, g) in ids.iter().enumerate() {
        if !app.access.grouping_visible(caller, g) || app.store.grouping(g).await?.is_none() {
            return Err(ApiError::field(
                &format!("{field}[{i}]"),
                format!("no grouping {g}"),
            ));
        }
    }
    Ok(())
}

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
    responses((status = 201, body = NewClientResponse), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_client(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewClient>,
) -> ApiResult<Response> {
    valid_name("name", &req.name)?;
    let kind = ClientKind::parse(&req.kind)
        .ok_or_else(|| ApiError::field("kind", "must be \"person\" or \"application\""))?;
    let hash = match (kind, &req.password) {
        (ClientKind::Person, Some(p)) if p.chars().count() >= 10 => {
            Some(auth::hash_password(p).map_err(|e| ApiError::internal("hashing a password", e))?)
        }
        (ClientKind::Person, _) => {
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
    check_groupings(&app, &caller, "groupings", &req.groupings).await?;
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
    let rows: Vec<(&str, &str, &str)> = grants
        .iter()
        .map(|(r, s)| (r.id.as_str(), s.kind(), s.id()))
        .collect();
    let client = app
        .store
        .create_client(store::NewClient {
            name: &req.name,
            kind,
            password_hash: hash.as_deref(),
            groupings: &req.groupings,
            grants: &rows,
            granted_by: Some(&caller.id),
        })
        .await?;
    app.access.reload(&app.store).await?;
    let token = if kind == ClientKind::Application {
        let t = auth::new_secret("fxh");
        app.store
            .create_token(&client.id, &auth::hash_secret(&t), "created")
            .await?;
        Some(t)
    } else {
        None
    };
    tracing::info!(by = %caller.name, client = %client.name, "client created");
    let view = detail(&app, client).await?;
    audit::record(
        &app,
        Ok(&caller),
        "client.created",
        Some(&view.client.id),
        audit::NONE,
        Some(&view),
    )
    .await;
    Ok(created(NewClientResponse {
        client: view,
        token,
    }))
}

/// The clients the caller manages.
#[utoipa::path(get, path = "/v1/clients", responses((status = 200, body = [ClientView]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_clients(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ClientView>>> {
    if !app
        .access
        .holds_somewhere(&caller.id, Competence::ManageClients)
    {
        return Err(ApiError::forbidden(
            "this needs the competence manage_clients",
        ));
    }
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
#[utoipa::path(get, path = "/v1/clients/{id}", responses((status = 200, body = ClientDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_client(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientDetail>> {
    let c = visible_client(&app, &caller, &id).await?;
    Ok(Json(detail(&app, c).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    pub label: String,
}

/// Issues an API token for a client: a client for itself, or one who manages it.
#[utoipa::path(post, path = "/v1/clients/{id}/tokens", request_body = NewToken, responses((status = 201, body = TokenResponse)))]
pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewToken>,
) -> ApiResult<Response> {
    let client = visible_client(&app, &caller, &id).await?;
    let token = auth::new_secret("fxh");
    app.store
        .create_token(&client.id, &auth::hash_secret(&token), &req.label)
        .await?;
    let after = serde_json::json!({"label": req.label});
    audit::record(
        &app,
        Ok(&caller),
        "token.created",
        Some(&client.id),
        audit::NONE,
        Some(&after),
    )
    .await;
    Ok(created(TokenResponse {
        token,
        client: client.into(),
    }))
}

/// Grants a role in a scope to a client the caller manages.
#[utoipa::path(post, path = "/v1/clients/{id}/grants", request_body = GrantRequest, responses((status = 201, body = GrantView), (status = 403, body = crate::error::ErrorBody)))]
pub async fn add_grant(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<GrantRequest>,
) -> ApiResult<Response> {
    let client = visible_client(&app, &caller, &id).await?;
    app.access.authorize(
        &caller,
        Competence::ManageClients,
        Target::Client(&client.id),
    )?;
    let (role, scope) = resolve_grant(&app, &caller, "grant", &req).await?;
    let g = app
        .store
        .add_grant(
            &client.id,
            &role.id,
            scope.kind(),
            scope.id(),
            Some(&caller.id),
        )
        .await?;
    app.access.reload(&app.store).await?;
    let view = grant_views(&app, &client.id)
        .await?
        .into_iter()
        .find(|v| v.id == g.id)
        .ok_or_else(|| ApiError::internal("reading a grant back", "missing"))?;
    tracing::info!(by = %caller.name, client = %client.name, role = %role.name, scope = scope.kind(), "role granted");
    audit::record(
        &app,
        Ok(&caller),
        "grant.created",
        Some(&client.id),
        audit::NONE,
        Some(&view),
    )
    .await;
    Ok(created(view))
}

/// Withdraws a grant; the caller must be able to grant it itself.
#[utoipa::path(delete, path = "/v1/clients/{id}/grants/{grant_id}", responses((status = 204), (status = 403, body = crate::error::ErrorBody)))]
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
    app.access.authorize(
        &caller,
        Competence::ManageClients,
        Target::Client(&client.id),
    )?;
    let role = app
        .store
        .role(&grant.role_id)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    let scope = Scope::from_parts(&grant.scope_kind, &grant.scope_id).unwrap_or(Scope::All);
    app.access
        .may_grant(&caller, competences_of(&role), &scope)?;
    app.store.remove_grant(&grant.id).await?;
    app.access.reload(&app.store).await?;
    let before =
        serde_json::json!({"grant": grant.id, "role": role.name, "scope": ScopeBody::from(&scope)});
    audit::record(
        &app,
        Ok(&caller),
        "grant.removed",
        Some(&client.id),
        Some(&before),
        audit::NONE,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
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
#[utoipa::path(post, path = "/v1/roles", request_body = NewRole, responses((status = 201, body = RoleView), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_role(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewRole>,
) -> ApiResult<Response> {
    app.access
        .authorize(&caller, Competence::ManageClients, Target::System)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::field("name", "give a name of 1 to 64 characters"));
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
    let role = app.store.create_role(name, &names, &caller.id).await?;
    let view = role_view(&role);
    audit::record(
        &app,
        Ok(&caller),
        "role.created",
        Some(&role.id),
        audit::NONE,
        Some(&view),
    )
    .await;
    Ok(created(view))
}

/// Deletes a role nobody holds (built-in roles stay).
#[utoipa::path(delete, path = "/v1/roles/{id}", responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
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
    app.store.delete_role(&role.id).await?;
    audit::record(
        &app,
        Ok(&caller),
        "role.deleted",
        Some(&role.id),
        Some(&role_view(&role)),
        audit::NONE,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
