//! Delivery to clients: the inbox, the live event stream (Server-Sent Events), and webhooks.

use super::documents::file_response;
use super::{Page, Paged, created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::competence::{Competence, Target};
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct InboundView {
    pub id: String,
    pub fax_server_id: String,
    pub pages: i64,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    /// The sender's station identity.
    pub tsi: Option<String>,
    pub sha256: String,
    pub started_at: String,
    pub ended_at: String,
    pub received_at: String,
}

fn inbound_view(f: store::InboundFax) -> InboundView {
    InboundView {
        id: f.id,
        fax_server_id: f.fax_server_id,
        pages: f.pages,
        caller_number: f.caller_number,
        called_number: f.called_number,
        tsi: f.tsi,
        sha256: f.sha256,
        started_at: f.started_at,
        ended_at: f.ended_at,
        received_at: rfc3339(f.received_at),
    }
}

/// Faxes delivered to the caller, directly or to a grouping's shared inbox; newest first.
#[utoipa::path(get, path = "/v1/inbox", params(Page), responses((status = 200, body = Paged<InboundView>)))]
pub async fn inbox(
    State(app): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> ApiResult<Json<Paged<InboundView>>> {
    let limit = page.limit()?;
    let items = app
        .store
        .inbox_of(&caller.id, page.cursor.as_deref(), limit)
        .await?;
    // The cursor follows the rows read, so that filtering out faxes the caller may not receive (a grouping
    // inbox of a fax server outside its competence) never ends the listing early.
    let mut paged = Paged::new(items, limit, |f| f.id.clone());
    let items = std::mem::take(&mut paged.items)
        .into_iter()
        .filter(|f| app.access.may_receive(&caller.id, &f.fax_server_id))
        .map(inbound_view)
        .collect();
    Ok(Json(Paged {
        items,
        next_cursor: paged.next_cursor,
    }))
}

async fn visible_inbound(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<store::InboundFax> {
    if !app.store.inbound_visible_to(id, &caller.id).await? {
        return Err(ApiError::not_found("inbound fax"));
    }
    let fax = app
        .store
        .inbound(id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbound fax"))?;
    app.access.authorize(
        caller,
        Competence::ReceiveFaxes,
        Target::FaxServer(&fax.fax_server_id),
    )?;
    Ok(fax)
}

/// One received fax.
#[utoipa::path(get, path = "/v1/inbox/{id}", responses((status = 200, body = InboundView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn inbox_item(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InboundView>> {
    Ok(Json(inbound_view(
        visible_inbound(&app, &caller, &id).await?,
    )))
}

/// The received fax as TIFF.
#[utoipa::path(get, path = "/v1/inbox/{id}/document", responses((status = 200, content_type = "image/tiff"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn inbox_document(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let fax = visible_inbound(&app, &caller, &id).await?;
    file_response(&app, &fax.sha256, "image/tiff").await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StreamQuery {
    /// Resume after this sequence number (the `Last-Event-ID` header takes precedence).
    pub after: Option<i64>,
}

/// The caller's events as Server-Sent Events: `id` is the sequence number (resume with `Last-Event-ID`),
/// `event` the kind (`job.queued`, `job.dispatched`, `job.progress`, `job.in_doubt` (its fax server went
/// silent during the attempt; `until` is when the job is dispatched again unless it reports first),
/// `job.resumed` (it reported again), `job.sent` (`late` when the attempt had been given up),
/// `job.failed`, `job.retry_scheduled`, `job.cancelled`, `job.attempt_ended` (an attempt ended without
/// changing its job, which had moved on), `inbound.received`), `data` JSON with `event_id` and `seq`.
#[utoipa::path(get, path = "/v1/events", params(StreamQuery), responses((status = 200, content_type = "text/event-stream")))]
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let resume = match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::parse::<i64>))
    {
        Some(Ok(Ok(seq))) => Some(seq),
        Some(_) => {
            return Err(ApiError::field(
                "Last-Event-ID",
                "must be a sequence number",
            ));
        }
        None => q.after,
    };
    // Without a resume point the stream starts now.
    let start = match resume {
        Some(seq) => seq,
        None => app.store.last_event_seq().await?,
    };
    let stream = event_stream(app, caller.id, start);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Polls the event table after each wake-up; the database orders events, so a stream never reorders or
/// skips, whatever the wake-ups do.
fn event_stream(
    app: AppState,
    client: String,
    start: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (
            app,
            client,
            start,
            std::collections::VecDeque::<Event>::new(),
            None::<tokio::sync::broadcast::Receiver<()>>,
            true,
        ),
        |(app, client, mut last, mut buf, mut rx, mut first)| async move {
            loop {
                if let Some(ev) = buf.pop_front() {
                    return Some((Ok(ev), (app, client, last, buf, rx, first)));
                }
                if rx.is_none() {
                    rx = Some(app.dispatcher.events.subscribe());
                }
                if !first && let Some(r) = rx.as_mut() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), r.recv()).await;
                }
                first = false;
                match app.store.events_after(&client, last, 200).await {
                    Ok(rows) => {
                        for row in rows {
                            last = row.seq;
                            let data = serde_json::json!({
                                "event_id": row.event_id, "seq": row.seq, "type": row.kind,
                                "created_at": rfc3339(row.created_at),
                                "data": serde_json::from_str::<serde_json::Value>(&row.payload).unwrap_or_default(),
                            });
                            buf.push_back(
                                Event::default()
                                    .id(row.seq.to_string())
                                    .event(row.kind)
                                    .data(data.to_string()),
                            );
                        }
                        if !buf.is_empty() {
                            first = true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("event stream query failed: {e}");
                        return None;
                    }
                }
            }
        },
    )
}

#[derive(Deserialize, ToSchema)]
pub struct NewWebhook {
    /// http(s) URL that receives POSTs.
    pub url: String,
    /// Event kinds, `job.*`-style patterns or `*` (default `*`).
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_at: String,
    /// The signing secret, shown only when the webhook is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_view(h: store::Webhook, secret: Option<String>) -> WebhookView {
    WebhookView {
        events: h.event_kinds(),
        id: h.id,
        url: h.url,
        active: h.active,
        created_at: rfc3339(h.created_at),
        secret,
    }
}

/// Registers a webhook for the caller's events.
#[utoipa::path(post, path = "/v1/webhooks", request_body = NewWebhook, responses((status = 201, body = WebhookView), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewWebhook>,
) -> ApiResult<Response> {
    let url = reqwest::Url::parse(&req.url).map_err(|e| ApiError::field("url", e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ApiError::field(
            "url",
            "must be an http or https URL with a host",
        ));
    }
    let policy = app.live.with(|s| s.webhooks.clone());
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    if policy.require_https && url.scheme() == "http" && !loopback {
        return Err(ApiError::field(
            "url",
            "the supervisor's webhook policy requires https",
        ));
    }
    let held = app.store.webhooks_of(&caller.id).await?.len();
    if held >= usize::try_from(policy.max_per_client).unwrap_or(usize::MAX) {
        return Err(ApiError::conflict(format!(
            "you have {held} webhooks; the supervisor's policy allows {}",
            policy.max_per_client
        )));
    }
    let events = if req.events.is_empty() {
        vec!["*".to_owned()]
    } else {
        req.events
    };
    for (i, e) in events.iter().enumerate() {
        if e.is_empty()
            || e.len() > 64
            || !e
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._*".contains(c))
        {
            return Err(ApiError::field(
                &format!("events[{i}]"),
                "an event kind like job.sent, a pattern like job.*, or *",
            ));
        }
    }
    let hook = app
        .store
        .create_webhook(&caller.id, url.as_str(), &events)
        .await?;
    let secret = crate::webhooks::secret_for(&app.server_key, &hook.id);
    Ok(created(webhook_view(hook, Some(secret))))
}

/// The caller's webhooks.
#[utoipa::path(get, path = "/v1/webhooks", responses((status = 200, body = [WebhookView])))]
pub async fn list_webhooks(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WebhookView>>> {
    Ok(Json(
        app.store
            .webhooks_of(&caller.id)
            .await?
            .into_iter()
            .map(|h| webhook_view(h, None))
            .collect(),
    ))
}

async fn own_webhook(app: &AppState, caller: &Caller, id: &str) -> ApiResult<store::Webhook> {
    match app.store.webhook(id).await? {
        Some(h) if h.client_id == caller.id => Ok(h),
        _ => Err(ApiError::not_found("webhook")),
    }
}

/// Deactivates a webhook.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own_webhook(&app, &caller, &id).await?;
    app.store.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_at: String,
    pub updated_at: String,
}

/// The delivery log of a webhook, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", responses((status = 200, body = [DeliveryView])))]
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    own_webhook(&app, &caller, &id).await?;
    let rows = app.store.deliveries_of(&id, 200).await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                event_seq: d.event_seq,
                status: d.status,
                attempts: d.attempts,
                last_status: d.last_status,
                last_error: d.last_error,
                next_at: rfc3339(d.next_at),
                updated_at: rfc3339(d.updated_at),
            })
            .collect(),
    ))
}
