//! The supervisor's own settings (claim 11): `GET|PUT|PATCH /v1/settings`, history and rollback, for
//! holders of `change_supervisor_settings` everywhere. A registered version is in force at once.

use super::rfc3339;
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::competence::{Competence, Target};
use crate::settings::merge_patch;
use crate::supervisor_settings::{SupervisorSettings, TARGET, register};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SupervisorSettingsView {
    /// 0: nothing registered yet; the configuration file's values are in force.
    pub version: i64,
    pub settings: SupervisorSettings,
}

fn authorize(app: &AppState, caller: &Caller) -> ApiResult<()> {
    app.access
        .authorize(caller, Competence::ChangeSupervisorSettings, Target::System)?;
    Ok(())
}

async fn view(app: &AppState) -> ApiResult<SupervisorSettingsView> {
    let version = app
        .store
        .settings_state(TARGET)
        .await?
        .map_or(0, |s| s.desired_version);
    Ok(SupervisorSettingsView {
        version,
        settings: app.live.get(),
    })
}

/// The supervisor's settings in force.
#[utoipa::path(get, path = "/v1/settings", responses((status = 200, body = SupervisorSettingsView), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SupervisorSettingsView>> {
    authorize(&app, &caller)?;
    Ok(Json(view(&app).await?))
}

/// Replaces the supervisor's settings: validated, stored as a new version, in force at once.
#[utoipa::path(put, path = "/v1/settings", request_body = SupervisorSettings,
    responses((status = 200, body = SupervisorSettingsView), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Json(next): Json<SupervisorSettings>,
) -> ApiResult<Json<SupervisorSettingsView>> {
    authorize(&app, &caller)?;
    register(&app, &caller, next, "supervisor_settings.changed").await?;
    Ok(Json(view(&app).await?))
}

/// Changes some of the supervisor's settings (a JSON merge patch).
#[utoipa::path(patch, path = "/v1/settings", request_body = serde_json::Value,
    responses((status = 200, body = SupervisorSettingsView), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    Json(p): Json<serde_json::Value>,
) -> ApiResult<Json<SupervisorSettingsView>> {
    authorize(&app, &caller)?;
    let mut doc = serde_json::to_value(app.live.get())
        .map_err(|e| ApiError::internal("encoding settings", e))?;
    merge_patch(&mut doc, &p);
    let next: SupervisorSettings = crate::error::patched(doc)?;
    register(&app, &caller, next, "supervisor_settings.changed").await?;
    Ok(Json(view(&app).await?))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SupervisorVersionView {
    pub version: i64,
    pub created_by: String,
    pub created_at: String,
    pub settings: SupervisorSettings,
}

/// Every registered version, newest first.
#[utoipa::path(get, path = "/v1/settings/history", responses((status = 200, body = [SupervisorVersionView])))]
pub async fn history(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SupervisorVersionView>>> {
    authorize(&app, &caller)?;
    let mut out = Vec::new();
    for v in app.store.settings_history(TARGET).await? {
        let settings = serde_json::from_str(&v.document)
            .map_err(|e| ApiError::internal("stored settings unreadable", e))?;
        out.push(SupervisorVersionView {
            version: v.version,
            created_by: v.created_by,
            created_at: rfc3339(v.created_at),
            settings,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema)]
pub struct SupervisorRollback {
    pub version: i64,
}

/// Registers an earlier version again, as a new version.
#[utoipa::path(post, path = "/v1/settings/rollback", request_body = SupervisorRollback, responses((status = 200, body = SupervisorSettingsView)))]
pub async fn rollback(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<SupervisorRollback>,
) -> ApiResult<Json<SupervisorSettingsView>> {
    authorize(&app, &caller)?;
    let old = app
        .store
        .settings_version(TARGET, req.version)
        .await?
        .ok_or_else(|| ApiError::field("version", format!("no version {}", req.version)))?;
    let settings: SupervisorSettings = serde_json::from_str(&old.document)
        .map_err(|e| ApiError::internal("stored settings unreadable", e))?;
    register(&app, &caller, settings, "supervisor_settings.rolled_back").await?;
    Ok(Json(view(&app).await?))
}
