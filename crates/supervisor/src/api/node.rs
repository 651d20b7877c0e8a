//! The fax server's HTTP endpoints beside its link: enrollment, document download, inbound upload.

use super::documents::{DocumentView, file_response};
use crate::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::auth::{bearer, hash_secret, new_secret};
use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct EnrollRequest {
    pub enrollment_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrollResponse {
    pub fax_server_id: String,
    pub name: String,
    /// The link credential; the fax server stores it and shows it nowhere.
    pub credential: String,
}

/// A fax server trades its one-time enrollment token for its link credential.
#[utoipa::path(post, path = "/v1/node/enroll", request_body = EnrollRequest, responses((status = 201, body = EnrollResponse), (status = 401, body = crate::api::error::ErrorBody)))]
pub async fn enroll(
    State(app): State<AppState>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<Response> {
    let credential = new_secret("fxs");
    let fs = app
        .store
        .enroll_fax_server(
            &hash_secret(&req.enrollment_token),
            &hash_secret(&credential),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "enrollment_refused",
                "the enrollment token is unknown, used or expired",
            )
        })?;
    tracing::info!(fax_server = %fs.name, "fax server enrolled");
    Ok(super::created(
        &format!("/v1/fax-servers/{}", fs.id),
        EnrollResponse {
            fax_server_id: fs.id,
            name: fs.name,
            credential,
        },
    ))
}

async fn fax_server(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> ApiResult<store::FaxServer> {
    let credential = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    app.store
        .fax_server_by_credential(&hash_secret(credential))
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// A fax server downloads a document of an attempt offered to it.
#[utoipa::path(get, path = "/v1/node/documents/{sha256}", responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn document(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let fs = fax_server(&app, &headers).await?;
    if !app
        .store
        .document_visible_to_fax_server(&sha256, &fs.id)
        .await?
    {
        return Err(ApiError::not_found("document"));
    }
    let (_, media_type, _) = app
        .store
        .document(&sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("document"))?;
    file_response(&app, &sha256, &media_type).await
}

/// A fax server uploads a received fax (TIFF) before announcing it on its link.
#[utoipa::path(post, path = "/v1/node/inbound-documents", responses((status = 201, body = DocumentView)))]
pub async fn upload_inbound(State(app): State<AppState>, req: Request) -> ApiResult<Response> {
    let fs = fax_server(&app, req.headers()).await?;
    let stream = req.into_body().into_data_stream();
    let doc =
        crate::documents::keep(&app, None, app.config.max_upload_bytes, "body", stream).await?;
    tracing::debug!(fax_server = %fs.name, sha256 = %doc.sha256, "inbound document stored");
    Ok(super::created(
        &format!("/v1/node/documents/{}", doc.sha256),
        DocumentView::from(doc),
    ))
}

/// The fax server's link: the request is authenticated by the fax server's credential and upgraded to
/// the WebSocket that `link::serve` runs.
pub async fn link(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(credential) = bearer(&headers) else {
        return ApiError::unauthorized().into_response();
    };
    // Before the credential is looked up, so that a revocation from then on reaches this link.
    let revoked = app.credentials.subscribe();
    let fs = match app
        .store
        .fax_server_by_credential(&hash_secret(credential))
        .await
    {
        Ok(Some(fs)) => fs,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    ws.max_message_size(1 << 20)
        .on_upgrade(move |socket| async move {
            let id = fs.id.clone();
            if let Err(e) = crate::link::serve(app, fs, socket, revoked).await {
                tracing::info!(fax_server = %id, "link closed: {e}");
            }
        })
}
