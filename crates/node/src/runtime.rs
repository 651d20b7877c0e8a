//! The fax server's link loop and attempt execution.

use crate::Error;
use crate::journal::{Held, Journal};
use crate::line::{Line, LineProgress, SendJob};
use futures::{SinkExt, StreamExt};
use protocol::settings::{FaxServerSettings, Secret};
use protocol::{
    AttemptState, Body, Capabilities, ChannelState, Envelope, FailureReason, Heartbeat, Hello,
    InboundFax, JobOffer, JobProgress, JobResult, Outcome, PROTOCOL_VERSION, Phase,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Base URL of the supervisor, `https://host:port` (or `http://` on loopback).
    pub supervisor: String,
    /// Holds `credential`, the journal (`journal.json` and `journal.log`) and the document cache.
    pub state_dir: PathBuf,
    /// PEM of the supervisor's certificate (or its CA) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Number prefixes this fax server can reach; empty for any.
    pub reachable_prefixes: Vec<String>,
    /// Told the job id of every offer as it arrives (used to time dispatch); None in normal use.
    pub offer_observer: Option<OfferObserver>,
}

/// A callback told of each offer's job id on arrival.
#[derive(Clone)]
pub struct OfferObserver(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for OfferObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferObserver")
    }
}

const CREDENTIAL_FILE: &str = "credential";

/// Trades an enrollment token for the link credential and stores it in the state directory.
pub async fn enroll(config: &NodeConfig, enrollment_token: &str) -> Result<String, Error> {
    let state_error = |e: std::io::Error| Error::State {
        path: config.state_dir.display().to_string(),
        message: e.to_string(),
    };
    at_rest::private_dir(&config.state_dir).map_err(state_error)?;
    let http = http_client(config)?;
    let url = format!("{}/v1/node/enroll", config.supervisor.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .json(&serde_json::json!({ "enrollment_token": enrollment_token }))
        .send()
        .await
        .map_err(|e| Error::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no reason given")
            .to_owned();
        return Err(Error::EnrollmentRefused(format!("{status}: {msg}")));
    }
    let credential = body["credential"]
        .as_str()
        .ok_or_else(|| Error::EnrollmentRefused("no credential in the answer".into()))?;
    at_rest::write_file(
        &config.state_dir.join(CREDENTIAL_FILE),
        credential.as_bytes(),
    )
    .map_err(state_error)?;
    Ok(body["fax_server_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// A received fax kept on disk until the supervisor has it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingInbound {
    id: String,
    pages: u32,
    caller_number: Option<String>,
    called_number: Option<String>,
    tsi: Option<String>,
    started_at: String,
    ended_at: String,
    stats: protocol::CallStats,
    #[serde(default)]
    page_info: Vec<protocol::InboundPage>,
    #[serde(default)]
    failure: Option<String>,
}

fn pending_inbound(dir: &Path) -> Vec<PendingInbound> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

fn http_client(config: &NodeConfig) -> Result<reqwest::Client, Error> {
    let tls = crate::tls_client_config(config.ca_cert.as_deref())?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Tls(e.to_string()))
}

/// A running fax server.
pub struct NodeHandle {
    node: Arc<Node>,
    task: tokio::task::JoinHandle<()>,
    receiver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").finish_non_exhaustive()
    }
}

/// How a graceful stop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Calls that were still under way when the time to finish them ran out, and were hung up.
    pub calls_cut: usize,
    /// Messages to the supervisor (results, received faxes) not acknowledged when the link closed; the
    /// journal keeps them for the next start.
    pub unacknowledged: usize,
}

/// How long a stopping fax server waits, after its calls are over, for the supervisor to acknowledge what
/// it reported (results, received faxes).
const REPORT_WAIT: Duration = Duration::from_secs(10);

impl NodeHandle {
    /// Stops the fax server at once, as a crash would (the journal keeps what it must).
    pub fn abort(&self) {
        self.task.abort();
        self.receiver.abort();
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops the fax server gracefully: it takes no new attempt or call (the supervisor is told at once
    /// that its free channels are gone), lets the calls under way finish for at most `within`, hangs up
    /// those still running then (reported as `fax_server_stopping`, so their jobs move on), waits a
    /// bounded time for the supervisor to acknowledge every result and received fax, says goodbye on the
    /// link and ends.
    pub async fn shutdown(self, within: Duration) -> Stopped {
        let node = self.node.clone();
        node.stopping.store(true, AtomicOrdering::SeqCst);
        node.line.stop_answering();
        node.send(node.heartbeat());
        tracing::info!(
            sending = node.sending(),
            receiving = node.line.receiving(),
            "stopping: no new calls; waiting up to {within:?} for the calls under way"
        );
        let calls_over = || node.sending() == 0 && node.line.receiving() == 0;
        let mut calls_cut = 0;
        if !wait_until(tokio::time::Instant::now() + within, calls_over).await {
            node.cut.store(true, AtomicOrdering::SeqCst);
            let running: Vec<watch::Sender<bool>> = node
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            calls_cut = running.len();
            tracing::warn!(calls = calls_cut, "the time to finish ran out: hanging up");
            for cancel in running {
                let _ = cancel.send(true);
            }
        }
        // The hung-up calls report, received faxes are kept and announced, and the supervisor acknowledges.
        let inbound = node.config.state_dir.join("inbound");
        let delivered = || {
            node.sending() == 0
                && node.journal.read(|d| d.outbox.is_empty())
                && pending_inbound(&inbound).is_empty()
        };
        wait_until(tokio::time::Instant::now() + REPORT_WAIT, delivered).await;
        let unacknowledged = node.journal.read(|d| d.outbox.len());
        node.goodbye.notify_one();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the link did not close in time");
        }
        self.receiver.abort();
        tracing::info!(calls_cut, unacknowledged, "stopped");
        Stopped {
            calls_cut,
            unacknowledged,
        }
    }
}

struct Node {
    config: NodeConfig,
    credential: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    journal: Journal,
    line: Arc<dyn Line>,
    /// The current link's sender; None while disconnected.
    link: Mutex<Option<mpsc::UnboundedSender<Envelope>>>,
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// The version of the settings applied last (0: none); the document itself is kept in
    /// `settings.json` so the fax server works on with it through a supervisor outage.
    settings_version: Mutex<u64>,
    /// Seals the SIP password inside `settings.json`.
    secrets: at_rest::SecretBox,
    /// Shutting down: no new attempt is taken and the free channels are reported down.
    stopping: AtomicBool,
    /// The time to finish ran out: the calls still running were hung up.
    cut: AtomicBool,
    /// Told once the fax server has said all it had to: the link says goodbye and is not opened again.
    goodbye: tokio::sync::Notify,
}

const SETTINGS_FILE: &str = "settings.json";
/// The key the secrets kept in the state directory are sealed under (made on first start).
const SECRETS_KEY_FILE: &str = "secrets.key";
const SECRETS_LABEL: &[u8] = b"faxhub fax server settings";

/// The settings as kept on disk: the SIP password sealed (`{"sealed": ...}`) instead of in the clear.
fn seal_kept(
    secrets: &at_rest::SecretBox,
    mut settings: FaxServerSettings,
) -> Result<FaxServerSettings, String> {
    if let Secret::Value(plain) = &settings.sip.password {
        let sealed = secrets
            .seal(plain)
            .map_err(|e| format!("sealing the SIP password failed: {e}"))?;
        settings.sip.password = Secret::Sealed { sealed };
    }
    Ok(settings)
}

/// The settings as the line needs them; `None` when the kept password cannot be opened (the key was
/// replaced): then the supervisor's next push brings it again.
fn open_kept(
    secrets: &at_rest::SecretBox,
    mut settings: FaxServerSettings,
) -> Option<FaxServerSettings> {
    if let Secret::Sealed { sealed } = &settings.sip.password {
        settings.sip.password = Secret::Value(secrets.open(sealed)?);
    }
    Some(settings)
}

/// `settings.json`: the version applied last and its document, the password sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    version: u64,
    settings: FaxServerSettings,
}

/// Starts the fax server: connects (and reconnects) to the supervisor and serves its line.
pub fn run(config: NodeConfig, line: Arc<dyn Line>) -> Result<NodeHandle, Error> {
    let state_error = |e: std::io::Error| Error::State {
        path: config.state_dir.display().to_string(),
        message: e.to_string(),
    };
    // The credential, the SIP password, the journal and the documents are this user's alone; an older
    // state directory is tightened.
    at_rest::private_dir(&config.state_dir).map_err(state_error)?;
    at_rest::private_dir(&config.state_dir.join("documents")).map_err(state_error)?;
    for kept in [CREDENTIAL_FILE, SETTINGS_FILE] {
        at_rest::tighten_file(&config.state_dir.join(kept)).map_err(state_error)?;
    }
    let credential = std::fs::read_to_string(config.state_dir.join(CREDENTIAL_FILE))
        .map_err(|_| Error::NotEnrolled)?;
    let key = at_rest::load_or_make_key(&config.state_dir.join(SECRETS_KEY_FILE)).map_err(|e| {
        Error::State {
            path: config.state_dir.display().to_string(),
            message: e.to_string(),
        }
    })?;
    let journal = Journal::open(config.state_dir.join("journal.json")).map_err(state_error)?;
    let node = Arc::new(Node {
        http: http_client(&config)?,
        tls: crate::tls_client_config(config.ca_cert.as_deref())?,
        credential: credential.trim().to_owned(),
        journal,
        line,
        link: Mutex::new(None),
        running: Mutex::new(HashMap::new()),
        settings_version: Mutex::new(0),
        secrets: at_rest::SecretBox::derived(&key, SECRETS_LABEL),
        stopping: AtomicBool::new(false),
        cut: AtomicBool::new(false),
        goodbye: tokio::sync::Notify::new(),
        config,
    });
    node.load_settings();
    // Attempts that were running when the process stopped cannot be resumed mid-call: report them failed
    // (as a fax-server fault, so the supervisor moves the job on at once).
    node.fail_interrupted();
    let receiver = tokio::spawn(node.clone().receive_loop());
    let linked = node.clone();
    let task = tokio::spawn(async move {
        let node = linked;
        let mut backoff = Duration::from_millis(200);
        loop {
            let ended = node.clone().session().await;
            *node.link.lock().unwrap_or_else(|e| e.into_inner()) = None;
            match ended {
                Ok(Link::SaidGoodbye) => return,
                Ok(Link::Closed) => backoff = Duration::from_millis(200),
                Err(e) => tracing::warn!("link to the supervisor lost: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                // Stopping while away: nobody to say goodbye to.
                () = node.goodbye.notified() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    Ok(NodeHandle {
        node,
        task,
        receiver,
    })
}

/// An attempt the fax server hung up itself (its line reports `cancelled`) reads as the reason it was
/// hung up for, not as the client's cancel.
fn hung_up_for(result: &mut JobResult, why: FailureReason) {
    if let Outcome::Failed {
        reason: FailureReason::Cancelled,
        t30,
        pages_sent,
        ..
    } = &result.outcome
    {
        result.outcome = Outcome::failed(why, t30.clone(), *pages_sent);
    }
}

/// Waits (polling) until `done` holds or `deadline` passes; whether it holds.
async fn wait_until(deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// How a link ended without an error.
enum Link {
    /// The supervisor closed it; the fax server connects again.
    Closed,
    /// The fax server is stopping and said goodbye.
    SaidGoodbye,
}

impl Node {
    fn settings_version(&self) -> u64 {
        *self
            .settings_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the settings kept from the last run, if any.
    fn load_settings(&self) {
        let path = self.config.state_dir.join(SETTINGS_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let kept = match serde_json::from_slice::<Kept>(&bytes) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(
                    "{} is unreadable ({e}); waiting for the supervisor's settings",
                    path.display()
                );
                return;
            }
        };
        let version = kept.version;
        let was_plain = kept.settings.sip.password.plain().is_some();
        let Some(settings) = open_kept(&self.secrets, kept.settings) else {
            tracing::error!(
                version,
                "the SIP password kept in {} cannot be opened ({SECRETS_KEY_FILE} was replaced?); waiting for the supervisor's settings",
                path.display()
            );
            return;
        };
        match self.line.apply_settings(&settings) {
            Ok(()) => {
                // A file kept by an earlier version may hold the password in the clear: keep it sealed.
                if was_plain && let Err(e) = self.keep_settings(version, &settings) {
                    tracing::error!("{e}");
                }
                *self
                    .settings_version
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = version;
            }
            Err(e) => tracing::error!(version, "kept settings refused by the line: {e}"),
        }
    }

    /// Keeps the applied settings in `settings.json` (owner-only, the SIP password sealed).
    fn keep_settings(&self, version: u64, settings: &FaxServerSettings) -> Result<(), String> {
        let kept = Kept {
            version,
            settings: seal_kept(&self.secrets, settings.clone())?,
        };
        let json = serde_json::to_vec(&kept).map_err(|e| format!("encoding the settings: {e}"))?;
        at_rest::write_file(&self.config.state_dir.join(SETTINGS_FILE), &json)
            .map_err(|e| format!("storing the settings failed: {e}"))
    }

    fn apply_settings(&self, version: u64, settings: &FaxServerSettings) {
        let result = if self.settings_version() == version {
            Ok(())
        } else {
            self.line
                .apply_settings(settings)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    self.keep_settings(version, settings)?;
                    *self
                        .settings_version
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = version;
                    Ok(())
                })
        };
        match &result {
            Ok(()) => tracing::info!(version, "settings applied"),
            Err(e) => tracing::warn!(version, "settings refused: {e}"),
        }
        let error = result.err();
        self.send_reliable(
            Body::SettingsResult {
                version,
                applied: error.is_none(),
                error,
            },
            |_| (),
        );
    }

    fn fail_interrupted(&self) {
        let result = self.journal.update(|d| {
            let ids: Vec<String> = d
                .data()
                .attempts
                .iter()
                .filter(|(_, h)| h.result.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let pages_sent = 0;
                let result = JobResult {
                    attempt_id: id.clone(),
                    outcome: Outcome::failed(FailureReason::FaxServerRestarted, None, pages_sent),
                    stats: Default::default(),
                };
                d.finish(&id, result.clone());
                d.enqueue(Body::JobResult(result));
            }
        });
        if let Err(e) = result {
            tracing::error!("journal write failed: {e}");
        }
    }

    fn send(&self, env: Envelope) {
        if let Some(tx) = self.link.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(env);
        }
    }

    /// Queues a message that must be acknowledged: journaled first, then sent if the link is up (and again
    /// after every reconnect until acknowledged), in the order of message ids.
    fn send_reliable(&self, body: Body, also: impl FnOnce(&mut crate::journal::Tx<'_>)) {
        let queued = self.journal.update_then(
            |d| {
                also(d);
                d.enqueue(body)
            },
            |env| self.send(env.clone()),
        );
        if let Err(e) = queued {
            tracing::error!("journal write failed; message kept in memory only: {e}");
        }
    }

    /// Attempts under way.
    fn sending(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The state of each channel; while stopping, the free ones are down (the supervisor offers them
    /// nothing more).
    fn channel_states(&self) -> Vec<ChannelState> {
        let channels = self.line.channels();
        let sending = u32::try_from(self.sending()).unwrap_or(u32::MAX);
        let receiving = self.line.receiving();
        let free = if self.stopping.load(AtomicOrdering::SeqCst) {
            ChannelState::Down
        } else {
            ChannelState::Idle
        };
        (0..channels)
            .map(|i| {
                if i < sending {
                    ChannelState::Sending
                } else if i < sending + receiving {
                    ChannelState::Receiving
                } else {
                    free
                }
            })
            .collect()
    }

    fn heartbeat(&self) -> Envelope {
        let line_status = if self.stopping.load(AtomicOrdering::SeqCst) {
            Some("the fax server is shutting down: it takes no new calls".to_owned())
        } else {
            self.line.status()
        };
        Envelope::unacked(Body::Heartbeat(Heartbeat {
            channels: self.channel_states(),
            line_status,
        }))
    }

    async fn session(self: Arc<Self>) -> anyhow::Result<Link> {
        let base = self.config.supervisor.trim_end_matches('/');
        let ws_url = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}{}", protocol::LINK_PATH)
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}{}", protocol::LINK_PATH)
        } else {
            anyhow::bail!("the supervisor URL must start with https:// or http://");
        };
        let mut request = ws_url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.credential).parse()?,
        );
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
        let (mut sink, mut stream) = ws.split();
        let in_flight: Vec<AttemptState> = self.journal.read(|d| {
            d.attempts
                .iter()
                .map(|(id, h)| AttemptState {
                    attempt_id: id.clone(),
                    phase: h.phase,
                    result: h.result.clone(),
                })
                .collect()
        });
        let caps = Capabilities {
            channels: self.line.channels(),
            max_bit_rate: self.line.max_bit_rate(),
            ecm: self.line.ecm(),
            resolutions: vec!["standard".into(), "fine".into(), "superfine".into()],
            reachable_prefixes: self.config.reachable_prefixes.clone(),
            answers: self.line.answers(),
        };
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            software: format!("faxhub {}", env!("CARGO_PKG_VERSION")),
            capabilities: caps,
            in_flight,
            last_applied: 0,
            settings_version: self.settings_version(),
        };
        sink.send(Message::Text(
            Envelope::unacked(Body::Hello(hello)).to_json().into(),
        ))
        .await?;
        let welcome = match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => Envelope::from_json(&t)?,
            other => anyhow::bail!("no welcome from the supervisor: {other:?}"),
        };
        let heartbeat = match welcome.body {
            Body::Welcome(w) => Duration::from_millis(w.heartbeat_interval_ms.max(100)),
            Body::Goodbye { reason } => anyhow::bail!("the supervisor refused the link: {reason}"),
            other => anyhow::bail!("expected welcome, got {other:?}"),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Envelope>();
        // Everything not yet acknowledged goes again, in order; the link takes new messages only after
        // these, under the journal's lock, so none queued meanwhile is skipped or overtaken.
        self.journal.read(|d| {
            for env in d.outbox.values() {
                let _ = tx.send(env.clone());
            }
            *self.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx.clone());
        });
        tracing::info!("linked to the supervisor");
        let mut writer = tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                if sink
                    .send(Message::Text(env.to_json().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Every sender is gone: the fax server said goodbye.
            let _ = sink.close().await;
        });
        let mut beat = {
            let node = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(heartbeat);
                loop {
                    tick.tick().await;
                    if tx.send(node.heartbeat()).is_err() {
                        break;
                    }
                }
            })
        };
        let result = async {
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(heartbeat * 4, stream.next()) => next,
                    () = self.goodbye.notified() => return Ok(Link::SaidGoodbye),
                };
                let msg = match next {
                    Err(_) => anyhow::bail!("the supervisor went silent"),
                    Ok(None) => return Ok(Link::Closed),
                    Ok(Some(m)) => m?,
                };
                let Message::Text(text) = msg else { continue };
                let env = match Envelope::from_json(&text) {
                    Ok(env) => env,
                    Err(e) => {
                        tracing::warn!("dropping malformed message from the supervisor: {e}");
                        continue;
                    }
                };
                self.clone().handle(env.body);
            }
        }
        .await;
        beat.abort();
        if matches!(result, Ok(Link::SaidGoodbye)) {
            // Nothing else goes out after the goodbye; the writer sends what is queued, then closes.
            *self.link.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let _ = tx.send(Envelope::unacked(Body::Goodbye {
                reason: "the fax server is shutting down".into(),
            }));
            drop(tx);
            let _ = (&mut beat).await;
            if tokio::time::timeout(Duration::from_secs(2), &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        } else {
            writer.abort();
        }
        result
    }

    fn handle(self: Arc<Self>, body: Body) {
        match body {
            Body::Ack { ack } => {
                // Kept with the next durable change: after a crash the message is sent again, and the
                // supervisor, which committed its id before acknowledging it, acknowledges it unapplied.
                // A result acknowledged: the attempt is over for good.
                self.journal.update_volatile(|d| d.acked(ack));
            }
            Body::JobOffer(offer) => self.offer(offer),
            Body::JobCancel {
                attempt_id,
                only_before_dialling,
            } => self.cancel(&attempt_id, only_before_dialling),
            Body::JobQuery { attempt_id } => {
                let held = self.journal.read(|d| d.attempts.get(&attempt_id).cloned());
                let reply = match held {
                    Some(Held {
                        result: Some(r), ..
                    }) => Body::JobResult(r),
                    Some(h) => Body::JobProgress(JobProgress {
                        attempt_id,
                        phase: h.phase,
                        page: None,
                        pages_total: None,
                        bit_rate: None,
                    }),
                    None => Body::JobUnknown { attempt_id },
                };
                self.send(Envelope::unacked(reply));
            }
            Body::SettingsPush { version, settings } => self.apply_settings(version, &settings),
            Body::Goodbye { reason } => tracing::info!("the supervisor said goodbye: {reason}"),
            Body::Welcome(_) => {}
            other => tracing::warn!("unexpected message from the supervisor: {other:?}"),
        }
    }

    /// Tells a running attempt's line to hang up. With `only_before_dialling`, only an attempt still being
    /// prepared is stopped: one whose call is under way is left to finish, so that no fax is cut mid-page.
    /// The phase is the line's last report, so a cancel that crosses the start of dialling may still stop
    /// a call before it is answered, which sends nothing.
    fn cancel(&self, attempt_id: &str, only_before_dialling: bool) {
        if only_before_dialling {
            let phase = self
                .journal
                .read(|d| d.attempts.get(attempt_id).map(|h| h.phase));
            if !matches!(phase, Some(Phase::Accepted | Phase::Preparing)) {
                tracing::info!(attempt = %attempt_id, ?phase, "conditional cancel ignored: the call is under way");
                return;
            }
        }
        if let Some(tx) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(attempt_id)
        {
            let _ = tx.send(true);
        }
    }

    fn offer(self: Arc<Self>, offer: JobOffer) {
        if let Some(observe) = &self.config.offer_observer {
            (observe.0)(&offer.job_id);
        }
        let id = offer.attempt_id.clone();
        if self.journal.read(|d| d.seen(&id)) {
            // A repeated offer (after a reconnect): never execute it twice.
            tracing::debug!(attempt = %id, "repeated offer ignored");
            return;
        }
        if self.stopping.load(AtomicOrdering::SeqCst) {
            // Offered before the supervisor heard that the channels are gone: it moves the job on at once.
            self.send_reliable(
                Body::JobReject {
                    attempt_id: id.clone(),
                    reason: FailureReason::FaxServerStopping.as_str().to_owned(),
                },
                |d| d.remember(&id),
            );
            return;
        }
        let busy = self.sending() as u32 + self.line.receiving();
        if busy >= self.line.channels() {
            self.send_reliable(
                Body::JobReject {
                    attempt_id: id.clone(),
                    reason: "no free channel".into(),
                },
                |d| d.remember(&id),
            );
            return;
        }
        // The limit runs from the offer's arrival: the supervisor counts it from when it last heard from
        // this fax server, which is later.
        let hang_up_at = offer
            .call_limit_ms
            .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), cancel_tx);
        let held = Held {
            offer: offer.clone(),
            phase: Phase::Accepted,
            result: None,
        };
        self.send_reliable(
            Body::JobAccept {
                attempt_id: id.clone(),
            },
            |d| {
                d.remember(&id);
                d.hold(&id, held);
            },
        );
        tokio::spawn(async move {
            let result = self.execute_attempt(offer, cancel_rx, hang_up_at).await;
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            let rid = id.clone();
            self.send_reliable(Body::JobResult(result.clone()), move |d| {
                d.finish(&rid, result);
            });
        });
    }

    /// Runs the attempt and hangs up at its call limit, if it has one.
    async fn execute_within(
        &self,
        offer: JobOffer,
        cancel: watch::Receiver<bool>,
        hang_up_at: Option<tokio::time::Instant>,
    ) -> JobResult {
        let id = offer.attempt_id.clone();
        let run = self.execute(offer, cancel);
        let Some(at) = hang_up_at else {
            return run.await;
        };
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => return result,
            () = tokio::time::sleep_until(at) => {}
        }
        tracing::warn!(attempt = %id, "the call limit is reached; hanging up");
        self.cancel(&id, false);
        let mut result = run.await;
        hung_up_for(&mut result, FailureReason::CallTimeLimit);
        result
    }

    /// Runs the attempt; one hung up because the fax server is stopping reads `fax_server_stopping`, not
    /// `cancelled` (which would end the job as if its client had cancelled it).
    async fn execute_attempt(
        &self,
        offer: JobOffer,
        cancel: watch::Receiver<bool>,
        hang_up_at: Option<tokio::time::Instant>,
    ) -> JobResult {
        let mut result = self.execute_within(offer, cancel, hang_up_at).await;
        if self.cut.load(AtomicOrdering::SeqCst) {
            hung_up_for(&mut result, FailureReason::FaxServerStopping);
        }
        result
    }

    async fn execute(&self, offer: JobOffer, cancel: watch::Receiver<bool>) -> JobResult {
        let id = offer.attempt_id.clone();
        let failed = |reason, detail: Option<String>| JobResult {
            attempt_id: id.clone(),
            outcome: Outcome::failed(reason, detail, 0),
            stats: Default::default(),
        };
        let mut documents = Vec::new();
        for doc in &offer.documents {
            match self.fetch_document(&doc.sha256).await {
                Ok(path) => documents.push((doc.clone(), path)),
                Err(e) => {
                    return failed(FailureReason::DocumentUnavailable, Some(e.to_string()));
                }
            }
        }
        if *cancel.borrow() {
            // Cancelled (or out of time) while the documents came: never dial.
            return failed(FailureReason::Cancelled, None);
        }
        let job = SendJob {
            attempt_id: id.clone(),
            job_id: offer.job_id.clone(),
            recipient: offer.recipient.clone(),
            documents,
            options: offer.options.clone(),
            attempt_number: offer.attempt_number,
            step_down: offer.step_down,
        };
        let (ptx, mut prx) = mpsc::unbounded_channel::<LineProgress>();
        let line = self.line.clone();
        let call = tokio::spawn(async move { line.send(job, ptx, cancel).await });
        while let Some(p) = prx.recv().await {
            self.progress(&id, p);
        }
        match call.await {
            Ok(outcome) => JobResult {
                attempt_id: id.clone(),
                outcome: outcome.outcome,
                stats: outcome.stats,
            },
            Err(e) => failed(FailureReason::LineFailure, Some(e.to_string())),
        }
    }

    fn progress(&self, attempt_id: &str, p: LineProgress) {
        self.journal
            .update_volatile(|d| d.phase(attempt_id, p.phase));
        self.send(Envelope::unacked(Body::JobProgress(JobProgress {
            attempt_id: attempt_id.to_owned(),
            phase: p.phase,
            page: p.page,
            pages_total: p.pages_total,
            bit_rate: p.bit_rate,
        })));
    }

    /// Downloads a document into the cache unless it is there, verifying its hash.
    async fn fetch_document(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("bad document hash {sha256:?}");
        }
        let path = self.config.state_dir.join("documents").join(sha256);
        if path.exists() {
            return Ok(path);
        }
        let url = format!(
            "{}/v1/node/documents/{sha256}",
            self.config.supervisor.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.credential)
            .send()
            .await?
            .error_for_status()?;
        let bytes = resp.bytes().await?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != sha256 {
            anyhow::bail!("document {sha256} arrived with hash {got}");
        }
        let kept = path.clone();
        tokio::task::spawn_blocking(move || at_rest::write_file(&kept, &bytes)).await??;
        Ok(path)
    }

    /// Keeps every fax the line receives on disk until the supervisor has it: written under `inbound/`
    /// first, uploaded, announced on the link (reliably, through the journal), then deleted. Faxes left
    /// there by a crash are sent on the next start.
    async fn receive_loop(self: Arc<Self>) {
        let dir = self.config.state_dir.join("inbound");
        if let Err(e) = at_rest::private_dir(&dir) {
            tracing::error!("cannot keep received faxes in {}: {e}", dir.display());
            return;
        }
        for leftover in pending_inbound(&dir) {
            self.deliver_inbound(&dir, leftover).await;
        }
        while let Some(fax) = self.line.next_received().await {
            let id = format!("inb_{}", uuid::Uuid::new_v4().simple());
            let meta = PendingInbound {
                id: id.clone(),
                pages: fax.pages,
                caller_number: fax.caller_number,
                called_number: fax.called_number,
                tsi: fax.tsi,
                started_at: fax.started_at,
                ended_at: fax.ended_at,
                stats: fax.stats,
                page_info: fax.page_info,
                failure: fax.failure,
            };
            let kept =
                at_rest::write_file(&dir.join(format!("{id}.tif")), &fax.tiff).and_then(|()| {
                    at_rest::write_file(
                        &dir.join(format!("{id}.json")),
                        &serde_json::to_vec(&meta).unwrap_or_default(),
                    )
                });
            if let Err(e) = kept {
                tracing::error!(inbound = %id, "could not keep a received fax on disk: {e}");
            }
            self.deliver_inbound(&dir, meta).await;
        }
    }

    async fn deliver_inbound(&self, dir: &Path, meta: PendingInbound) {
        let tif = dir.join(format!("{}.tif", meta.id));
        let Ok(tiff) = tokio::fs::read(&tif).await else {
            tracing::error!(inbound = %meta.id, "received fax missing from {}", dir.display());
            return;
        };
        let mut delay = Duration::from_millis(200);
        let doc = loop {
            match self.upload(&tiff).await {
                Ok(doc) => break doc,
                Err(e) => {
                    tracing::warn!(inbound = %meta.id, "uploading a received fax failed, will retry: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        };
        let inbound = InboundFax {
            inbound_id: meta.id.clone(),
            document: doc,
            pages: meta.pages,
            caller_number: meta.caller_number,
            called_number: meta.called_number,
            tsi: meta.tsi,
            started_at: meta.started_at,
            ended_at: meta.ended_at,
            stats: meta.stats,
            page_info: meta.page_info,
            failure: meta.failure,
        };
        self.send_reliable(Body::InboundFax(inbound), |_| ());
        // The journal now holds the announcement and the supervisor holds the document.
        let _ = std::fs::remove_file(&tif);
        let _ = std::fs::remove_file(dir.join(format!("{}.json", meta.id)));
    }

    async fn upload(&self, tiff: &[u8]) -> anyhow::Result<protocol::DocumentRef> {
        let url = format!(
            "{}/v1/node/inbound-documents",
            self.config.supervisor.trim_end_matches('/')
        );
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.credential)
            .body(tiff.to_vec())
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!(
                "{status}: {}",
                body["error"]["message"].as_str().unwrap_or("no reason")
            );
        }
        Ok(protocol::DocumentRef {
            sha256: body["sha256"].as_str().unwrap_or_default().to_owned(),
            size: body["size"].as_u64().unwrap_or(0),
            media_type: body["media_type"]
                .as_str()
                .unwrap_or("image/tiff")
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_sip_password_is_sealed_and_opens_again() {
        let secrets = at_rest::SecretBox::derived(&[7; 32], SECRETS_LABEL);
        let settings: FaxServerSettings = serde_json::from_value(
            serde_json::json!({"channels": 2, "sip": {"user": "fax1", "password": "s3cret-pass-1"}}),
        )
        .expect("settings");
        let kept = seal_kept(&secrets, settings.clone()).expect("sealed");
        let json = serde_json::to_value(&kept).expect("json");
        assert!(!json.to_string().contains("s3cret-pass-1"), "{json}");
        assert!(json["sip"]["password"]["sealed"].is_string(), "{json}");
        assert_eq!(open_kept(&secrets, kept.clone()), Some(settings));
        let other = at_rest::SecretBox::derived(&[8; 32], SECRETS_LABEL);
        assert_eq!(open_kept(&other, kept), None, "another key cannot open it");
        // Settings without a password, or with a masked one, pass through unchanged.
        let masked: FaxServerSettings =
            serde_json::from_value(serde_json::json!({"sip": {"password": {"set": false}}}))
                .expect("settings");
        assert_eq!(seal_kept(&secrets, masked.clone()).expect("kept"), masked);
        assert_eq!(open_kept(&secrets, masked.clone()), Some(masked));
    }
}
