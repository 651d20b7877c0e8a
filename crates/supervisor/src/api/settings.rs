//! Fax server settings (claims 5–8): read by clients that share a grouping with the fax server; changed by
//! administrators, which stores a new version and pushes it to the fax server.

use super::rfc3339;
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::competence::Competence;
use crate::settings::{FaxServerSettings, authorize, current, diff, parse};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    pub fax_server_id: String,
    /// The version registered last (0: none yet, the defaults are shown).
    pub desired_version: i64,
    /// The version the fax server reported applied.
    pub applied_version: i64,
    pub applied_at: Option<String>,
    /// The desired version is not applied yet (the fax server is offline, or refused it).
    pub pending: bool,
    /// Why the fax server refused a version, and which.
    pub last_error: Option<String>,
    pub error_version: Option<i64>,
    /// Secrets appear as `{"set": true|false}`.
    pub settings: FaxServerSettings,
}

async fn view(app: &AppState, id: &str) -> ApiResult<SettingsView> {
    let state = app.store.settings_state(id).await?.unwrap_or_default();
    let settings = current(app, id)
        .await?
        .map(|(_, s)| s)
        .unwrap_or_default()
        .masked();
    Ok(SettingsView {
        fax_server_id: id.to_owned(),
        pending: state.desired_version != state.applied_version,
        desired_version: state.desired_version,
        applied_version: state.applied_version,
        applied_at: state.applied_at.map(rfc3339),
        last_error: state.last_error,
        error_version: state.error_version,
        settings,
    })
}

/// A fax server's settings, desired and applied versions side by side.
#[utoipa::path(get, path = "/v1/fax-servers/{id}/settings", responses((status = 200, body = SettingsView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SettingsView>> {
    authorize(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
    Ok(Json(view(&app, &id).await?))
}

/// Replaces a fax server's settings (administrators): validated, stored as a new version, pushed.
#[utoipa::path(put, path = "/v1/fax-servers/{id}/settings", request_body = FaxServerSettings,
    responses((status = 200, body = SettingsView), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(next): Json<FaxServerSettings>,
) -> ApiResult<Json<SettingsView>> {
    authorize(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    crate::settings::change(&app, &caller, &id, next).await?;
    Ok(Json(view(&app, &id).await?))
}

/// Changes some settings (administrators), as an RFC 7396 merge patch over the current ones.
#[utoipa::path(patch, path = "/v1/fax-servers/{id}/settings", request_body = serde_json::Value,
    responses((status = 200, body = SettingsView), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<serde_json::Value>,
) -> ApiResult<Json<SettingsView>> {
    authorize(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    crate::settings::patch(&app, &caller, &id, &patch).await?;
    Ok(Json(view(&app, &id).await?))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub created_by: String,
    pub created_at: String,
    pub settings: FaxServerSettings,
}

/// Every version of a fax server's settings, newest first.
#[utoipa::path(get, path = "/v1/fax-servers/{id}/settings/history", responses((status = 200, body = [VersionView])))]
pub async fn history(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<VersionView>>> {
    authorize(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
    let mut out = Vec::new();
    for v in app.store.settings_history(&id).await? {
        out.push(VersionView {
            version: v.version,
            created_by: v.created_by,
            created_at: rfc3339(v.created_at),
            settings: parse(&v.document)?.masked(),
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    pub from: i64,
    pub to: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Change {
    pub path: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

async fn version_doc(
    app: &AppState,
    id: &str,
    field: &str,
    version: i64,
) -> ApiResult<serde_json::Value> {
    let v = app
        .store
        .settings_version(id, version)
        .await?
        .ok_or_else(|| ApiError::field(field, format!("no version {version}")))?;
    serde_json::to_value(parse(&v.document)?.masked())
        .map_err(|e| ApiError::internal("encoding settings", e))
}

/// What changed between two versions (secrets as set / not set).
#[utoipa::path(get, path = "/v1/fax-servers/{id}/settings/diff", params(DiffQuery), responses((status = 200, body = [Change])))]
pub async fn changes(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<Vec<Change>>> {
    authorize(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
    let (a, b) = (
        version_doc(&app, &id, "from", q.from).await?,
        version_doc(&app, &id, "to", q.to).await?,
    );
    let mut out = Vec::new();
    diff(&a, &b, "", &mut out);
    Ok(Json(
        out.into_iter()
            .map(|(path, from, to)| Change { path, from, to })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct Rollback {
    pub version: i64,
}

/// Registers an earlier version again, as a new version (administrators).
#[utoipa::path(post, path = "/v1/fax-servers/{id}/settings/rollback", request_body = Rollback, responses((status = 200, body = SettingsView)))]
pub async fn rollback(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Rollback>,
) -> ApiResult<Json<SettingsView>> {
    authorize(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    crate::settings::rollback(&app, &caller, &id, req.version).await?;
    Ok(Json(view(&app, &id).await?))
}
