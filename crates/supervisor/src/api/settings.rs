//! Fax server settings (claims 5–8): read by clients that share a grouping with the fax server; changed by
//! administrators, which stores a new version and pushes it to the fax server.

use super::rfc3339;
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::competence::{Competence, Target};
use crate::settings::{FaxServerSettings, diff, merge_patch};
use axum::Json;
use axum::extract::{Path, Query, State};
use protocol::Body;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
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

/// 404 unless the fax server exists and is visible to the caller, then 403 unless the caller holds the
/// competence over it.
async fn visible(app: &AppState, caller: &Caller, id: &str, needs: Competence) -> ApiResult<()> {
    if !app.access.fax_server_visible(caller, id) || app.store.fax_server(id).await?.is_none() {
        return Err(ApiError::not_found("fax server"));
    }
    if needs == Competence::ReadFaxServerSettings {
        app.access.authorize(caller, needs, Target::FaxServer(id))?;
    } else {
        // A change reaches every grouping the fax server serves.
        app.access
            .authorize_change_of_fax_server(caller, needs, id)?;
    }
    Ok(())
}

fn parse(document: &str) -> ApiResult<FaxServerSettings> {
    serde_json::from_str(document).map_err(|e| ApiError::internal("stored settings unreadable", e))
}

/// The stored (sealed) document of the desired version, if any.
async fn current(app: &AppState, id: &str) -> ApiResult<Option<(i64, FaxServerSettings)>> {
    let Some(state) = app.store.settings_state(id).await? else {
        return Ok(None);
    };
    let Some(v) = app
        .store
        .settings_version(id, state.desired_version)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((v.version, parse(&v.document)?)))
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

/// Pushes the desired version to the fax server if it is connected (else on its next connect).
pub async fn push(app: &AppState, id: &str) -> store::Result<()> {
    let Some(state) = app.store.settings_state(id).await? else {
        return Ok(());
    };
    let Some(v) = app
        .store
        .settings_version(id, state.desired_version)
        .await?
    else {
        return Ok(());
    };
    let Ok(stored) = serde_json::from_str::<FaxServerSettings>(&v.document) else {
        tracing::error!(fax_server = %id, version = v.version, "stored settings unreadable; not pushed");
        return Ok(());
    };
    send(app, id, v.version, stored);
    Ok(())
}

/// Sends one version over the link, secrets unsealed for the fax server alone.
fn send(app: &AppState, id: &str, version: i64, stored: FaxServerSettings) {
    let settings = Box::new(app.sealer.for_fax_server(stored));
    let version = u64::try_from(version).unwrap_or(0);
    app.dispatcher
        .push(id, Body::SettingsPush { version, settings });
}

/// Registers a validated document as the next version (with its dial prefixes and audit entry, in one
/// transaction) and pushes it.
async fn register(
    app: &AppState,
    caller: &Caller,
    id: &str,
    stored: FaxServerSettings,
    action: &str,
    before: Option<FaxServerSettings>,
    extra: serde_json::Value,
) -> ApiResult<i64> {
    let document =
        serde_json::to_string(&stored).map_err(|e| ApiError::internal("encoding settings", e))?;
    let prefixes = stored.dial_rules.prefixes.clone();
    let masked = stored.clone().masked();
    let mut tx = app.store.begin().await?;
    let version = tx
        .register_settings(id, &document, &caller.id, Some(&prefixes))
        .await?;
    let mut after = serde_json::json!({"version": version, "settings": masked});
    crate::settings::merge_patch(&mut after, &extra);
    tx.commit_audited(crate::audit::entry(
        Ok(caller),
        action,
        Some(id),
        before.as_ref(),
        Some(&after),
    ))
    .await?;
    // Dial rules drive routing.
    app.dispatcher.set_dial_prefixes(id, prefixes);
    send(app, id, version, stored);
    Ok(version)
}

async fn store_version(
    app: &AppState,
    caller: &Caller,
    id: &str,
    next: FaxServerSettings,
) -> ApiResult<SettingsView> {
    next.validate()?;
    let current = current(app, id).await?;
    let before = current.as_ref().map(|(_, s)| s.clone().masked());
    let stored = app
        .sealer
        .for_storage(next, current.as_ref().map(|(_, s)| s))?;
    let version = register(
        app,
        caller,
        id,
        stored,
        "settings.changed",
        before,
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(by = %caller.name, fax_server = %id, version, "settings registered");
    view(app, id).await
}

/// A fax server's settings, desired and applied versions side by side.
#[utoipa::path(get, path = "/v1/fax-servers/{id}/settings", responses((status = 200, body = SettingsView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SettingsView>> {
    visible(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
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
    visible(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    Ok(Json(store_version(&app, &caller, &id, next).await?))
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
    visible(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    let base = current(&app, &id)
        .await?
        .map(|(_, s)| s)
        .unwrap_or_default()
        .masked();
    let mut doc =
        serde_json::to_value(&base).map_err(|e| ApiError::internal("encoding settings", e))?;
    merge_patch(&mut doc, &patch);
    let next: FaxServerSettings = super::patched(doc)?;
    Ok(Json(store_version(&app, &caller, &id, next).await?))
}

#[derive(Serialize, ToSchema)]
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
    visible(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
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
    visible(&app, &caller, &id, Competence::ReadFaxServerSettings).await?;
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
    visible(&app, &caller, &id, Competence::ChangeFaxServerSettings).await?;
    let old = app
        .store
        .settings_version(&id, req.version)
        .await?
        .ok_or_else(|| ApiError::field("version", format!("no version {}", req.version)))?;
    let stored = parse(&old.document)?;
    // A version stored before today's rules may break them: it is not pushed again.
    stored.validate()?;
    let extra = serde_json::json!({"rolled_back_to": req.version});
    let version = register(
        &app,
        &caller,
        &id,
        stored,
        "settings.rolled_back",
        None,
        extra,
    )
    .await?;
    tracing::info!(by = %caller.name, fax_server = %id, version, from = req.version, "settings rolled back");
    Ok(Json(view(&app, &id).await?))
}
