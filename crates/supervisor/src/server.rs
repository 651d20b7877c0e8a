//! Starting the supervising server: the store, the bootstrap administrator, the workers (dispatcher,
//! watchdog, webhooks) and the listeners (HTTPS with rustls; plain HTTP for loopback; an optional metrics
//! listener).

use crate::access::Access;
use crate::config::{Config, ConnectionConfig};
use crate::dispatch::Dispatcher;
use crate::docstore::DocStore;
use crate::metrics::Metrics;
use crate::{AppState, api, auth, tls};
use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use store::{ClientKind, MemberKind, Store};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Credentials of the bootstrap administrator, made on first start and shown once.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub name: String,
    pub password: String,
    pub token: String,
    /// The owner-only file in the data directory that holds these (the only place `faxhub serve` puts the
    /// password: what it prints goes to the service's log).
    pub file: std::path::PathBuf,
}

/// The bootstrap administrator's credentials, in the data directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.txt";

/// The lock file a running supervisor holds in its data directory.
pub const LOCK_FILE: &str = "faxhub.lock";

/// Holds the data directory for this process (until the file is closed, at exit at the latest): a second
/// supervisor on the same database would dispatch the same jobs a second time.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            };
            anyhow::bail!(
                "the data directory {} is in use by another faxhub supervisor{by}; stop it, or give this one \
                 another data directory",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
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
    /// The listeners (each ends true when its connections closed in time after a stop).
    tasks: Vec<tokio::task::JoinHandle<bool>>,
    /// The dispatcher, its watchdog, webhook delivery and retention.
    workers: Vec<tokio::task::JoinHandle<()>>,
    /// The data directory's lock, held while this value lives.
    _lock: std::fs::File,
}

/// What a graceful stop left undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Listeners whose connections were still open when the grace time ran out (and were closed).
    pub listeners_cut: usize,
}

impl Running {
    /// Stops everything at once, as a crash would.
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        for w in &self.workers {
            w.abort();
        }
    }

    /// Waits until a listener task ends (it normally never does).
    pub async fn wait(&mut self) {
        if let Some(t) = self.tasks.last_mut() {
            let _ = t.await;
        }
    }

    /// Stops gracefully (SIGTERM, Ctrl-C): the listeners take no new connection; the requests under way
    /// finish, within `connections.shutdown_secs`; event streams end (their clients resume by id on the
    /// next start) and fax server links say goodbye (the fax servers reconnect when the supervisor is
    /// back, and resend what was not acknowledged). Then the workers stop between their writes, the store
    /// is closed (its log checkpointed) and the data directory's lock released.
    pub async fn stop(self) -> Stopped {
        self.state.stopping.cancel();
        let grace = self.state.config.connections.shutdown();
        let mut listeners_cut = 0;
        for t in self.tasks {
            // Each listener waits for its connections, within the grace time; past it, a margin.
            match tokio::time::timeout(grace + Duration::from_secs(1), t).await {
                Ok(Ok(true)) => {}
                _ => listeners_cut += 1,
            }
        }
        for w in &self.workers {
            w.abort();
        }
        for w in self.workers {
            let _ = w.await;
        }
        self.state.store.close().await;
        tracing::info!(listeners_cut, "supervisor stopped");
        Stopped { listeners_cut }
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
    let token = auth::new_secret("fxh");
    // Kept before the administrator exists: credentials that were never written would lock everyone out.
    let file = config.data_dir.join(BOOTSTRAP_FILE);
    let text = format!(
        "# The first administrator of this faxhub supervisor, created at {}.\n\
         # Sign in with it (faxhub login --name {name}), change the password, then delete this file.\n\
         name: {name}\npassword: {password}\ntoken: {token}\n",
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        name = config.bootstrap_admin,
    );
    at_rest::write_file(&file, text.as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
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
        file,
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
        let lock = lock_data_dir(&config.data_dir)?;
        let db_path = config.data_dir.join("faxhub.db");
        private_database(&db_path)
            .with_context(|| format!("making {} private", db_path.display()))?;
        let store = Store::open(&db_path)
            .await
            .with_context(|| format!("opening {}", db_path.display()))?;
        let checks =
            crate::docstore::Checks::per_core(config.check_memory_mib.saturating_mul(1 << 20));
        let docs = DocStore::open(crate::docstore::root_of(&config.data_dir), checks)
            .context("opening the document store")?
            .with_ghostscript(&config.ghostscript);
        let server_key = Arc::new(at_rest::load_or_make_key(
            &config.data_dir.join("server.key"),
        )?);
        let bootstrap = bootstrap(&store, &config).await?;
        let access = Arc::new(Access::default());
        access.reload(&store).await?;
        let metrics = Arc::new(Metrics::default());
        let live = Arc::new(crate::supervisor_settings::Live::new(
            crate::supervisor_settings::load(&store, &config).await?,
        ));
        let events = crate::events::EventBus::default();
        let dispatcher = Dispatcher::new(
            store.clone(),
            config.clone(),
            access.clone(),
            metrics.clone(),
            live.clone(),
            events.clone(),
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
            events,
            docs,
            metrics,
            server_key,
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            webhook_lanes: Arc::default(),
            streams: Default::default(),
            stopping: CancellationToken::new(),
        };
        let workers = vec![
            tokio::spawn(dispatcher.clone().run()),
            tokio::spawn(dispatcher.clone().run_watchdog()),
            tokio::spawn(crate::webhooks::run(state.clone())),
            tokio::spawn(crate::retention::run(state.clone())),
        ];
        let mut tasks = Vec::new();
        let stop = state.stopping.clone();
        let router = api::router(state.clone());
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_listen {
            let (bound, task) = serve_plain(
                addr,
                api::metrics_router(state.clone()),
                &config.connections,
                "the metrics listener",
                stop.clone(),
            )
            .await?;
            metrics_addr = Some(bound);
            tasks.push(task);
        }
        let mut http_addr = None;
        if let Some(addr) = config.http_listen {
            let (bound, task) = serve_plain(
                addr,
                router.clone(),
                &config.connections,
                "HTTP",
                stop.clone(),
            )
            .await?;
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
            tasks.push(tokio::spawn(serve(
                listener,
                Some(acceptor),
                router.layer(axum::middleware::map_response(api::hsts)),
                config.connections.clone(),
                "HTTPS",
                stop.clone(),
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
            workers,
            _lock: lock,
        })
    }
}

/// A plain HTTP listener serving `app`; `what` names it in errors.
async fn serve_plain(
    addr: SocketAddr,
    app: axum::Router,
    limits: &ConnectionConfig,
    what: &'static str,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<bool>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} to {addr}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, None, app, limits.clone(), what, stop));
    Ok((bound, task))
}

/// The shortest and longest pause after a failed `accept` (out of file descriptors, most often): the
/// loop must not spin while the process can open nothing.
const ACCEPT_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Serves `app` on `listener`, over TLS when `tls` is given, within `limits`: at most `limits.max`
/// connections at once (a permit held as long as the connection, upgraded ones included), on TLS at most
/// `limits.max_per_address` from one address, a bounded handshake, and a bounded wait for each request's
/// header. Over TLS the protocol is the one ALPN chose (HTTP/2 for `h2`, else HTTP/1.1); plain HTTP is
/// HTTP/1.1 only, so no connection waits unbounded for its first bytes to tell the protocol.
///
/// When `stop` is cancelled the listener closes, each connection finishes the request it is serving and
/// closes, and the task ends once every connection has, or after `limits.shutdown()`: true when all
/// closed.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: ConnectionConfig,
    what: &'static str,
    stop: CancellationToken,
) -> bool {
    let max = limits.max.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max));
    // Connections open per address (IPv4 host, IPv6 /64: the sign-in throttle's keys).
    let per_address = crate::slots::Slots::default();
    let limits = Arc::new(limits);
    let mut pause = ACCEPT_PAUSE.0;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = accept(&listener, &open) => accepted,
        };
        let (permit, (tcp, peer)) = match accepted {
            Ok(c) => {
                pause = ACCEPT_PAUSE.0;
                c
            }
            Err(e) if connection_error(&e) => continue,
            Err(e) => {
                tracing::error!("{what}: accepting a connection failed: {e}; pausing {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE.1);
                continue;
            }
        };
        let slot = match tls {
            Some(_) => match per_address.enter(
                &crate::signin::address_key(peer.ip()),
                limits.max_per_address,
            ) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "{what}: too many connections from this address");
                    continue;
                }
            },
            None => None,
        };
        // Small messages (link frames, API answers) must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let io = Held {
            io: tcp,
            _permit: permit,
            _slot: slot,
        };
        let (tls, app, limits, token) = (tls.clone(), app.clone(), limits.clone(), stop.clone());
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(io, false, peer, app, &limits, token).await;
            };
            let stream = match tokio::time::timeout(limits.handshake(), acceptor.accept(io)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake took too long");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            serve_connection(stream, h2, peer, app, &limits, token).await;
        });
    }
    drop(listener);
    // Every connection holds a permit until it closes.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let grace = limits.shutdown();
    let drained = tokio::time::timeout(grace, open.acquire_many(all))
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            "{what}: {} connection(s) still open after {:?}; closing them",
            max - open.available_permits(),
            grace
        );
    }
    drained
}

/// The next connection, once one may open.
async fn accept(
    listener: &TcpListener,
    open: &Arc<Semaphore>,
) -> std::io::Result<(OwnedSemaphorePermit, (TcpStream, SocketAddr))> {
    let permit = open
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("the connection semaphore was closed"))?;
    Ok((permit, listener.accept().await?))
}

/// Errors of one connection that `accept` reports (the peer gave up before it was accepted): no reason
/// to pause.
fn connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection<I>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    app: axum::Router,
    limits: &ConnectionConfig,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        // The peer address reaches handlers (the sign-in throttle counts by address).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        app.clone().call(req)
    });
    let io = TokioIo::new(io);
    // On stop: the request under way finishes, then the connection closes (HTTP/2: GOAWAY).
    let ended = if h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.keep_alive())
            .keep_alive_timeout(limits.keep_alive())
            .serve_connection(io, service);
        until_stopped(conn, &stopping, |c| c.graceful_shutdown()).await
    } else {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header())
            .serve_connection(io, service)
            .with_upgrades();
        until_stopped(conn, &stopping, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Runs a connection to its end; once `stopping` is cancelled, `shut` asks it to finish the request under
/// way and close.
async fn until_stopped<C: std::future::Future>(
    conn: C,
    stopping: &CancellationToken,
    shut: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        () = stopping.cancelled() => {
            shut(conn.as_mut());
            conn.await
        }
    }
}

/// A connection with what it holds (its permit, its address's slot) for as long as it lives: after an
/// upgrade to a WebSocket hyper passes the connection on, and the bounds go with it.
struct Held {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    _slot: Option<crate::slots::Slot>,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn connections_per_address_are_bounded_and_given_back() {
        let book = crate::slots::Slots::default();
        let key = |ip: IpAddr| crate::signin::address_key(ip);
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8::2".parse().expect("ip");
        let other: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = book.enter(&key(a), 2).expect("first");
        let second = book.enter(&key(same_64), 2).expect("second");
        assert!(book.enter(&key(a), 2).is_none(), "a /64 holds two at most");
        assert!(
            book.enter(&key(other), 2).is_some(),
            "another address is counted apart"
        );
        drop(first);
        let third = book
            .enter(&key(a), 2)
            .expect("a closed connection gives its slot back");
        drop((second, third));
        assert!(
            book.is_empty(),
            "addresses without connections are forgotten"
        );
    }
}
