//! Starting the supervising server: the store, the bootstrap administrator, the workers (dispatcher,
//! watchdog, webhooks) and the listeners (HTTPS with rustls; plain HTTP for loopback; an optional metrics
//! listener).

use crate::access::Access;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::docstore::DocStore;
use crate::metrics::Metrics;
use crate::{AppState, api, auth, tls};
use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use store::{ClientKind, MemberKind, Store};
use tokio::net::TcpListener;
use tower::Service;

/// Credentials of the bootstrap administrator, made on first start and shown once.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub name: String,
    pub password: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Supervisor;

/// A started supervisor.
#[derive(Debug)]
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// The separate metrics listener, when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub bootstrap: Option<Bootstrap>,
    pub state: AppState,
    /// PEM of the certificate the HTTPS listener presents, for clients to pin in development.
    pub tls_cert_pem: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Waits until a listener task ends (it normally never does).
    pub async fn wait(mut self) {
        if let Some(t) = self.tasks.pop() {
            let _ = t.await;
        }
    }
}

/// Installs ring as the process's TLS crypto provider (reqwest and tungstenite use the process default).
/// Safe to call more than once.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Creates the database file owner-only before SQLite does (it gives its WAL and shared-memory files the
/// database file's mode), and tightens the files of an older data directory.
fn private_database(db: &std::path::Path) -> std::io::Result<()> {
    if !db.exists() {
        at_rest::create_file(db)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        at_rest::tighten_file(std::path::Path::new(&p))?;
    }
    Ok(())
}

async fn bootstrap(store: &Store, config: &Config) -> anyhow::Result<Option<Bootstrap>> {
    if store.count_clients().await? > 0 {
        return Ok(None);
    }
    let password = auth::new_secret("pw");
    let hash =
        auth::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    let admin = store
        .create_client(store::NewClient {
            name: &config.bootstrap_admin,
            kind: ClientKind::Person,
            password_hash: Some(&hash),
            groupings: &[],
            grants: &[(crate::competence::ADMINISTRATOR, "all", "")],
            granted_by: None,
        })
        .await?;
    let token = auth::new_secret("fxh");
    store
        .create_token(store::NewToken {
            client_id: &admin.id,
            token_hash: &auth::hash_secret(&token),
            label: "bootstrap",
            expires_at: None,
            created_by: None,
            session: false,
        })
        .await?;
    let grouping = store.create_grouping("default").await?;
    store
        .add_grouping_member(&grouping.id, MemberKind::Client, &admin.id)
        .await?;
    Ok(Some(Bootstrap {
        name: admin.name,
        password,
        token,
    }))
}

impl Supervisor {
    pub async fn start(config: Config) -> anyhow::Result<Running> {
        install_crypto();
        for warning in config.check_transport()? {
            tracing::warn!("{warning}");
        }
        let config = Arc::new(config);
        // The database, documents, server key and TLS key are the owner's alone.
        at_rest::private_dir(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let db_path = config.data_dir.join("faxhub.db");
        private_database(&db_path)
            .with_context(|| format!("making {} private", db_path.display()))?;
        let store = Store::open(&db_path)
            .await
            .with_context(|| format!("opening {}", db_path.display()))?;
        let checks =
            crate::docstore::Checks::per_core(config.check_memory_mib.saturating_mul(1 << 20));
        let docs = DocStore::open(crate::docstore::root_of(&config.data_dir), checks)
            .context("opening the document store")?;
        let server_key = Arc::new(at_rest::load_or_make_key(
            &config.data_dir.join("server.key"),
        )?);
        let bootstrap = bootstrap(&store, &config).await?;
        let access = Arc::new(Access::default());
        access.reload(&store).await?;
        let metrics = Arc::new(Metrics::default());
        let live = Arc::new(crate::supervisor_settings::Live::new(
            crate::api::supervisor_settings::load(&store, &config).await?,
        ));
        let dispatcher = Dispatcher::new(
            store.clone(),
            config.clone(),
            access.clone(),
            metrics.clone(),
            live.clone(),
        );
        dispatcher.restore().await?;
        let phonebook = Arc::new(crate::phonebook::Phonebook::load(&store).await?);
        let state = AppState {
            phonebook,
            live,
            retention_wake: Arc::new(tokio::sync::Notify::new()),
            credentials: Arc::new(crate::auth::Credentials::default()),
            intake: crate::intake::Intake::start(store.clone()),
            sealer: crate::settings::Sealer::new(&server_key),
            store,
            config: config.clone(),
            access,
            dispatcher: dispatcher.clone(),
            docs,
            metrics,
            server_key,
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            webhook_lanes: Arc::default(),
            streams: Arc::default(),
        };
        let mut tasks = vec![
            tokio::spawn(dispatcher.clone().run()),
            tokio::spawn(dispatcher.clone().run_watchdog()),
            tokio::spawn(crate::webhooks::run(state.clone())),
            tokio::spawn(crate::retention::run(state.clone())),
        ];
        let router = api::router(state.clone());
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_listen {
            let (bound, task) = serve_plain(
                addr,
                api::metrics_router(state.clone()),
                "the metrics listener",
            )
            .await?;
            metrics_addr = Some(bound);
            tasks.push(task);
        }
        let mut http_addr = None;
        if let Some(addr) = config.http_listen {
            let (bound, task) = serve_plain(addr, router.clone(), "HTTP").await?;
            http_addr = Some(bound);
            tasks.push(task);
        }
        let mut https_addr = None;
        let mut tls_cert_pem = None;
        if let Some(addr) = config.https_listen {
            let (cert, key) = match (&config.tls_cert, &config.tls_key) {
                (Some(c), Some(k)) => (c.clone(), k.clone()),
                (None, None) => {
                    let made = tls::ensure_self_signed(
                        &config.data_dir,
                        &config.tls_names,
                        time::OffsetDateTime::now_utc(),
                    )?;
                    tracing::info!(
                        "HTTPS with the self-signed certificate {} (clients pin it: faxhub login --ca-cert, faxhub node --ca-cert)",
                        made.0.display()
                    );
                    made
                }
                _ => anyhow::bail!(
                    "tls_cert and tls_key go together: set both, or neither for a self-signed certificate"
                ),
            };
            tls_cert_pem = std::fs::read_to_string(&cert).ok();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&cert, &key)?);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding HTTPS to {addr}"))?;
            https_addr = Some(listener.local_addr()?);
            tasks.push(tokio::spawn(serve_tls(
                listener,
                acceptor,
                router.layer(axum::middleware::map_response(api::hsts)),
            )));
        }
        if let Some(addr) = http_addr {
            tracing::info!("supervisor listening on http://{addr}");
        }
        if let Some(addr) = https_addr {
            tracing::info!("supervisor listening on https://{addr}");
        }
        if let Some(addr) = metrics_addr {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        Ok(Running {
            http_addr,
            https_addr,
            metrics_addr,
            bootstrap,
            state,
            tls_cert_pem,
            tasks,
        })
    }
}

/// A plain HTTP listener serving `app`; `what` names it in errors.
async fn serve_plain(
    addr: SocketAddr,
    app: axum::Router,
    what: &'static str,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} to {addr}"))?;
    let bound = listener.local_addr()?;
    // Small messages (link frames, API answers) must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        // The peer address reaches handlers (the sign-in throttle counts by address).
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("{what} failed: {e}");
        }
    });
    Ok((bound, task))
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    router.clone().call(req)
                });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
