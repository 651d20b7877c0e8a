//! The REST face under `/v1`, described by the OpenAPI document at `/v1/openapi.json`. Handlers are thin:
//! they authenticate, validate, and call the resource modules; every access decision goes through
//! `crate::access`.

pub mod admin;
pub mod audit;
pub mod clients;
mod documents;
pub mod error;
pub mod events;
pub mod jobs;
mod node;
pub mod phonebook;
pub mod settings;
pub mod supervisor_settings;

use crate::AppState;
use crate::access::Caller;
use crate::api::error::{ApiError, REQUEST_ID, Shaped};
use crate::auth::{bearer, hash_secret};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let now = store::now_ms();
        let session = app
            .store
            .session_by_token_hash(&hash_secret(token), now)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if app.credentials.note_use(&session.token_id, now) {
            // Off the request's path: the answer does not wait for the writer.
            let (store, id) = (app.store.clone(), session.token_id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(&id, now).await {
                    tracing::warn!("recording a token's use failed: {e}");
                }
            });
        }
        Ok(Caller {
            id: session.client.id,
            name: session.client.name,
            token_id: session.token_id,
            token_expires_at: session.token_expires_at,
            token_session: session.token_session,
        })
    }
}

/// The address a request came from, when the listener knows it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

pub use crate::rfc3339;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// At most this many items (1 to 500, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::field("limit", "must be between 1 and 500")),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
        let next_cursor = if full {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// Gives every request an id (kept from `X-Request-Id` when the client sent a sane one), makes it
/// available to error bodies and logs, and returns it in the response header.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Gives every error response the one JSON error shape, whoever made it: axum's extractors answer bad JSON,
/// bad paths and queries in text of their own, the body-size limit with text, the router's 405 with
/// nothing.
async fn error_shape(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status().as_u16() < 400 || resp.extensions().get::<Shaped>().is_some() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Rejection texts are short; a longer body is cut, never buffered whole.
    let text = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, 4096))
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let allow = parts
        .headers
        .get(axum::http::header::ALLOW)
        .and_then(|v| v.to_str().ok());
    let mut shaped = ApiError::from_response(parts.status, &text, allow).into_response();
    for keep in [
        axum::http::header::ALLOW,
        axum::http::header::RETRY_AFTER,
        axum::http::header::WWW_AUTHENTICATE,
    ] {
        if let Some(v) = parts.headers.get(&keep) {
            shaped.headers_mut().insert(keep, v.clone());
        }
    }
    shaped
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// `/metrics` on the API listeners: off when it has its own listener or no token is configured;
/// else for the bearer of the metrics token.
async fn metrics_on_api(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let off = |why: &str| ApiError::new(StatusCode::NOT_FOUND, "not_found", why).into_response();
    if app.config.metrics_listen.is_some() {
        return off("metrics are served on their own listener (metrics_listen), not here");
    }
    if app.config.metrics_token.is_none() {
        return off(
            "metrics are off: configure metrics_token, or metrics_listen for a separate listener",
        );
    }
    metrics(State(app), headers).await
}

/// `/metrics`, for the bearer of the metrics token when one is configured.
async fn metrics(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &app.config.metrics_token
        && !bearer(&headers).is_some_and(|given| token.matches(given))
    {
        return ApiError::unauthorized().into_response();
    }
    let fax_servers = app.store.fax_servers().await.unwrap_or_default();
    let counts = app.store.job_counts().await.unwrap_or_default();
    let body = app.metrics.render(&gauges(&app, &fax_servers, &counts));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// The gauges of `/metrics`: the queue, jobs by status, and per fax server its link, line and channels.
fn gauges<'a>(
    app: &AppState,
    fax_servers: &[store::FaxServer],
    counts: &[(protocol::job::JobStatus, i64)],
) -> Vec<crate::metrics::Gauge<'a>> {
    use crate::metrics::Gauge;
    let one = |v: f64| vec![(Vec::new(), v)];
    let mut up = Vec::new();
    let mut line_ok = Vec::new();
    let mut channels = Vec::new();
    for fs in fax_servers.iter().filter(|f| f.revoked_at.is_none()) {
        let who = || vec![fs.id.clone(), fs.name.clone()];
        let (c, status) = admin::channels_of(app, fs);
        let online = status.is_some_and(|s| s.online);
        up.push((who(), f64::from(u8::from(online))));
        let ok = online && app.dispatcher.line_status(&fs.id).is_none();
        line_ok.push((who(), f64::from(u8::from(ok))));
        let figures = [
            ("configured", c.configured),
            ("usable", c.usable),
            ("sending", c.sending),
            ("receiving", c.receiving),
            ("free", c.free),
        ];
        for (state, n) in figures {
            let mut labels = who();
            labels.push(state.to_owned());
            channels.push((labels, f64::from(n)));
        }
    }
    vec![
        Gauge {
            name: "faxhub_jobs_queued",
            help: "Jobs waiting for an attempt.",
            label_names: &[],
            series: one(app.dispatcher.queue_len() as f64),
        },
        Gauge {
            name: "faxhub_fax_servers_online",
            help: "Fax servers with a live link.",
            label_names: &[],
            series: one(app.dispatcher.online_fax_servers() as f64),
        },
        Gauge {
            name: "faxhub_jobs",
            help: "Jobs in the store by status.",
            label_names: &["status"],
            series: counts
                .iter()
                .map(|(status, n)| (vec![status.to_string()], *n as f64))
                .collect(),
        },
        Gauge {
            name: "faxhub_fax_server_up",
            help: "Whether the fax server's link is up (1) or not (0).",
            label_names: &["fax_server_id", "fax_server"],
            series: up,
        },
        Gauge {
            name: "faxhub_fax_server_line_ok",
            help: "Whether the fax server is up with its line usable (no line_status).",
            label_names: &["fax_server_id", "fax_server"],
            series: line_ok,
        },
        Gauge {
            name: "faxhub_fax_server_channels",
            help: "Channels of a fax server: configured, usable, sending, receiving, free.",
            label_names: &["fax_server_id", "fax_server", "state"],
            series: channels,
        },
    ]
}

async fn health() -> &'static str {
    "ok"
}

/// Readiness for a load balancer: the process is up (`/healthz`) and its database answers reads and
/// takes a write within 5 s; 503 naming the store otherwise.
async fn ready(State(app): State<AppState>) -> Response {
    match app.store.ready(std::time::Duration::from_secs(5)).await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!("not ready: {e}");
            ApiError::unavailable(format!("the store is not ready: {e}")).into_response()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "faxhub supervising server",
        version = "1",
        description = "Send and receive faxes through the supervising server. Authenticate with `Authorization: Bearer <token>`."
    ),
    paths(
        clients::login,
        clients::logout,
        clients::me,
        clients::create_client,
        clients::list_clients,
        clients::get_client,
        clients::patch_client,
        clients::delete_client,
        clients::set_password,
        clients::create_token,
        clients::list_tokens,
        clients::revoke_token,
        clients::add_grant,
        clients::remove_grant,
        clients::list_roles,
        clients::create_role,
        clients::delete_role,
        admin::create_grouping,
        admin::list_groupings,
        admin::get_grouping,
        admin::add_member,
        admin::remove_member,
        admin::create_fax_server,
        admin::list_fax_servers,
        admin::get_fax_server,
        admin::patch_fax_server,
        admin::revoke_fax_server,
        admin::delete_fax_server,
        admin::create_rule,
        admin::list_rules,
        admin::delete_rule,
        documents::upload,
        documents::download,
        jobs::submit,
        jobs::list,
        jobs::get_job,
        jobs::alter,
        jobs::cancel,
        jobs::resend,
        events::inbox,
        events::inbox_item,
        events::inbox_document,
        events::stream,
        events::create_webhook,
        events::list_webhooks,
        events::patch_webhook,
        events::rotate_secret,
        events::ping_webhook,
        events::redeliver,
        events::delete_webhook,
        events::deliveries,
        node::enroll,
        node::document,
        node::upload_inbound,
        settings::get,
        settings::put,
        settings::patch,
        settings::history,
        settings::changes,
        settings::rollback,
        audit::list,
        supervisor_settings::get,
        supervisor_settings::put,
        supervisor_settings::patch,
        supervisor_settings::history,
        supervisor_settings::rollback,
        phonebook::search,
        phonebook::create,
        phonebook::get,
        phonebook::patch,
        phonebook::delete,
        phonebook::import,
        phonebook::export,
    ),
    components(schemas(crate::api::error::ErrorBody, crate::api::error::ErrorDetail))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router(app: AppState) -> Router {
    // Uploads may be as large as the limit plus multipart framing; the limit itself is enforced while
    // streaming so that nothing over it is buffered or stored.
    let upload_limit = usize::try_from(app.config.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let uploads = Router::new()
        .route("/v1/documents", post(documents::upload))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/node/inbound-documents", post(node::upload_inbound))
        .route("/v1/phonebook/import", post(phonebook::import))
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(upload_limit));
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_on_api))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/sessions", post(clients::login).delete(clients::logout))
        .route("/v1/me", get(clients::me))
        .route(
            "/v1/clients",
            post(clients::create_client).get(clients::list_clients),
        )
        .route(
            "/v1/clients/{id}",
            get(clients::get_client)
                .patch(clients::patch_client)
                .delete(clients::delete_client),
        )
        .route("/v1/clients/{id}/password", put(clients::set_password))
        .route(
            "/v1/clients/{id}/tokens",
            post(clients::create_token).get(clients::list_tokens),
        )
        .route(
            "/v1/clients/{id}/tokens/{token_id}",
            delete(clients::revoke_token),
        )
        .route("/v1/clients/{id}/grants", post(clients::add_grant))
        .route(
            "/v1/clients/{id}/grants/{grant_id}",
            delete(clients::remove_grant),
        )
        .route(
            "/v1/roles",
            get(clients::list_roles).post(clients::create_role),
        )
        .route("/v1/roles/{id}", delete(clients::delete_role))
        .route(
            "/v1/groupings",
            post(admin::create_grouping).get(admin::list_groupings),
        )
        .route("/v1/groupings/{id}", get(admin::get_grouping))
        .route("/v1/groupings/{id}/members", put(admin::add_member))
        .route(
            "/v1/groupings/{id}/members/{kind}/{member_id}",
            delete(admin::remove_member),
        )
        .route(
            "/v1/fax-servers",
            post(admin::create_fax_server).get(admin::list_fax_servers),
        )
        .route(
            "/v1/fax-servers/{id}",
            get(admin::get_fax_server)
                .patch(admin::patch_fax_server)
                .delete(admin::delete_fax_server),
        )
        .route(
            "/v1/fax-servers/{id}/revoke",
            post(admin::revoke_fax_server),
        )
        .route(
            "/v1/fax-servers/{id}/settings",
            get(settings::get).put(settings::put).patch(settings::patch),
        )
        .route(
            "/v1/fax-servers/{id}/settings/history",
            get(settings::history),
        )
        .route("/v1/fax-servers/{id}/settings/diff", get(settings::changes))
        .route(
            "/v1/fax-servers/{id}/settings/rollback",
            post(settings::rollback),
        )
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/settings",
            get(supervisor_settings::get)
                .put(supervisor_settings::put)
                .patch(supervisor_settings::patch),
        )
        .route("/v1/settings/history", get(supervisor_settings::history))
        .route("/v1/settings/rollback", post(supervisor_settings::rollback))
        .route(
            "/v1/phonebook",
            get(phonebook::search).post(phonebook::create),
        )
        .route("/v1/phonebook/export", get(phonebook::export))
        .route(
            "/v1/phonebook/{id}",
            get(phonebook::get)
                .patch(phonebook::patch)
                .delete(phonebook::delete),
        )
        .route(
            "/v1/inbound-rules",
            post(admin::create_rule).get(admin::list_rules),
        )
        .route("/v1/inbound-rules/{id}", delete(admin::delete_rule))
        .route("/v1/documents/{sha256}", get(documents::download))
        .route("/v1/jobs/{id}", get(jobs::get_job).patch(jobs::alter))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/resend", post(jobs::resend))
        .route("/v1/inbox", get(events::inbox))
        .route("/v1/inbox/{id}", get(events::inbox_item))
        .route("/v1/inbox/{id}/document", get(events::inbox_document))
        .route("/v1/events", get(events::stream))
        .route(
            "/v1/webhooks",
            post(events::create_webhook).get(events::list_webhooks),
        )
        .route(
            "/v1/webhooks/{id}",
            delete(events::delete_webhook).patch(events::patch_webhook),
        )
        .route("/v1/webhooks/{id}/deliveries", get(events::deliveries))
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(events::rotate_secret),
        )
        .route("/v1/webhooks/{id}/ping", post(events::ping_webhook))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(events::redeliver),
        )
        .route("/v1/node/enroll", post(node::enroll))
        .route("/v1/node/documents/{sha256}", get(node::document))
        .route(protocol::LINK_PATH, get(node::link))
        .merge(uploads)
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(error_shape))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(app)
}

/// The separate metrics listener: `/metrics`, `/healthz` and `/readyz`, nothing of the API.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(app)
}

/// Headers every response carries (a handler's own value wins): no MIME sniffing, nothing stored by
/// caches (answers carry tokens, secrets and faxes), and no framing, scripts or other content in a browser
/// that opens an API URL.
async fn security_headers(mut resp: Response) -> Response {
    use axum::http::header;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}

/// Strict-Transport-Security, on responses of the HTTPS listener: a browser that reached the supervisor
/// over HTTPS uses nothing else for a year.
pub async fn hsts(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    resp
}

/// 201 with a JSON body.
/// 201 Created with the new resource's path in `Location` (RFC 9110 §15.3.2) and its representation.
pub fn created<T: Serialize>(location: &str, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location.to_owned())],
        Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema the document refers to is in it, the settings types from `protocol` included.
    #[test]
    fn the_openapi_document_resolves_every_reference() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r.to_owned());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in &found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(schemas.contains_key(name), "{r} is not in the document");
        }
        for name in [
            "FaxServerSettings",
            "SipTransport",
            "ReceiveResolution",
            "Secret",
        ] {
            assert!(schemas.contains_key(name), "{name} is described");
        }
        assert_eq!(
            schemas["SipTransport"]["enum"],
            serde_json::json!(["udp", "tcp"])
        );
    }
}
