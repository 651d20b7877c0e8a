//! Document uploads and downloads.

use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::docstore::StoredDoc;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema, Clone)]
pub struct DocumentView {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub pages: u32,
}

impl From<StoredDoc> for DocumentView {
    fn from(d: StoredDoc) -> Self {
        Self {
            sha256: d.sha256,
            size: d.size,
            media_type: d.media_type.to_owned(),
            pages: d.pages,
        }
    }
}

/// Streams one multipart field into the store.
pub async fn store_field(
    app: &AppState,
    caller: &Caller,
    field_name: &str,
    field: axum::extract::multipart::Field<'_>,
) -> ApiResult<StoredDoc> {
    let stream = field.map_err(|e| e.body_text());
    Ok(crate::documents::store(app, caller, field_name, stream).await?)
}

/// Uploads a document (multipart field `file`, or the raw body) to reference in jobs later. It is checked as
/// a fax server will read it (pictures decoded within the pixel limit, every TIFF page decoded, text
/// paginated as rendered): what a fax server could not send is refused here with 422 (415 for a format it
/// does not read).
#[utoipa::path(post, path = "/v1/documents", responses((status = 201, body = DocumentView), (status = 413, body = crate::api::error::ErrorBody), (status = 415, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Response> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let doc = if is_multipart {
        let mut mp = Multipart::from_request(req, &app)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let field = mp
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?
            .ok_or_else(|| ApiError::field("file", "no file part in the upload"))?;
        store_field(&app, &caller, "file", field).await?
    } else {
        let stream = req.into_body().into_data_stream();
        crate::documents::store(&app, &caller, "body", stream).await?
    };
    Ok(super::created(
        &format!("/v1/documents/{}", doc.sha256),
        DocumentView::from(doc),
    ))
}

pub async fn file_response(app: &AppState, sha256: &str, media_type: &str) -> ApiResult<Response> {
    let path = app
        .docs
        .path_of(sha256)
        .ok_or_else(|| ApiError::not_found("document"))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("document"))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, media_type.to_owned())], body).into_response())
}

/// Downloads a document the caller uploaded.
#[utoipa::path(get, path = "/v1/documents/{sha256}", responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let doc = crate::documents::usable(&app, &caller, &sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("document"))?;
    file_response(&app, &sha256, &doc.media_type).await
}
