//! Transport (issue 14, section 7): HTTPS with a generated certificate of sane validity and a private key,
//! plain HTTP only on loopback unless the configuration insists (with a warning), security headers on every
//! response, and `/metrics` behind a token or on a listener of its own.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::harness::{Proc, faxhub_bin, free_port};

/// A `faxhub serve` started from a configuration of the test's own (the harness fixes the listeners).
struct Served {
    _proc: Proc,
    http: Option<String>,
    https: Option<String>,
    metrics: Option<String>,
    password: String,
    data: PathBuf,
}

fn serve(dir: &Path, toml: &str) -> Served {
    let data = dir.join("data");
    let config = dir.join("supervisor.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n{toml}", data.display().to_string()),
    )
    .expect("config");
    let mut child = Command::new(faxhub_bin().expect("faxhub"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("FAXHUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("faxhub serve");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc::new(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut served = Served {
        _proc: proc,
        http: None,
        https: None,
        metrics: None,
        password: String::new(),
        data,
    };
    let until = Instant::now() + Duration::from_secs(30);
    // The bootstrap administrator's lines come last on a first start.
    while served.password.is_empty() {
        let line = rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .expect("faxhub serve announced itself");
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("API: ") {
            let base = rest.split("/v1").next().unwrap_or_default().to_owned();
            if base.starts_with("https://") {
                served.https = Some(base);
            } else {
                served.http = Some(base);
            }
        } else if let Some(m) = line.strip_prefix("metrics: ") {
            served.metrics = Some(m.trim_end_matches("/metrics").to_owned());
        } else if line.starts_with("bootstrap administrator") {
            // Its credentials are in the data directory, not on the console.
            assert!(!line.contains("password:"), "{line}");
            (_, served.password) = testkit::harness::bootstrap_credentials(&served.data)
                .expect("the bootstrap credentials file");
        }
    }
    served
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A client that trusts only the supervisor's certificate, as `faxhub node --ca-cert` does.
fn pinned_client(cert: &Path) -> reqwest::Client {
    let tls = node::tls_client_config(Some(cert)).expect("tls");
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_generated_certificate_of_sane_validity_and_a_private_key() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let s = serve(
        dir.path(),
        &format!("http_listen = \"off\"\nhttps_listen = \"127.0.0.1:{port}\""),
    );
    let https = s.https.clone().expect("an HTTPS listener");
    assert_eq!(s.http, None);
    let tls = s.data.join("tls");
    assert_eq!(
        mode(&tls.join("key.pem")),
        0o600,
        "the key is the owner's alone"
    );
    assert_eq!(mode(&tls), 0o700);
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(tls.join("cert.pem")).expect("cert");
    let (from, until) = supervisor::tls::validity(&der).expect("validity");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(from <= now, "valid now");
    let days = (until - now) / 86_400;
    assert!(
        (365..=398).contains(&days),
        "a self-signed certificate valid for about a year, not {days} days"
    );
    let r = pinned_client(&tls.join("cert.pem"))
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("HTTPS with the generated certificate");
    assert_eq!(r.status(), 200);
}

#[test]
fn plain_http_beyond_loopback_is_refused_unless_the_configuration_insists() {
    // 192.0.2.1 (TEST-NET-1) is no local address: even when allowed, nothing can bind there.
    let run = |extra: &str| {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("supervisor.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nhttps_listen = \"off\"\nhttp_listen = \"192.0.2.1:{}\"\n{extra}",
                dir.path().join("data").display().to_string(),
                free_port()
            ),
        )
        .expect("config");
        let out = Command::new(faxhub_bin().expect("faxhub"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("FAXHUB_LOG", "warn")
            .env("NO_COLOR", "1")
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run("");
    assert!(!ok, "refused");
    assert!(
        err.contains("not a loopback address") && err.contains("allow_plain_http"),
        "{err}"
    );
    let (ok, err) = run("allow_plain_http = true");
    assert!(!ok, "192.0.2.1 cannot be bound");
    assert!(
        err.contains("WARN") && err.contains("in the clear"),
        "the configuration insisted, so a warning: {err}"
    );
    assert!(err.contains("binding HTTP to 192.0.2.1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().expect("dir");
    let s = serve(
        dir.path(),
        &format!(
            "http_listen = \"127.0.0.1:{}\"\nhttps_listen = \"127.0.0.1:{}\"",
            free_port(),
            free_port()
        ),
    );
    let http = s.http.clone().expect("http");
    let https = s.https.clone().expect("https");
    let plain = http_client();
    let pinned = pinned_client(&s.data.join("tls/cert.pem"));
    let check = |r: &reqwest::Response, hsts: bool, what: &str| {
        let h = r.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(get("cache-control"), "no-store", "{what}");
        assert_eq!(get("x-frame-options"), "DENY", "{what}");
        assert!(
            get("content-security-policy").contains("default-src 'none'")
                && get("content-security-policy").contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(
            get("strict-transport-security"),
            if hsts { "max-age=31536000" } else { "" },
            "{what}"
        );
    };
    for (client, base, hsts) in [(&plain, &http, false), (&pinned, &https, true)] {
        for (path, status) in [
            ("/healthz", 200),
            ("/readyz", 200),
            ("/v1/me", 401),
            ("/v1/nothing", 404),
            ("/v1/openapi.json", 200),
        ] {
            let r = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect(path);
            assert_eq!(r.status(), status, "{path}");
            check(&r, hsts, path);
        }
        // The answer that carries a credential.
        let r = client
            .post(format!("{base}/v1/sessions"))
            .json(&serde_json::json!({"name": "admin", "password": s.password}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 201);
        check(&r, hsts, "login");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_their_token_or_their_own_listener() {
    const TOKEN: &str = "0123456789abcdef-metrics";
    let client = http_client();
    let get = |url: String, token: Option<&'static str>| {
        let mut r = client.get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let resp = r.send().await.expect("get");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };

    // A token: required on the API listener.
    let dir = tempfile::tempdir().expect("dir");
    let s = serve(
        dir.path(),
        &format!(
            "http_listen = \"127.0.0.1:{}\"\nhttps_listen = \"off\"\nmetrics_token = \"{TOKEN}\"",
            free_port()
        ),
    );
    let api = s.http.clone().expect("http");
    assert_eq!(get(format!("{api}/metrics"), None).await.0, 401);
    assert_eq!(
        get(format!("{api}/metrics"), Some("0123456789abcdef-metricz"))
            .await
            .0,
        401
    );
    let (status, body) = get(format!("{api}/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("faxhub_jobs_queued"), "{body}");
    drop(s);

    // A listener of its own (with the token): the API listener no longer serves metrics.
    let dir = tempfile::tempdir().expect("dir");
    let s = serve(
        dir.path(),
        &format!(
            "http_listen = \"127.0.0.1:{}\"\nhttps_listen = \"off\"\nmetrics_listen = \"127.0.0.1:{}\"\nmetrics_token = \"{TOKEN}\"",
            free_port(),
            free_port()
        ),
    );
    let api = s.http.clone().expect("http");
    let metrics = s.metrics.clone().expect("metrics listener");
    let (status, body) = get(format!("{api}/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 404);
    assert!(body.contains("metrics_listen"), "{body}");
    assert_eq!(get(format!("{metrics}/metrics"), None).await.0, 401);
    let (status, body) = get(format!("{metrics}/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("faxhub_jobs_queued"), "{body}");
    assert_eq!(
        get(format!("{metrics}/v1/me"), Some(TOKEN)).await.0,
        404,
        "nothing of the API on the metrics listener"
    );
    drop(s);

    // Neither: metrics are off, and the answer says how to turn them on.
    let dir = tempfile::tempdir().expect("dir");
    let s = serve(
        dir.path(),
        &format!(
            "http_listen = \"127.0.0.1:{}\"\nhttps_listen = \"off\"",
            free_port()
        ),
    );
    let api = s.http.clone().expect("http");
    let (status, body) = get(format!("{api}/metrics"), None).await;
    assert_eq!(status, 404);
    assert!(body.contains("metrics_token"), "{body}");
}

/// Waits until the server closes `tcp` (end of stream or reset), reading and dropping what it sends;
/// the time it took, or how long it stayed open.
async fn closed_by_server(
    mut tcp: tokio::net::TcpStream,
    within: Duration,
) -> Result<Duration, String> {
    use tokio::io::AsyncReadExt;
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((t0 + within).into(), tcp.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {within:?}")),
            Ok(Ok(0) | Err(_)) => return Ok(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A TLS connection to `port` (pinned to `cert`, HTTP/1.1 by ALPN) that sends `text` and then nothing:
/// how long until the server closes it.
fn tls_closed_by_server(
    port: u16,
    cert: &Path,
    text: &'static [u8],
    within: Duration,
) -> Result<Duration, String> {
    use std::io::{Read, Write};
    let mut config = (*node::tls_client_config(Some(cert)).expect("tls")).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(within)).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(text)
        .and_then(|()| tls.flush())
        .map_err(|e| format!("the handshake or the write failed: {e}"))?;
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(t0.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("still open after {within:?}"));
            }
            Err(_) => return Ok(t0.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed_while_healthz_answers() {
    // Review finding M2 (slowloris): no handshake or header timeout, so such connections stayed forever.
    let dir = tempfile::tempdir().expect("dir");
    let (http_port, https_port) = (free_port(), free_port());
    let s = serve(
        dir.path(),
        &format!(
            "http_listen = \"127.0.0.1:{http_port}\"\nhttps_listen = \"127.0.0.1:{https_port}\"\n\
             [connections]\nhandshake_secs = 2\nheader_secs = 2"
        ),
    );
    let https = s.https.clone().expect("https");
    let http = s.http.clone().expect("http");
    let cert = s.data.join("tls/cert.pem");
    // Timeouts of 2 s; a generous bound, so a busy machine does not matter.
    let within = Duration::from_secs(20);

    let mut silent = Vec::new();
    for _ in 0..50 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https_port))
            .await
            .expect("connect");
        silent.push(tokio::spawn(closed_by_server(tcp, within)));
    }
    let mut plain_partial = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut plain_partial,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    )
    .await
    .expect("write");
    let plain_partial = tokio::spawn(closed_by_server(plain_partial, within));
    let tls_partial = {
        let cert = cert.clone();
        tokio::task::spawn_blocking(move || {
            tls_closed_by_server(
                https_port,
                &cert,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                within,
            )
        })
    };
    let tls_quiet = {
        let cert = cert.clone();
        tokio::task::spawn_blocking(move || tls_closed_by_server(https_port, &cert, b"", within))
    };

    // Meanwhile the supervisor answers, on both listeners.
    let pinned = pinned_client(&cert);
    let plain = http_client();
    for (client, base) in [(&pinned, &https), (&plain, &http)] {
        let r = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz while slow connections are open");
        assert_eq!(r.status(), 200, "{base}");
    }

    for (i, t) in silent.into_iter().enumerate() {
        let took = t.await.expect("task");
        assert!(took.is_ok(), "silent TCP connection {i}: {took:?}");
    }
    let took = plain_partial.await.expect("task");
    assert!(took.is_ok(), "plain HTTP, a partial header: {took:?}");
    let took = tls_partial.await.expect("task");
    assert!(took.is_ok(), "TLS, a partial header: {took:?}");
    let took = tls_quiet.await.expect("task");
    assert!(took.is_ok(), "TLS, no request at all: {took:?}");

    let r = pinned
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("healthz afterwards");
    assert_eq!(r.status(), 200);
}
