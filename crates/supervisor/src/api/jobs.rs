//! Jobs: submission (claims 2 and 23), status, cancel and resend.

use super::documents::store_field;
use super::{Page, Paged, created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::dispatch::JobOptions;
use crate::jobs::{Cancelled, Queue};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::DocumentRef;
pub use protocol::job::{AttemptStatus, JobStatus};
use serde::{Deserialize, Serialize};
use store::{Job, JobFilter};
use utoipa::ToSchema;

pub use crate::jobs::SubmitRequest;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub id: String,
    pub number: i64,
    pub fax_server_id: String,
    /// `offered`, `active`, `in_doubt` (its fax server went silent during it: the call may be running or
    /// may have sent the fax), `succeeded`, `failed`, `abandoned` (the supervisor gave up waiting and moved
    /// the job on; a result its fax server reports later replaces this) or `cancelled`.
    pub status: AttemptStatus,
    pub phase: protocol::Phase,
    pub page: Option<i64>,
    pub fault: Option<protocol::FaultSide>,
    pub reason: Option<String>,
    pub t30: Option<String>,
    pub pages_sent: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// While `in_doubt`: when the job is dispatched again unless the fax server reports first. No call of
    /// the attempt can run past it, so the fax is not sent twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_doubt_until: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub batch_id: String,
    /// The client whose job it is (a queue administrator sees other clients' jobs).
    pub client_id: String,
    pub recipient: String,
    /// `queued`, `dispatched`, `active`, `in_doubt` (its attempt's fax server went silent; see the
    /// attempt), `sent`, `failed` or `cancelled`.
    pub status: JobStatus,
    pub priority: i64,
    pub tries: i64,
    pub max_tries: i64,
    pub pages_total: i64,
    pub pages_sent: i64,
    /// Why the job is in its state: what ended it (`failed`, `cancelled`), or, while it is `queued` for its
    /// next try, what the try before ended with (it waits until `not_before`). None while it is being sent
    /// and once it is sent.
    pub reason: Option<String>,
    pub options: JobOptions,
    pub not_before: String,
    pub kill_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

/// The API's view of a job (and its attempts); an error when its stored options do not decode.
pub fn job_view(job: Job, attempts: Option<Vec<store::Attempt>>) -> ApiResult<JobView> {
    Ok(JobView {
        options: JobOptions::of(&job)?,
        id: job.id,
        batch_id: job.batch_id,
        client_id: job.client_id,
        recipient: job.recipient,
        status: job.status,
        priority: job.priority,
        tries: job.tries,
        max_tries: job.max_tries,
        pages_total: job.pages_total,
        pages_sent: job.pages_sent,
        reason: job.reason,
        not_before: rfc3339(job.not_before),
        kill_at: rfc3339(job.kill_at),
        created_at: rfc3339(job.created_at),
        updated_at: rfc3339(job.updated_at),
        finished_at: job.finished_at.map(rfc3339),
        attempts: attempts.map(|v| {
            v.into_iter()
                .map(|a| AttemptView {
                    id: a.id,
                    number: a.number,
                    fax_server_id: a.fax_server_id,
                    phase: a.phase,
                    page: a.page,
                    fault: a.fault,
                    reason: a.reason,
                    t30: a.t30,
                    pages_sent: a.pages_sent,
                    started_at: rfc3339(a.started_at),
                    ended_at: a.ended_at.map(rfc3339),
                    in_doubt_until: a
                        .deadline_at
                        .filter(|_| a.status == AttemptStatus::InDoubt)
                        .map(rfc3339),
                    status: a.status,
                })
                .collect()
        }),
    })
}

/// Views of jobs without their attempts.
fn views(jobs: Vec<Job>) -> ApiResult<Vec<JobView>> {
    jobs.into_iter().map(|j| job_view(j, None)).collect()
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub batch_id: String,
    /// One job per recipient.
    pub jobs: Vec<JobView>,
}

/// Reads a submission: JSON, or multipart with a `request` part and `document` parts.
async fn read_submission(
    app: &AppState,
    caller: &Caller,
    req: Request,
) -> ApiResult<(SubmitRequest, Vec<crate::jobs::Document>)> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let header_key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (mut submit, mut uploaded) = if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, app)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let mut submit: Option<SubmitRequest> = None;
        let mut uploaded = Vec::new();
        let mut index = 0usize;
        while let Some(field) = mp.next_field().await.map_err(|e| multipart_error(&e))? {
            match field.name() {
                Some("request") => {
                    let text = field.text().await.map_err(|e| multipart_error(&e))?;
                    submit = Some(
                        serde_json::from_str(&text).map_err(|e| ApiError::field("request", e))?,
                    );
                }
                Some("document") => {
                    let doc =
                        store_field(app, caller, &format!("document[{index}]"), field).await?;
                    index += 1;
                    uploaded.push((
                        DocumentRef {
                            sha256: doc.sha256,
                            size: doc.size,
                            media_type: doc.media_type.to_owned(),
                        },
                        doc.pages,
                    ));
                }
                other => {
                    return Err(ApiError::field(
                        other.unwrap_or("(unnamed)"),
                        "unknown part; send `request` and `document` parts",
                    ));
                }
            }
        }
        (
            submit.ok_or_else(|| ApiError::field("request", "the `request` part is missing"))?,
            uploaded,
        )
    } else {
        let Json(submit) = Json::<SubmitRequest>::from_request(req, app)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        (submit, Vec::new())
    };
    if submit.idempotency_key.is_none() {
        submit.idempotency_key = header_key;
    }
    let mut documents = crate::jobs::documents_by_hash(app, caller, &submit.documents).await?;
    documents.append(&mut uploaded);
    Ok((submit, documents))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the upload is over the limit",
        )
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// Submits a fax: documents, recipients and options. The supervisor picks a proper fax server for each
/// recipient and has it send the fax.
#[utoipa::path(post, path = "/v1/jobs", request_body = SubmitRequest,
    responses((status = 201, body = SubmitResponse), (status = 200, description = "repeated idempotency key", body = SubmitResponse),
              (status = 413, body = crate::api::error::ErrorBody), (status = 415, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn submit(
    State(app): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Response> {
    crate::jobs::may_submit(&app, &caller)?;
    let (submit, documents) = read_submission(&app, &caller, req).await?;
    let crate::jobs::Submitted {
        fresh,
        batch_id,
        jobs,
    } = crate::jobs::submit(&app, &caller, submit, documents).await?;
    let body = SubmitResponse {
        batch_id,
        jobs: views(jobs)?,
    };
    Ok(if fresh {
        created(&first_job(&body), body)
    } else {
        (StatusCode::OK, Json(body)).into_response()
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only jobs in this status: `queued`, `dispatched`, `active`, `in_doubt`, `sent`, `failed` or
    /// `cancelled`.
    pub status: Option<String>,
    /// `own` (default): the caller's jobs; `managed`: also those of every client whose queue the caller
    /// administers (`manage_jobs`).
    pub scope: Option<String>,
    /// Only the jobs of the clients of this grouping (needs `manage_jobs` over it).
    pub grouping_id: Option<String>,
    /// Only this client's jobs (the caller's own, or a client whose queue it administers).
    pub client_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Jobs, newest first: the caller's, or with `scope=managed`, `grouping_id` or `client_id` those of the
/// queues it administers (queue administration, as HylaFAX's `faxstat -s` shows an administrator).
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery), responses((status = 200, body = Paged<JobView>), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Paged<JobView>>> {
    let limit = Page {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|e| ApiError::field("status", e))?;
    let filter = JobFilter {
        status,
        before: q.cursor,
        limit,
    };
    let queue = match (q.scope.as_deref(), &q.grouping_id, &q.client_id) {
        (_, Some(_), Some(_)) => {
            return Err(ApiError::field(
                "client_id",
                "give grouping_id or client_id, not both",
            ));
        }
        (_, Some(g), None) => Queue::Grouping(g),
        (_, None, Some(c)) => Queue::Client(c),
        (None | Some("own"), None, None) => Queue::Own,
        (Some("managed"), None, None) => Queue::Managed,
        (Some(other), None, None) => {
            return Err(ApiError::field(
                "scope",
                format!("{other:?} is not a scope: own or managed"),
            ));
        }
    };
    let jobs = crate::jobs::list(&app, &caller, queue, &filter).await?;
    Ok(Json(Paged::new(views(jobs)?, limit, |j| j.id.clone())))
}

/// One job with the history of its attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}", responses((status = 200, body = JobView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = crate::jobs::visible(&app, &caller, &id).await?;
    let attempts = crate::jobs::attempts(&app, &job).await?;
    Ok(Json(job_view(job, Some(attempts))?))
}

/// Cancels a job. A queued job is cancelled at once; one on a fax server is told to stop, and ends as
/// `cancelled` when the fax server confirms (202). A job whose fax server is away (`in_doubt`) ends
/// `cancelled` instead of being dispatched again, unless its fax server reports that it was sent.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", responses((status = 200, body = JobView), (status = 202, body = JobView), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(match crate::jobs::cancel(&app, &caller, &id).await? {
        Cancelled::Now(job) => Json(job_view(job, None)?).into_response(),
        Cancelled::Asked(job) => (StatusCode::ACCEPTED, Json(job_view(job, None)?)).into_response(),
    })
}

/// Alters a queued job (send time, priority, tries, kill time), the caller's own or one in a queue it
/// administers (`manage_jobs`), as HylaFAX's `faxalter` does.
#[utoipa::path(patch, path = "/v1/jobs/{id}", request_body = crate::jobs::AlterRequest,
    responses((status = 200, body = JobView), (status = 404, body = crate::api::error::ErrorBody),
              (status = 409, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn alter(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<crate::jobs::AlterRequest>,
) -> ApiResult<Json<JobView>> {
    let job = crate::jobs::alter(&app, &caller, &id, &body).await?;
    Ok(Json(job_view(job, None)?))
}

/// Sends a finished job again, as a new job with the same documents, recipient and options.
#[utoipa::path(post, path = "/v1/jobs/{id}/resend", responses((status = 201, body = SubmitResponse), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn resend(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let sent = crate::jobs::resend(&app, &caller, &id).await?;
    let body = SubmitResponse {
        batch_id: sent.batch_id,
        jobs: views(sent.jobs)?,
    };
    Ok(created(&first_job(&body), body))
}

/// The `Location` of a submission: its (first) job.
fn first_job(body: &SubmitResponse) -> String {
    body.jobs
        .first()
        .map_or_else(|| "/v1/jobs".to_owned(), |j| format!("/v1/jobs/{}", j.id))
}
