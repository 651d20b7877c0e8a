//! Jobs: submission (claims 2 and 23), status, cancel and resend.

use super::documents::store_field;
use super::{Page, Paged, created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::competence::{Competence, Target};
use crate::dispatch::{JobOptions, job_event};
use crate::numbers;
use crate::settings::rules;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::DocumentRef;
use protocol::job::{AttemptStatus, JobStatus};
use serde::{Deserialize, Serialize};
use store::{Job, JobFilter, JobUpdate, NewJob};
use utoipa::ToSchema;

/// The instruction part of a submission. With `multipart/form-data`, send it as a part named `request`
/// before the document parts (named `document`); with `application/json`, reference documents uploaded
/// before by hash.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// E.164 numbers or local dial strings.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Phonebook entry ids: each sends to the entry's fax number, if the caller may refer to the entry.
    #[serde(default)]
    pub recipient_entries: Vec<String>,
    /// SHA-256 of documents uploaded before; sent before any uploaded in the same request.
    #[serde(default)]
    pub documents: Vec<String>,
    /// `standard`, `fine` (default) or `superfine`.
    pub resolution: Option<String>,
    /// Error correction mode (default on).
    pub ecm: Option<bool>,
    pub max_tries: Option<u32>,
    /// Give up this many seconds after submission.
    pub kill_after_secs: Option<u64>,
    /// Do not send before this time (RFC 3339), at most 365 days ahead.
    pub send_at: Option<String>,
    /// Page header text: up to 60 printable characters (no control or invisible formatting characters).
    pub header: Option<String>,
    /// Station identity: up to 20 digits, spaces and '+'.
    pub tsi: Option<String>,
    /// 0 (most urgent) to 255; default 127.
    pub priority: Option<u8>,
    /// Seconds between tries after busy / no answer (1 to 86400), instead of the server's schedule.
    pub retry_delay_secs: Option<u64>,
    /// Repeating a submission with the same key returns the first one instead of sending twice.
    pub idempotency_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub batch_id: String,
    pub recipient: String,
    /// `queued`, `dispatched`, `active`, `in_doubt` (its attempt's fax server went silent; see the
    /// attempt), `sent`, `failed` or `cancelled`.
    pub status: JobStatus,
    pub priority: i64,
    pub tries: i64,
    pub max_tries: i64,
    pub pages_total: i64,
    pub pages_sent: i64,
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

#[derive(Serialize, ToSchema)]
pub struct SubmitResponse {
    pub batch_id: String,
    /// One job per recipient.
    pub jobs: Vec<JobView>,
}

/// How far ahead `send_at` may lie: a job is an open promise the retention worker never removes.
const MAX_SEND_AHEAD_DAYS: i64 = 365;
/// The longest wait between tries a submission may ask for, as the supervisor's own retry schedule.
const MAX_RETRY_DELAY_SECS: u64 = 86_400;

/// Reads a submission: JSON, or multipart with a `request` part and `document` parts.
async fn read_submission(
    app: &AppState,
    caller: &Caller,
    req: Request,
) -> ApiResult<(SubmitRequest, Vec<(DocumentRef, u32)>)> {
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
    let mut documents = Vec::new();
    for (i, sha) in submit.documents.iter().enumerate() {
        let missing = || {
            ApiError::field(
                &format!("documents[{i}]"),
                format!("no uploaded document {sha}"),
            )
        };
        let owners = app.store.document_owners(sha).await?;
        if !app.access.may_use_document(caller, &owners) {
            return Err(missing());
        }
        let (size, media_type, pages) = app.store.document(sha).await?.ok_or_else(missing)?;
        let doc = DocumentRef {
            sha256: sha.clone(),
            size: u64::try_from(size).unwrap_or(0),
            media_type,
        };
        documents.push((doc, u32::try_from(pages).unwrap_or(0)));
    }
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
    app.access
        .authorize(&caller, Competence::SendFaxes, Target::Anywhere)?;
    let (submit, documents) = read_submission(&app, &caller, req).await?;
    let pages_total: i64 = documents.iter().map(|(_, pages)| i64::from(*pages)).sum();
    let documents: Vec<DocumentRef> = documents.into_iter().map(|(d, _)| d).collect();
    let total = submit.recipients.len() + submit.recipient_entries.len();
    if total == 0 || total > 100 {
        return Err(ApiError::field(
            "recipients",
            "give 1 to 100 recipients (numbers and phonebook entries together)",
        ));
    }
    if documents.is_empty() {
        return Err(ApiError::field("documents", "give at least one document"));
    }
    let max_pages = app.live.with(|s| s.uploads.max_pages_per_job);
    if pages_total > i64::from(max_pages) {
        return Err(ApiError::field(
            "documents",
            format!("{pages_total} pages; a job may have at most {max_pages}"),
        ));
    }
    let mut recipients = Vec::with_capacity(submit.recipients.len());
    for (i, r) in submit.recipients.iter().enumerate() {
        let field = format!("recipients[{i}]");
        let number = numbers::normalize(r, &app.config.dial)
            .map_err(|e| ApiError::field(&field, format!("{r:?} {e}")))?;
        if !app.dispatcher.reachable(&caller.id, &number) {
            return Err(ApiError::field(
                &field,
                format!("no fax server in your groupings may dial {number}"),
            ));
        }
        recipients.push(number);
    }
    let from_phonebook =
        super::phonebook::recipient_numbers(&app, &caller, &submit.recipient_entries)?;
    for (i, number) in from_phonebook.into_iter().enumerate() {
        if !app.dispatcher.reachable(&caller.id, &number) {
            return Err(ApiError::field(
                &format!("recipient_entries[{i}]"),
                format!("no fax server in your groupings may dial {number}"),
            ));
        }
        recipients.push(number);
    }
    let resolution = submit.resolution.clone().unwrap_or_else(|| "fine".into());
    if !matches!(resolution.as_str(), "standard" | "fine" | "superfine") {
        return Err(ApiError::field(
            "resolution",
            "must be standard, fine or superfine",
        ));
    }
    if let Some(tsi) = &submit.tsi {
        rules::station_id("tsi", tsi)?;
    }
    if let Some(header) = &submit.header {
        rules::printed("header", header, 60)?;
    }
    if submit
        .retry_delay_secs
        .is_some_and(|s| !(1..=MAX_RETRY_DELAY_SECS).contains(&s))
    {
        return Err(ApiError::field(
            "retry_delay_secs",
            format!("must be 1 to {MAX_RETRY_DELAY_SECS} seconds"),
        ));
    }
    let max_tries = submit
        .max_tries
        .unwrap_or_else(|| app.live.with(|s| s.retry.max_tries));
    if !(1..=100).contains(&max_tries) {
        return Err(ApiError::field("max_tries", "must be 1 to 100"));
    }
    let now = store::now_ms();
    let not_before = match &submit.send_at {
        None => now,
        Some(t) => {
            let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| ApiError::field("send_at", format!("not an RFC 3339 time: {e}")))?;
            let at = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            let horizon = now.saturating_add(MAX_SEND_AHEAD_DAYS * 86_400_000);
            if at > horizon {
                return Err(ApiError::field(
                    "send_at",
                    format!(
                        "{t} is more than {MAX_SEND_AHEAD_DAYS} days ahead; schedule it no later than {}",
                        rfc3339(horizon)
                    ),
                ));
            }
            at.max(now)
        }
    };
    let kill_secs = submit
        .kill_after_secs
        .unwrap_or_else(|| app.live.with(|s| s.retry.kill_secs));
    if kill_secs == 0 || kill_secs > 30 * 86_400 {
        return Err(ApiError::field(
            "kill_after_secs",
            "must be 1 second to 30 days",
        ));
    }
    let kill_at = not_before.max(now) + i64::try_from(kill_secs).unwrap_or(0) * 1000;
    let options = JobOptions {
        resolution,
        ecm: submit.ecm.unwrap_or(true),
        header: submit.header.clone(),
        tsi: submit.tsi.clone(),
        retry_delay_secs: submit.retry_delay_secs,
    };
    if submit
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(ApiError::field(
            "idempotency_key",
            "must be 1 to 200 characters",
        ));
    }
    let batch_id = store::new_id("bat");
    let options_json =
        serde_json::to_string(&options).map_err(|e| ApiError::internal("encoding options", e))?;
    let new_jobs: Vec<NewJob> = recipients
        .iter()
        .map(|r| NewJob {
            id: store::new_id("job"),
            batch_id: batch_id.clone(),
            client_id: caller.id.clone(),
            recipient: r.clone(),
            priority: i64::from(submit.priority.unwrap_or(127)),
            options: options_json.clone(),
            max_tries: i64::from(max_tries),
            kill_at,
            not_before,
            pages_total,
            idempotency_key: submit.idempotency_key.clone(),
            documents: documents.iter().map(|d| d.sha256.clone()).collect(),
        })
        .collect();
    let events: Vec<_> = new_jobs
        .iter()
        .map(|j| {
            store::NewEvent::new(
                "job.queued",
                serde_json::json!({"job_id": j.id, "batch_id": j.batch_id, "recipient": j.recipient}),
                vec![caller.id.clone()],
            )
        })
        .collect();
    let (fresh, jobs) = app.intake.submit(new_jobs, events).await?;
    if fresh {
        app.metrics.submitted.inc();
        app.events.committed();
        for job in &jobs {
            app.dispatcher
                .enqueue_new(job, documents.clone(), options.clone());
        }
    }
    let batch_id = jobs.first().map(|j| j.batch_id.clone()).unwrap_or(batch_id);
    let body = SubmitResponse {
        batch_id,
        jobs: views(jobs)?,
    };
    Ok(if fresh {
        created(body)
    } else {
        (StatusCode::OK, Json(body)).into_response()
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only jobs in this status: `queued`, `dispatched`, `active`, `in_doubt`, `sent`, `failed` or
    /// `cancelled`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery), responses((status = 200, body = Paged<JobView>)))]
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
    let jobs = app.store.jobs_of_client(&caller.id, &filter).await?;
    Ok(Json(Paged::new(views(jobs)?, limit, |j| j.id.clone())))
}

async fn own_job(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Job> {
    match app.store.job(id).await? {
        Some(job) if job.client_id == caller.id => Ok(job),
        _ => Err(ApiError::not_found("job")),
    }
}

/// One job with the history of its attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}", responses((status = 200, body = JobView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = own_job(&app, &caller, &id).await?;
    let mut attempts = app.store.attempts_of(&job.id).await?;
    for a in attempts.iter_mut().filter(|a| a.ended_at.is_none()) {
        if let Some((phase, page)) = app.dispatcher.live_phase(&a.id) {
            a.phase = phase.to_owned();
            a.page = page.map(i64::from).or(a.page);
        }
    }
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
    let job = own_job(&app, &caller, &id).await?;
    if job.is_finished() {
        return Err(ApiError::conflict(format!(
            "the job is already {}",
            job.status
        )));
    }
    let cancel_queued = || async {
        let update = JobUpdate {
            reason: Some("cancelled by the client".into()),
            ..JobUpdate::to(JobStatus::Cancelled)
        };
        let event = job_event("job.cancelled", &job, serde_json::json!({}));
        let done = app
            .store
            .update_job(&job.id, &[JobStatus::Queued], &update, &[event])
            .await?;
        if done {
            app.dispatcher.dequeue(&job.id);
            app.events.committed();
        }
        ApiResult::Ok(done)
    };
    if job.status == JobStatus::Queued && cancel_queued().await? {
        let job = own_job(&app, &caller, &id).await?;
        return Ok(Json(job_view(job, None)?).into_response());
    }
    app.store.request_cancel(&job.id).await?;
    // An attempt may have ended and queued its job for a retry since the job was read; from here on no
    // retry is queued (the store refuses it once the cancel is asked for), and one queued before is
    // cancelled now.
    if cancel_queued().await? {
        let job = own_job(&app, &caller, &id).await?;
        return Ok(Json(job_view(job, None)?).into_response());
    }
    for a in app
        .store
        .attempts_of(&job.id)
        .await?
        .iter()
        .filter(|a| a.ended_at.is_none())
    {
        app.dispatcher.request_cancel(a);
    }
    let job = own_job(&app, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(job_view(job, None)?)).into_response())
}

/// Sends a finished job again, as a new job with the same documents, recipient and options.
#[utoipa::path(post, path = "/v1/jobs/{id}/resend", responses((status = 201, body = SubmitResponse), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn resend(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job = own_job(&app, &caller, &id).await?;
    app.access
        .authorize(&caller, Competence::SendFaxes, Target::Anywhere)?;
    if !job.is_finished() {
        return Err(ApiError::conflict(format!(
            "the job is still {}; cancel it or wait for it to finish",
            job.status
        )));
    }
    if !app.dispatcher.reachable(&caller.id, &job.recipient) {
        return Err(ApiError::field(
            "recipient",
            format!("no fax server in your groupings may dial {}", job.recipient),
        ));
    }
    let docs = app.store.job_documents(&job.id).await?;
    let now = store::now_ms();
    let new = NewJob {
        id: store::new_id("job"),
        batch_id: store::new_id("bat"),
        client_id: caller.id.clone(),
        recipient: job.recipient.clone(),
        priority: job.priority,
        options: job.options.clone(),
        max_tries: job.max_tries,
        kill_at: now + (job.kill_at - job.not_before).max(1000),
        not_before: now,
        pages_total: job.pages_total,
        idempotency_key: None,
        documents: docs.iter().map(|d| d.sha256.clone()).collect(),
    };
    let event = store::NewEvent::new(
        "job.queued",
        serde_json::json!({"job_id": new.id, "batch_id": new.batch_id, "recipient": new.recipient, "resend_of": job.id}),
        vec![caller.id.clone()],
    );
    let (_, jobs) = app
        .store
        .insert_jobs(std::slice::from_ref(&new), &[event])
        .await?;
    app.metrics.submitted.inc();
    app.events.committed();
    app.dispatcher.enqueue(&jobs).await?;
    let batch_id = new.batch_id;
    Ok(created(SubmitResponse {
        batch_id,
        jobs: views(jobs)?,
    }))
}
