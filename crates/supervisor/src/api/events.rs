//! Delivery to clients: the inbox, the live event stream (Server-Sent Events), and webhooks.

use super::documents::file_response;
use super::{Page, Paged, created, rfc3339};
use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::auth::Revoked;
use crate::egress::{self, Destination};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema)]
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
    /// The call ended as a fax ends and every page was confirmed to the sender.
    pub complete: bool,
    /// Why the call ended before the fax was complete (the pages that came are kept).
    pub failure: Option<String>,
    /// What arrived of each page, in order (empty for faxes from fax servers that did not say).
    pub page_info: Vec<InboundPageView>,
}

/// One page of a received fax as it arrived.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct InboundPageView {
    /// Lines stored.
    pub lines: u32,
    /// Lines that did not decode (printed as the line above).
    pub bad_lines: u32,
    /// Lines missing: lost in transit, or after the data stopped early.
    pub lines_lost: u32,
    /// The page's data ended as a page ends (RTC / EOFB).
    pub complete: bool,
    /// Confirmed to the sender (MCF / RTP), who counts it delivered.
    pub confirmed: bool,
}

fn inbound_view(f: store::InboundFax) -> InboundView {
    InboundView {
        complete: protocol::received_whole(&f.page_info, f.failure.as_deref()),
        failure: f.failure,
        page_info: f
            .page_info
            .into_iter()
            .map(|p| InboundPageView {
                lines: p.lines,
                bad_lines: p.bad_lines,
                lines_lost: p.lines_lost,
                complete: p.complete,
                confirmed: p.confirmed,
            })
            .collect(),
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

/// Faxes delivered to the caller, directly or to a grouping's shared inbox; the most recently received first.
#[utoipa::path(get, path = "/v1/inbox", params(Page), responses((status = 200, body = Paged<InboundView>)))]
pub async fn inbox(
    State(app): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> ApiResult<Json<Paged<InboundView>>> {
    let limit = page.limit()?;
    let groupings = app.access.groupings_of_client(&caller.id);
    // The cursor is the received time and id of the last fax of the page before: `<ms>.<id>`.
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('.')
                .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id)))
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this listing gave"))
        })
        .transpose()?;
    let items = app
        .store
        .inbox_for(&caller.id, &groupings, before, limit)
        .await?;
    // The cursor follows the rows read, so that filtering out faxes the caller may not read (a grouping
    // inbox of a fax server outside its competence) never ends the listing early.
    let mut paged = Paged::new(items, limit, |f| format!("{}.{}", f.received_at, f.id));
    let ids: Vec<String> = paged.items.iter().map(|f| f.id.clone()).collect();
    let delivered = app.store.inbox_targets_of(&ids).await?;
    let items = std::mem::take(&mut paged.items)
        .into_iter()
        .filter(|f| {
            let to = delivered.get(&f.id).map(Vec::as_slice).unwrap_or_default();
            app.access
                .authorize_inbound(&caller, &f.fax_server_id, to)
                .is_ok()
        })
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
    let fax = app
        .store
        .inbound(id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbound fax"))?;
    let delivered_to = app.store.inbox_targets(&fax.id).await?;
    app.access
        .authorize_inbound(caller, &fax.fax_server_id, &delivered_to)?;
    Ok(fax)
}

/// One received fax.
#[utoipa::path(get, path = "/v1/inbox/{id}", responses((status = 200, body = InboundView), (status = 404, body = crate::api::error::ErrorBody)))]
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
#[utoipa::path(get, path = "/v1/inbox/{id}/document", responses((status = 200, content_type = "image/tiff"), (status = 404, body = crate::api::error::ErrorBody)))]
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
    let slot = app.streams.open(&caller.id)?;
    // Subscribed before the token is looked at again, so a revocation in between is not missed.
    let revoked = app.credentials.subscribe();
    if !app
        .store
        .token_live(&caller.token_id, store::now_ms())
        .await?
    {
        return Err(ApiError::unauthorized());
    }
    // Without a resume point the stream starts now.
    let start = match resume {
        Some(seq) => seq,
        None => app.store.last_event_seq().await?,
    };
    let stream = event_stream(Reader {
        events: app.events.subscribe(),
        app,
        caller,
        revoked,
        last: start,
        buf: std::collections::VecDeque::new(),
        first: true,
        ended: false,
        lagged: false,
        _slot: slot,
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One client's event stream as it is read.
struct Reader {
    app: AppState,
    caller: Caller,
    events: tokio::sync::broadcast::Receiver<()>,
    revoked: tokio::sync::broadcast::Receiver<Revoked>,
    last: i64,
    buf: std::collections::VecDeque<Event>,
    first: bool,
    /// A revocation hit this stream.
    ended: bool,
    /// Revocations were missed (too many at once): the store decides.
    lagged: bool,
    _slot: crate::slots::Slot,
}

/// The most event streams one client may have open at once: each costs a query on every commit.
pub const MAX_STREAMS_PER_CLIENT: usize = 16;

/// Event streams open, per client.
#[derive(Debug, Clone, Default)]
pub struct OpenStreams(crate::slots::Slots);

impl OpenStreams {
    /// A place for one more stream of this client, held while the stream is open; 429 when it has
    /// [`MAX_STREAMS_PER_CLIENT`] already.
    pub fn open(&self, client_id: &str) -> ApiResult<crate::slots::Slot> {
        self.0
            .enter(client_id, MAX_STREAMS_PER_CLIENT)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "at most {MAX_STREAMS_PER_CLIENT} event streams of one client may be open at once; \
                         close one first"
                    ),
                )
            })
    }
}

impl Reader {
    /// Whether the stream may go on: its token is not revoked or expired, its client not disabled.
    async fn still_allowed(&mut self) -> bool {
        let now = store::now_ms();
        if self.ended || self.caller.token_expires_at.is_some_and(|t| t <= now) {
            return false;
        }
        loop {
            match self.revoked.try_recv() {
                Ok(r) if r.hits(&self.caller.id, &self.caller.token_id) => return false,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => self.lagged = true,
                Err(_) => break,
            }
        }
        if !std::mem::take(&mut self.lagged) {
            return true;
        }
        // Revocations were missed: ask the store.
        self.app
            .store
            .token_live(&self.caller.token_id, now)
            .await
            .unwrap_or(false)
    }

    /// Waits for new events, a revocation, or the next look (at most 5 s, so an expiry ends the stream
    /// soon after).
    async fn wait(&mut self) {
        let wake = Duration::from_secs(5);
        tokio::select! {
            _ = tokio::time::timeout(wake, self.events.recv()) => {}
            r = self.revoked.recv() => match r {
                Ok(r) => self.ended |= r.hits(&self.caller.id, &self.caller.token_id),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.lagged = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => self.ended = true,
            },
            // The supervisor is stopping: the client resumes from its last id on the next one.
            () = self.app.stopping.cancelled() => self.ended = true,
        }
    }
}

/// Polls the event table after each wake-up; the database orders events, so a stream never reorders or
/// skips, whatever the wake-ups do. The stream ends when its token is revoked or expires, or its client
/// is disabled or deleted.
fn event_stream(reader: Reader) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(ev) = r.buf.pop_front() {
                return Some((Ok(ev), r));
            }
            if !r.first {
                r.wait().await;
            }
            r.first = false;
            if !r.still_allowed().await {
                return None;
            }
            match r.app.store.events_after(&r.caller.id, r.last, 200).await {
                Ok(rows) => {
                    for row in rows {
                        r.last = row.seq;
                        let data = serde_json::json!({
                            "event_id": row.event_id, "seq": row.seq, "type": row.kind,
                            "created_at": rfc3339(row.created_at),
                            "data": row.payload.0,
                        });
                        r.buf.push_back(
                            Event::default()
                                .id(row.seq.to_string())
                                .event(row.kind)
                                .data(data.to_string()),
                        );
                    }
                    if !r.buf.is_empty() {
                        r.first = true;
                    }
                }
                Err(e) => {
                    tracing::warn!("event stream query failed: {e}");
                    return None;
                }
            }
        }
    })
}

/// Longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

#[derive(Deserialize, ToSchema)]
pub struct NewWebhook {
    /// http(s) URL that receives POSTs. It must reach a public address (checked now for its literal
    /// address or every address its host resolves to, and again at each delivery), unless the
    /// supervisor's settings allow the network (`webhooks.allowed_networks`).
    pub url: String,
    /// Event kinds, `job.*`-style patterns or `*` (default `*`).
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_at: String,
    /// The signing secret (Standard Webhooks, `whsec_…`), shown only when the webhook is made and when
    /// its secret is rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// After a rotation: until when deliveries also carry a signature with the previous secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<String>,
}

fn webhook_view(h: store::Webhook, secret: Option<String>) -> WebhookView {
    let previous = h
        .previous_secret_until
        .filter(|t| *t > store::now_ms())
        .map(rfc3339);
    WebhookView {
        events: h.event_kinds(),
        id: h.id,
        url: h.url,
        active: h.active,
        created_at: rfc3339(h.created_at),
        secret,
        previous_secret_valid_until: previous,
    }
}

/// What a PATCH of a webhook changes (fields left out stay).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// A new URL, checked as at creation.
    pub url: Option<String>,
    /// New event kinds or patterns.
    pub events: Option<Vec<String>>,
}

/// Changes a webhook's URL or event kinds.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", request_body = WebhookPatch,
    responses((status = 200, body = WebhookView), (status = 404, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn patch_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<WebhookPatch>,
) -> ApiResult<Json<WebhookView>> {
    own_webhook(&app, &caller, &id).await?;
    let url = match &req.url {
        Some(u) => Some(checked_url(&app, u).await?),
        None => None,
    };
    let events = req.events.map(checked_events).transpose()?;
    let hook = app
        .store
        .update_webhook(
            &id,
            url.as_ref().map(reqwest::Url::as_str),
            events.as_deref(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(webhook_view(hook, None)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long deliveries still carry a signature with the old secret as well, seconds (0 to 604800;
    /// default 86400), so that receivers can move to the new one without refusing a delivery.
    pub overlap_secs: Option<u64>,
}

/// The longest overlap of a rotated secret.
const MAX_OVERLAP_SECS: u64 = 7 * 86_400;

/// Gives a webhook a new signing secret (shown once, in the answer); the old one signs too for the
/// overlap.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", request_body = RotateSecret,
    responses((status = 200, body = WebhookView), (status = 404, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn rotate_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<RotateSecret>>,
) -> ApiResult<Json<WebhookView>> {
    own_webhook(&app, &caller, &id).await?;
    let overlap = body
        .map(|b| b.0)
        .unwrap_or_default()
        .overlap_secs
        .unwrap_or(86_400);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::field(
            "overlap_secs",
            format!("at most {MAX_OVERLAP_SECS} seconds (7 days)"),
        ));
    }
    let until = store::now_ms() + i64::try_from(overlap).unwrap_or(0) * 1000;
    let hook = app
        .store
        .rotate_webhook_secret(&id, until)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let secret = crate::webhooks::secret_for(&app.server_key, &hook.id, hook.secret_generation);
    crate::audit::record(
        &app,
        Ok(&caller),
        "webhook.rotate_secret",
        Some(&hook.id),
        None::<&()>,
        Some(&serde_json::json!({"generation": hook.secret_generation, "overlap_secs": overlap})),
    )
    .await;
    Ok(Json(webhook_view(hook, Some(secret))))
}

/// Sends a `webhook.ping` event to this webhook only (to try the endpoint and its signature check); the
/// delivery is in the webhook's log like any other.
#[utoipa::path(post, path = "/v1/webhooks/{id}/ping",
    responses((status = 202, body = DeliveryView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn ping_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let hook = own_webhook(&app, &caller, &id).await?;
    if !hook.active {
        return Err(ApiError::not_found("webhook"));
    }
    let d = app.store.ping_webhook(&id).await?;
    app.webhook_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(delivery_view(d))).into_response())
}

/// Delivers a past event again (a delivered one, or one whose tries all failed): its delivery is pending
/// from now with a fresh count of tries, and keeps its `webhook-id`, so a receiver that saw it can tell.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    responses((status = 202, body = DeliveryView), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn redeliver(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_webhook(&app, &caller, &id).await?;
    let Some(d) = app.store.redeliver(&id, &delivery_id).await? else {
        let exists = app
            .store
            .deliveries_of(&id, 200)
            .await?
            .into_iter()
            .any(|d| d.id == delivery_id);
        return Err(if exists {
            ApiError::conflict("the delivery is pending already (or its webhook was deleted)")
        } else {
            ApiError::not_found("delivery")
        });
    };
    app.webhook_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(delivery_view(d))).into_response())
}

/// A webhook URL as the supervisor's policy allows it: http(s), within the length limit, https unless to
/// loopback when the policy says so, and reaching only allowed addresses (checked again at each delivery:
/// a name may resolve elsewhere by then).
async fn checked_url(app: &AppState, asked: &str) -> ApiResult<reqwest::Url> {
    if asked.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            "url",
            format!("at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = reqwest::Url::parse(asked).map_err(|e| ApiError::field("url", e))?;
    let destination = egress::destination(&url).map_err(|e| ApiError::field("url", e))?;
    let policy = app.live.with(|s| s.webhooks.clone());
    let loopback = match &destination {
        Destination::Literal(ip) => egress::canonical(*ip).is_loopback(),
        Destination::Name(name) => name == "localhost" || name.ends_with(".localhost"),
    };
    if policy.require_https && url.scheme() == "http" && !loopback {
        return Err(ApiError::field(
            "url",
            "the supervisor's webhook policy requires https",
        ));
    }
    egress::Lookup::system()
        .check_url(&url, &policy.allow_list())
        .await
        .map_err(|e| ApiError::field("url", e))?;
    Ok(url)
}

/// Event kinds a webhook takes: kinds, `job.*`-style patterns or `*` (none given: `*`).
fn checked_events(asked: Vec<String>) -> ApiResult<Vec<String>> {
    let events = if asked.is_empty() {
        vec!["*".to_owned()]
    } else {
        asked
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
    Ok(events)
}

/// Registers a webhook for the caller's events. 422 names a URL that is not http(s), does not resolve, or
/// reaches a loopback, private, link-local or other internal address the supervisor does not allow.
#[utoipa::path(post, path = "/v1/webhooks", request_body = NewWebhook, responses((status = 201, body = WebhookView), (status = 409, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<NewWebhook>,
) -> ApiResult<Response> {
    let policy = app.live.with(|s| s.webhooks.clone());
    let held = app.store.active_webhook_count(&caller.id).await?;
    if held >= i64::from(policy.max_per_client) {
        return Err(ApiError::conflict(format!(
            "you have {held} webhooks; the supervisor's policy allows {}",
            policy.max_per_client
        )));
    }
    let events = checked_events(req.events)?;
    let url = checked_url(&app, &req.url).await?;
    let hook = app
        .store
        .create_webhook(&caller.id, url.as_str(), &events)
        .await?;
    let secret = crate::webhooks::secret_for(&app.server_key, &hook.id, hook.secret_generation);
    Ok(created(
        &format!("/v1/webhooks/{}", hook.id),
        webhook_view(hook, Some(secret)),
    ))
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

/// Deactivates a webhook and cancels its pending deliveries (those under way are dropped).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", responses((status = 204), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own_webhook(&app, &caller, &id).await?;
    app.store.delete_webhook(&id).await?;
    app.webhook_lanes.cancel(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet; tried (again) at `next_at`.
    Pending,
    Delivered,
    /// Every try failed.
    Failed,
    /// The webhook was deleted first.
    Cancelled,
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        })
    }
}

impl From<store::DeliveryStatus> for DeliveryState {
    fn from(s: store::DeliveryStatus) -> Self {
        match s {
            store::DeliveryStatus::Pending => Self::Pending,
            store::DeliveryStatus::Delivered => Self::Delivered,
            store::DeliveryStatus::Failed => Self::Failed,
            store::DeliveryStatus::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_seq: i64,
    pub status: DeliveryState,
    pub attempts: i64,
    /// The HTTP status of the last answer, if the endpoint answered.
    pub last_status: Option<i64>,
    /// How the last try failed, in the supervisor's words (never the endpoint's).
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
    Ok(Json(rows.into_iter().map(delivery_view).collect()))
}

fn delivery_view(d: store::Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        event_seq: d.event_seq,
        status: d.status.into(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        next_at: rfc3339(d.next_at),
        updated_at: rfc3339(d.updated_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_opens_a_bounded_number_of_streams_and_closing_one_frees_its_place() {
        let streams = OpenStreams::default();
        let mut held: Vec<crate::slots::Slot> = (0..MAX_STREAMS_PER_CLIENT)
            .map(|_| streams.open("a").expect("a place"))
            .collect();
        let e = streams.open("a").expect_err("one too many");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(streams.open("b").is_ok(), "another client is not held back");
        held.pop();
        assert!(streams.open("a").is_ok(), "a closed stream frees its place");
    }
}
