//! Webhooks (issue 14, section 3): deliveries reach only public addresses unless the supervisor's settings
//! allow a network, checked at registration and again at each delivery; no redirects; the delivery log in
//! the supervisor's words; deleting a webhook cancels what it had pending; one client's slow endpoints
//! delay nobody else. No test here makes the supervisor send anything outside the loopback range: internal
//! addresses are refused before a connection is made.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::harness::{Api, SupervisorProc, tiny_tiff};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Hit {
    path: String,
    at_ms: i64,
    body: Value,
}

/// A webhook endpoint on loopback. By path: `/slow/...` holds each request for 30 s, `/fail/...` answers
/// 503, `/redirect/...` answers 307 to `/target`, anything else 200. Every request is recorded on arrival.
struct Receiver {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Slow requests whose connection the supervisor closed before the answer.
    abandoned: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a slow request as abandoned when its handler is dropped before it answers.
struct Abandoned(Arc<std::sync::atomic::AtomicUsize>, bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Receiver {
    async fn start() -> Self {
        use axum::http::{StatusCode, Uri, header};
        use axum::response::IntoResponse;
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = hits.clone();
        let abandoned: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let dropped = abandoned.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let target = format!("{base}/target");
        let app = axum::Router::new().fallback(move |uri: Uri, body: String| {
            let seen = seen.clone();
            let target = target.clone();
            let dropped = dropped.clone();
            async move {
                let path = uri.path().to_owned();
                seen.lock().expect("hits").push(Hit {
                    path: path.clone(),
                    at_ms: now_ms(),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                });
                if path.starts_with("/slow/") {
                    let mut guard = Abandoned(dropped, false);
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    guard.1 = true;
                    StatusCode::OK.into_response()
                } else if path.starts_with("/fail/") {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "internal detail: db01 is down",
                    )
                        .into_response()
                } else if path.starts_with("/redirect/") {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                } else {
                    StatusCode::OK.into_response()
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            base,
            hits,
            abandoned,
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|h| h.path.starts_with(prefix))
            .count()
    }

    /// Waits (up to `within`) until `n` requests under `prefix` arrived; returns how many did.
    async fn wait_for(&self, prefix: &str, n: usize, within: Duration) -> usize {
        let until = Instant::now() + within;
        while self.count(prefix) < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count(prefix)
    }
}

/// A supervisor with a grouping holding one (never connected) fax server, so that clients can submit jobs
/// and so cause events; returns the supervisor and the grouping.
async fn supervisor(dir: &std::path::Path) -> (SupervisorProc, String) {
    let sup = SupervisorProc::start(dir, "").expect("supervisor");
    let admin = sup.admin();
    let g = admin
        .post("/v1/groupings", json!({"name": "hooks"}))
        .await
        .expect("grouping")
        .expect_status(201)
        .expect("201")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    admin
        .post(
            "/v1/fax-servers",
            json!({"name": "fs", "dial_prefixes": [], "groupings": [&g]}),
        )
        .await
        .expect("fax server")
        .expect_status(201)
        .expect("201");
    (sup, g)
}

/// `supervisor`, with webhooks to loopback allowed (the documented command) and a receiver there.
async fn loopback_allowed() -> (tempfile::TempDir, SupervisorProc, String, Receiver) {
    let dir = tempfile::tempdir().expect("dir");
    let (sup, g) = supervisor(dir.path()).await;
    sup.allow_loopback_webhooks().expect("documented command");
    (dir, sup, g, Receiver::start().await)
}

async fn client(sup: &SupervisorProc, name: &str, grouping: &str) -> Api {
    let c = sup
        .admin()
        .post(
            "/v1/clients",
            json!({"name": name, "kind": "application", "groupings": [grouping]}),
        )
        .await
        .expect("client")
        .expect_status(201)
        .expect("201");
    sup.admin().with_token(c["token"].as_str().expect("token"))
}

/// Submits one job per recipient: each commits a `job.queued` event for the client.
async fn submit(api: &Api, recipients: usize) {
    let doc = api
        .upload(tiny_tiff())
        .await
        .expect("upload")
        .expect_status(201)
        .expect("201");
    let to: Vec<String> = (0..recipients).map(|i| format!("+1555010{i:04}")).collect();
    api.post(
        "/v1/jobs",
        json!({"documents": [doc["sha256"]], "recipients": to}),
    )
    .await
    .expect("submit")
    .expect_status(201)
    .expect("201");
}

async fn hook(api: &Api, url: &str) -> String {
    api.post(
        "/v1/webhooks",
        json!({"url": url, "events": ["job.queued"]}),
    )
    .await
    .expect("hook")
    .expect_status(201)
    .expect("201")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The delivery log once `done` holds for its newest entry (or after 10 s).
async fn log_until(api: &Api, hook: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = api
            .get(&format!("/v1/webhooks/{hook}/deliveries"))
            .await
            .expect("log")
            .expect_status(200)
            .expect("200");
        if done(&log[0]) || Instant::now() > until {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_and_their_spellings_are_refused_at_registration() {
    let dir = tempfile::tempdir().expect("dir");
    let (sup, g) = supervisor(dir.path()).await;
    let app = client(&sup, "app", &g).await;
    for (url, class) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost:9/hook", "resolves to a loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://0x7f.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://0.0.0.0:8480/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0xa9fea9fe/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),
    ] {
        let r = app
            .post("/v1/webhooks", json!({"url": url}))
            .await
            .expect("post");
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (422, Some("url")),
            "{url}: {}",
            r.body
        );
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(class) && message.contains("webhooks.allowed_networks"),
            "{url}: {message}"
        );
    }
    for url in ["ftp://example.com/", "file:///etc/passwd", "not a url"] {
        let r = app
            .post("/v1/webhooks", json!({"url": url}))
            .await
            .expect("post");
        assert_eq!(r.status, 422, "{url}: {}", r.body);
    }
    let listed = app
        .get("/v1/webhooks")
        .await
        .expect("list")
        .expect_status(200)
        .expect("200");
    assert_eq!(listed, json!([]), "nothing refused was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_loopback_is_checked_again_at_each_delivery() {
    let (_dir, sup, g, rx) = loopback_allowed().await;
    let port = rx.base.rsplit(':').next().expect("port").to_owned();
    let app = client(&sup, "app", &g).await;
    // A name (through the resolver) and a literal address (checked before the request).
    let by_name = hook(&app, &format!("http://localhost:{port}/name")).await;
    let by_literal = hook(&app, &format!("{}/literal", rx.base)).await;
    submit(&app, 1).await;
    assert_eq!(rx.wait_for("/name", 1, Duration::from_secs(10)).await, 1);
    assert_eq!(rx.wait_for("/literal", 1, Duration::from_secs(10)).await, 1);

    // The operator closes loopback again: the registered webhooks are refused at delivery.
    sup.admin()
        .patch(
            "/v1/settings",
            json!({"webhooks": {"allowed_networks": []}}),
        )
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    submit(&app, 1).await;
    for id in [&by_name, &by_literal] {
        let log = log_until(&app, id, |d| {
            d["attempts"].as_i64() >= Some(1) && d["last_error"].is_string()
        })
        .await;
        let newest = &log[0];
        let error = newest["last_error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("not sent") && error.contains("loopback"),
            "{log}"
        );
        assert_eq!(newest["last_status"], Value::Null, "{log}");
        assert_eq!(log[1]["status"], "delivered", "{log}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (rx.count("/name"), rx.count("/literal")),
        (1, 1),
        "nothing reached the endpoint after loopback was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_the_log_keeps_to_its_own_words() {
    let (_dir, sup, g, rx) = loopback_allowed().await;
    let app = client(&sup, "app", &g).await;
    let redirect = hook(&app, &format!("{}/redirect/1", rx.base)).await;
    let failing = hook(&app, &format!("{}/fail/1", rx.base)).await;
    // A loopback port nobody listens on: the error must not tell a port scanner what it found.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let refused = hook(&app, &format!("http://127.0.0.1:{closed}/x")).await;
    submit(&app, 1).await;
    let tried = |d: &Value| d["attempts"].as_i64() >= Some(1);
    let log = log_until(&app, &redirect, tried).await;
    assert_eq!(
        (
            log[0]["last_status"].as_i64(),
            log[0]["last_error"].as_str()
        ),
        (
            Some(307),
            Some("answered HTTP 307, a redirect; redirects are not followed")
        ),
        "{log}"
    );
    let log = log_until(&app, &failing, tried).await;
    assert_eq!(
        (
            log[0]["last_status"].as_i64(),
            log[0]["last_error"].as_str()
        ),
        (Some(503), Some("answered HTTP 503")),
        "{log}"
    );
    let log = log_until(&app, &refused, tried).await;
    assert_eq!(
        (
            log[0]["last_status"].as_i64(),
            log[0]["last_error"].as_str()
        ),
        (None, Some("could not connect")),
        "{log}"
    );
    assert_eq!(rx.count("/target"), 0, "the redirect was not followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_webhook_cancels_its_pending_deliveries_and_frees_its_place() {
    let (_dir, sup, g, rx) = loopback_allowed().await;
    sup.admin()
        .patch("/v1/settings", json!({"webhooks": {"max_per_client": 1}}))
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    let app = client(&sup, "app", &g).await;
    let id = hook(&app, &format!("{}/fail/gone", rx.base)).await;
    submit(&app, 1).await;
    // The first try fails; the next is due a second later.
    assert_eq!(rx.wait_for("/fail/", 1, Duration::from_secs(10)).await, 1);
    app.delete(&format!("/v1/webhooks/{id}"))
        .await
        .expect("delete")
        .expect_status(204)
        .expect("204");
    let log = log_until(&app, &id, |d| d["status"] == "cancelled").await;
    assert_eq!(log[0]["status"], "cancelled", "{log}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.count("/fail/"), 1, "no retry after the deletion");
    assert_eq!(
        log_until(&app, &id, |_| true).await[0]["status"],
        "cancelled"
    );
    // Regression: deleted webhooks counted against the client's allowance for ever.
    let slow = hook(&app, &format!("{}/slow/held", rx.base)).await;
    submit(&app, 1).await;
    assert_eq!(rx.wait_for("/slow/", 1, Duration::from_secs(10)).await, 1);
    // Deleting it drops the delivery under way at once (the supervisor would wait 10 s for an answer).
    app.delete(&format!("/v1/webhooks/{slow}"))
        .await
        .expect("delete")
        .expect_status(204)
        .expect("204");
    let until = Instant::now() + Duration::from_secs(3);
    while rx.abandoned.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        rx.abandoned.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the request under way was dropped"
    );
    let log = log_until(&app, &slow, |d| d["status"] == "cancelled").await;
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_i64()),
        (Some("cancelled"), Some(0)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_a_bounded_number_of_deliveries_at_once() {
    let (_dir, sup, g, rx) = loopback_allowed().await;
    let app = client(&sup, "app", &g).await;
    hook(&app, &format!("{}/slow/one", rx.base)).await;
    submit(&app, 8).await;
    // Four at once (the per-webhook bound), the rest waiting for them.
    assert_eq!(rx.wait_for("/slow/", 4, Duration::from_secs(10)).await, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rx.count("/slow/"),
        4,
        "at most four deliveries of a webhook at once"
    );
}

/// Issue 14: ten slow webhooks of one client must not hold up a second client's event. Measured at the
/// receiving end, from the event's creation to its arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_slow_webhooks_delay_no_other_client() {
    let (_dir, sup, g, rx) = loopback_allowed().await;
    let slow = client(&sup, "slow", &g).await;
    let quick = client(&sup, "quick", &g).await;
    for i in 0..10 {
        hook(&slow, &format!("{}/slow/{i}", rx.base)).await;
    }
    hook(&quick, &format!("{}/quick", rx.base)).await;
    submit(&slow, 1).await;
    assert_eq!(
        rx.wait_for("/slow/", 10, Duration::from_secs(5)).await,
        10,
        "all ten slow endpoints are being delivered to at once"
    );
    submit(&quick, 1).await;
    assert_eq!(rx.wait_for("/quick", 1, Duration::from_secs(20)).await, 1);
    let hits = rx.hits.lock().expect("hits");
    let quick_hit = hits.iter().find(|h| h.path == "/quick").expect("quick");
    let created = quick_hit.body["created_at"].as_i64().expect("created_at");
    let latency = quick_hit.at_ms - created;
    assert!(
        (0..1000).contains(&latency),
        "the second client's event arrived {latency} ms after it was created"
    );
    let slowest_start = hits
        .iter()
        .filter(|h| h.path.starts_with("/slow/"))
        .map(|h| h.at_ms)
        .max()
        .expect("slow");
    // The supervisor gives an endpoint 10 s: the slow deliveries were all still under way.
    assert!(
        quick_hit.at_ms < slowest_start + 10_000,
        "the slow deliveries had ended before the second client's event"
    );
    eprintln!("second client's webhook latency with ten slow endpoints busy: {latency} ms");
}

/// The `faxhub webhooks` commands, and the refusal as the command line shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_command_adds_edits_pings_rotates_redelivers_and_removes() {
    let dir = tempfile::tempdir().expect("dir");
    let (sup, g) = supervisor(dir.path()).await;
    let rx = Receiver::start().await;
    let app = client(&sup, "app", &g).await;
    let config = dir.path().join("app-client.toml");
    let faxhub = |args: &[&str]| testkit::harness::faxhub_cli(&config, &[], args);
    let (ok, out) = faxhub(&["login", "--url", &sup.url, "--token", &app.token]);
    assert!(ok, "{out}");
    let url = format!("{}/cli", rx.base);
    let (ok, out) = faxhub(&["webhooks", "add", &url, "--event", "job.*"]);
    assert!(
        !ok && out.contains("loopback") && out.contains("webhooks.allowed_networks"),
        "{out}"
    );
    sup.allow_loopback_webhooks().expect("documented command");
    let (ok, out) = faxhub(&["webhooks", "add", &url, "--event", "job.*"]);
    assert!(
        ok && out.contains("signing secret (shown once): whsec_"),
        "{out}"
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("webhook "))
        .expect("id")
        .trim()
        .to_owned();
    let (ok, out) = faxhub(&["webhooks", "list"]);
    assert!(ok && out.contains(&id) && out.contains(&url), "{out}");
    submit(&app, 1).await;
    assert_eq!(rx.wait_for("/cli", 1, Duration::from_secs(10)).await, 1);
    log_until(&app, &id, |d| d["status"] == "delivered").await;
    let (ok, out) = faxhub(&["webhooks", "deliveries", &id]);
    assert!(ok && out.contains("delivered"), "{out}");
    let delivery = out
        .split_whitespace()
        .find(|w| w.starts_with("dlv_"))
        .expect("a delivery id")
        .to_owned();
    let (ok, out) = faxhub(&["webhooks", "redeliver", &id, &delivery]);
    assert!(ok && out.contains("pending again"), "{out}");
    assert_eq!(rx.wait_for("/cli", 2, Duration::from_secs(10)).await, 2);
    let (ok, out) = faxhub(&["webhooks", "ping", &id]);
    assert!(ok && out.contains("ping queued"), "{out}");
    assert_eq!(rx.wait_for("/cli", 3, Duration::from_secs(10)).await, 3);
    let (ok, out) = faxhub(&["webhooks", "rotate-secret", &id, "--overlap", "60"]);
    assert!(
        ok && out.contains("new signing secret (shown once): whsec_")
            && out.contains("also signs until"),
        "{out}"
    );
    let (ok, out) = faxhub(&["webhooks", "edit", &id, "--event", "inbound.*"]);
    assert!(ok && out.contains("inbound.*"), "{out}");
    let (ok, out) = faxhub(&["webhooks", "rm", &id]);
    assert!(ok, "{out}");
    let (ok, out) = faxhub(&["webhooks", "list"]);
    assert!(ok && out.contains("deleted"), "{out}");
}
