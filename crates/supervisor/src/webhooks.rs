//! Webhook delivery: each event is POSTed as JSON, signed, retried with backoff, and every try is logged.
//! The signing secret of a webhook is derived from the server key, the webhook id and its generation (bumped
//! by a rotation), shown to its owner when it is made and never stored.
//!
//! Signing follows the Standard Webhooks specification, so integrators verify with its libraries:
//! `webhook-id` (the event's id, the same on every retry and redelivery), `webhook-timestamp` (Unix seconds
//! of this try) and `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the
//! key is the base64 after the secret's `whsec_` prefix; while a rotated-out secret still counts, a second
//! signature with it follows, space-separated. `User-Agent` names faxhub, `x-faxhub-event` the event type and
//! `x-faxhub-delivery` the delivery (for the delivery log).
//!
//! Each webhook with deliveries due has its own lane (a task) that sends at most `PER_WEBHOOK` of them at
//! once, so a slow or dead endpoint holds up only its own deliveries; `PER_CLIENT` and `IN_FLIGHT` bound
//! one client's share and the total. Within a webhook, concurrent deliveries may arrive out of order (the
//! event's `seq` orders them). Requests go only where `crate::egress` allows, redirects are not followed,
//! and the delivery log says how a try failed in the supervisor's words, never the endpoint's.

use crate::AppState;
use crate::egress::{
    self, AddressClass, AllowList, Destination, EgressError, GuardedResolver, Lookup,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Delivery, DeliveryStatus};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;

type HmacSha256 = Hmac<Sha256>;

/// Delays before the 2nd, 3rd, … try; after the last, the delivery is marked failed.
const BACKOFF_SECS: [i64; 8] = [1, 5, 30, 120, 600, 1800, 3600, 7200];

/// The secret of a webhook's `generation`: `whsec_` and 64 hex digits of an HMAC of the server key.
/// Standard Webhooks reads the part after `whsec_` as base64 (hex digits are base64 digits), so the key
/// is those 48 decoded bytes; generation 0 is the secret webhooks had before rotation existed.
pub fn secret_for(server_key: &[u8; 32], webhook_id: &str, generation: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(server_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"faxhub webhook secret\0");
    mac.update(webhook_id.as_bytes());
    if generation > 0 {
        mac.update(b"\0");
        mac.update(generation.to_string().as_bytes());
    }
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

/// One Standard Webhooks signature of a message: `v1,` and the base64 HMAC-SHA256 of
/// `"<msg_id>.<timestamp>.<body>"` under the secret's key (the base64 after `whsec_`; a secret that is not
/// base64 signs with its bytes, as the reference libraries do with raw keys).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mut mac = HmacSha256::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `webhook-signature` header of a webhook's delivery at `now` (ms): the signature with its secret,
/// and while a rotated-out secret still counts, one with that too.
fn signatures(
    server_key: &[u8; 32],
    hook: Secrets<'_>,
    now: i64,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = sign(
        &secret_for(server_key, hook.webhook_id, hook.generation),
        msg_id,
        timestamp,
        body,
    );
    if hook.generation > 0 && hook.previous_until.is_some_and(|t| now < t) {
        header.push(' ');
        header.push_str(&sign(
            &secret_for(server_key, hook.webhook_id, hook.generation - 1),
            msg_id,
            timestamp,
            body,
        ));
    }
    header
}

/// Which secrets of a webhook sign: its generation, and until when the one before still counts.
#[derive(Debug, Clone, Copy)]
struct Secrets<'a> {
    webhook_id: &'a str,
    generation: i64,
    previous_until: Option<i64>,
}

impl<'a> From<&'a store::Webhook> for Secrets<'a> {
    fn from(h: &'a store::Webhook) -> Self {
        Secrets {
            webhook_id: &h.id,
            generation: h.secret_generation,
            previous_until: h.previous_secret_until,
        }
    }
}

/// The `User-Agent` of webhook deliveries.
const USER_AGENT: &str = concat!("faxhub/", env!("CARGO_PKG_VERSION"), " (webhooks)");

/// Deliveries of one webhook in flight at once.
pub const PER_WEBHOOK: usize = 4;
/// Deliveries of one client in flight at once, over all its webhooks: no client takes every connection.
pub const PER_CLIENT: usize = 16;
/// Deliveries in flight at once in all.
pub const IN_FLIGHT: usize = 256;
/// The longest an endpoint may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between looks for retries that fell due (new events wake the worker at once).
const POLL: Duration = Duration::from_millis(500);

/// How a try failed, as the delivery log tells the webhook's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint answered with a status outside 2xx and 3xx.
    Status(u16),
    /// The endpoint answered with a redirect, which is not followed.
    Redirect(u16),
    /// Not sent: the URL reaches an address the allow-list bars.
    Refused(AddressClass),
    /// Not sent: the host does not resolve, or resolving failed.
    Unresolved,
    Timeout,
    Connect,
    Other,
}

impl Failure {
    fn of(e: &reqwest::Error) -> Self {
        if let Some(refused) = egress::find_in_chain(e) {
            return Self::from(refused);
        }
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }

    fn status(self) -> Option<u16> {
        match self {
            Self::Status(c) | Self::Redirect(c) => Some(c),
            _ => None,
        }
    }
}

impl From<&EgressError> for Failure {
    fn from(e: &EgressError) -> Self {
        match e {
            EgressError::RefusedLiteral { class, .. } | EgressError::RefusedName { class } => {
                Self::Refused(*class)
            }
            EgressError::Unresolved | EgressError::LookupFailed => Self::Unresolved,
            _ => Self::Other,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(c) => write!(f, "answered HTTP {c}"),
            Self::Redirect(c) => write!(
                f,
                "answered HTTP {c}, a redirect; redirects are not followed"
            ),
            Self::Refused(class) => write!(
                f,
                "not sent: the URL reaches a {class} address, which the supervisor's settings do not allow"
            ),
            Self::Unresolved => f.write_str("not sent: the host did not resolve"),
            Self::Timeout => write!(f, "no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            Self::Connect => f.write_str("could not connect"),
            Self::Other => f.write_str("the request failed"),
        }
    }
}

/// The running lanes, one per webhook with deliveries under way, and the shared bounds.
#[derive(Debug)]
pub struct Lanes {
    running: Mutex<HashMap<String, CancellationToken>>,
    clients: Mutex<HashMap<String, Arc<Semaphore>>>,
    total: Semaphore,
    /// The HTTP client and the allow-list it was made for.
    http: Mutex<Option<(AllowList, reqwest::Client)>>,
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
            clients: Mutex::default(),
            total: Semaphore::new(IN_FLIGHT),
            http: Mutex::default(),
        }
    }
}

impl Lanes {
    /// Stops a webhook's lane at once: its requests under way are dropped.
    pub fn cancel(&self, webhook_id: &str) {
        if let Some(token) = lock(&self.running).get(webhook_id) {
            token.cancel();
        }
    }

    /// A token for a new lane, or None when the webhook has one.
    fn start(&self, webhook_id: &str) -> Option<CancellationToken> {
        let mut running = lock(&self.running);
        if running.contains_key(webhook_id) {
            return None;
        }
        let token = CancellationToken::new();
        running.insert(webhook_id.to_owned(), token.clone());
        Some(token)
    }

    /// The HTTP client for this allow-list. A new list gets a new client: the old one's pooled
    /// connections were checked against the old list, and reusing one would skip the check.
    fn http(&self, allow: AllowList) -> reqwest::Result<reqwest::Client> {
        let mut http = lock(&self.http);
        if let Some((made_for, client)) = http.as_ref()
            && *made_for == allow
        {
            return Ok(client.clone());
        }
        let client = http_client(allow.clone())?;
        *http = Some((allow, client.clone()));
        Ok(client)
    }

    fn finish(&self, webhook_id: &str) {
        lock(&self.running).remove(webhook_id);
        // A client's bound is kept only while one of its lanes holds it.
        lock(&self.clients).retain(|_, s| Arc::strong_count(s) > 1);
    }

    fn client_permits(&self, client_id: &str) -> Arc<Semaphore> {
        lock(&self.clients)
            .entry(client_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_CLIENT)))
            .clone()
    }
}

#[derive(Debug, thiserror::Error)]
enum LaneError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the HTTP client could not be made: {0}")]
    Client(#[from] reqwest::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The HTTP client of deliveries: names resolve only to allowed addresses, no proxy (it would connect on
/// our behalf where nothing checks), no redirects (they could point anywhere).
fn http_client(allow: AllowList) -> reqwest::Result<reqwest::Client> {
    let resolver = GuardedResolver::new(Lookup::system(), move || allow.clone());
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
        .user_agent(concat!("faxhub-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub async fn run(app: AppState) {
    let mut events = app.events.subscribe();
    loop {
        if let Err(e) = round(&app).await {
            tracing::error!("webhook round failed: {e}");
        }
        tokio::select! {
            r = events.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    tokio::time::sleep(POLL).await;
                }
                // One round serves every commit told so far (a lagged receiver has missed some: the
                // round reads from the store anyway).
                while !matches!(
                    events.try_recv(),
                    Err(TryRecvError::Empty | TryRecvError::Closed)
                ) {}
            }
            _ = app.webhook_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Starts a lane for every webhook with deliveries due that has none.
async fn round(app: &AppState) -> store::Result<()> {
    if !app.store.any_webhooks() {
        // Deliveries are made for active webhooks only, and a deleted one's are cancelled.
        return Ok(());
    }
    for id in app
        .store
        .webhooks_with_due_deliveries(store::now_ms(), 10_000)
        .await?
    {
        if let Some(token) = app.webhook_lanes.start(&id) {
            tokio::spawn(lane(app.clone(), id, token));
        }
    }
    Ok(())
}

async fn lane(app: AppState, id: String, token: CancellationToken) {
    let drained = tokio::select! {
        r = drain(&app, &id) => r,
        _ = token.cancelled() => Ok(()),
    };
    app.webhook_lanes.finish(&id);
    match drained {
        // Deliveries that fell due while this lane was ending are taken by the next round, now.
        Ok(()) => app.webhook_wake.notify_one(),
        Err(e) => tracing::error!(webhook = %id, "webhook lane failed: {e}"),
    }
}

/// Sends a webhook's due deliveries, `PER_WEBHOOK` at a time, until none is due.
async fn drain(app: &AppState, id: &str) -> Result<(), LaneError> {
    loop {
        let Some(hook) = app.store.webhook(id).await?.filter(|h| h.active) else {
            return Ok(());
        };
        let batch = app
            .store
            .due_deliveries_of(id, store::now_ms(), PER_WEBHOOK as i64)
            .await?;
        if batch.is_empty() {
            return Ok(());
        }
        let permits = app.webhook_lanes.client_permits(&hook.client_id);
        let client = app
            .webhook_lanes
            .http(app.live.with(|s| s.webhooks.allow_list()))?;
        let tries = batch
            .into_iter()
            .map(|d| deliver(app, &client, &hook, d, &permits));
        for r in futures::future::join_all(tries).await {
            r?;
        }
    }
}

async fn deliver(
    app: &AppState,
    client: &reqwest::Client,
    hook: &store::Webhook,
    d: Delivery,
    permits: &Semaphore,
) -> store::Result<()> {
    let Some(event) = app.store.event(d.event_seq).await? else {
        return app
            .store
            .record_delivery_try(
                &d.id,
                None,
                Some("the event is no longer kept"),
                None,
                DeliveryStatus::Failed,
            )
            .await;
    };
    let body = serde_json::json!({
        "id": event.event_id, "seq": event.seq, "type": event.kind, "created_at": event.created_at,
        "data": event.payload.0,
    })
    .to_string();
    // The semaphores are never closed, so acquiring only waits.
    let _client = permits.acquire().await;
    let _total = app.webhook_lanes.total.acquire().await;
    let now = store::now_ms();
    let timestamp = now / 1000;
    let signature = signatures(
        &app.server_key,
        hook.into(),
        now,
        &event.event_id,
        timestamp,
        body.as_bytes(),
    );
    let request = async {
        let url = reqwest::Url::parse(&hook.url).map_err(|_| Failure::Other)?;
        // Names are checked by the resolver as each connection is made; literal addresses never reach it.
        if let Destination::Literal(ip) =
            egress::destination(&url).map_err(|e| Failure::from(&e))?
        {
            let allow = app.live.with(|s| s.webhooks.allow_list());
            egress::check_literal(&allow, ip).map_err(|e| Failure::from(&e))?;
        }
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", USER_AGENT)
            .header("webhook-id", &event.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-faxhub-event", &event.kind)
            .header("x-faxhub-delivery", &d.id)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // The URL may carry credentials: logged without it.
                let failure = Failure::of(&e);
                tracing::debug!(webhook = %hook.id, delivery = %d.id, "webhook request failed: {}", chain(&e.without_url()));
                failure
            })?;
        let code = r.status().as_u16();
        match code {
            200..=299 => Ok(code),
            300..=399 => Err(Failure::Redirect(code)),
            _ => Err(Failure::Status(code)),
        }
    };
    match request.await {
        Ok(code) => {
            app.metrics.webhook_deliveries.add(&["ok"], 1);
            app.store
                .record_delivery_try(&d.id, Some(code), None, None, DeliveryStatus::Delivered)
                .await
        }
        Err(failure) => {
            app.metrics.webhook_deliveries.add(&["failed"], 1);
            // d.attempts counts the tries before this one; the policy caps them all.
            let max_attempts = app.live.with(|s| i64::from(s.webhooks.max_attempts));
            let next = usize::try_from(d.attempts)
                .ok()
                .filter(|_| d.attempts + 1 < max_attempts)
                .and_then(|i| BACKOFF_SECS.get(i).or(BACKOFF_SECS.last()))
                .map(|s| now + s * 1000);
            app.store
                .record_delivery_try(
                    &d.id,
                    failure.status(),
                    Some(&failure.to_string()),
                    next,
                    DeliveryStatus::Failed,
                )
                .await
        }
    }
}

/// An error with its sources, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_keyed_by_server_key_webhook_and_generation() {
        let key = [7u8; 32];
        let s1 = secret_for(&key, "wh_1", 0);
        assert_eq!(s1, secret_for(&key, "wh_1", 0));
        assert_ne!(s1, secret_for(&key, "wh_2", 0));
        assert_ne!(s1, secret_for(&[8u8; 32], "wh_1", 0));
        assert_ne!(s1, secret_for(&key, "wh_1", 1));
        assert!(s1.starts_with("whsec_") && s1.len() == 6 + 64, "{s1}");
    }

    /// The Standard Webhooks test vector: what its libraries compute, we compute.
    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// After a rotation both secrets sign, until the overlap ends.
    #[test]
    fn a_rotated_out_secret_signs_too_until_its_time_is_up() {
        let key = [7u8; 32];
        let mut hook = Secrets {
            webhook_id: "wh_1",
            generation: 0,
            previous_until: None,
        };
        let one = signatures(&key, hook, 1000, "evt_1", 1, b"{}");
        assert_eq!(one, sign(&secret_for(&key, "wh_1", 0), "evt_1", 1, b"{}"));
        hook.generation = 1;
        hook.previous_until = Some(2000);
        let both = signatures(&key, hook, 1000, "evt_1", 1, b"{}");
        assert_eq!(
            both,
            format!(
                "{} {}",
                sign(&secret_for(&key, "wh_1", 1), "evt_1", 1, b"{}"),
                one
            )
        );
        let after = signatures(&key, hook, 2000, "evt_1", 1, b"{}");
        assert_eq!(after, sign(&secret_for(&key, "wh_1", 1), "evt_1", 1, b"{}"));
    }
}
