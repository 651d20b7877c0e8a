//! The fax server's real line: SIP signalling (`sip`) and T.30 over T.38/UDPTL (`t30`, `line`), set up by
//! the settings the supervisor pushes (SIP account, T.38 options, station identity, channels, local
//! numbers, dial rules, receive policy).
//!
//! Channels count both directions: a call being received holds one, and an incoming call beyond the
//! limit is refused with 486. Without a registrar the account's proxy is used directly (two fax servers
//! can call each other, as `faxhub dev` does); with one, a failed registration takes the line down (no
//! channels), so the supervisor routes jobs elsewhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::settings::{FaxServerSettings as Settings, ReceiveResolution, SipTransport};
use protocol::{CallStats, FailureReason, Outcome, Phase};
use sip::sdp::{self, Sdp, T38Params, UdpEc};
use sip::ua::{Account, CallEvent, Incoming, UserAgent};
use tokio::net::UdpSocket;
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};

use crate::line::{Line, LineOutcome, LineProgress, ReceivedFax, SendJob, SettingsError};

/// Where the line listens (not pushed by the supervisor: it is this machine's business).
#[derive(Debug, Clone)]
pub struct SipLineConfig {
    /// SIP socket.
    pub sip_bind: SocketAddr,
    /// Address for UDPTL media sockets (ports are chosen per call).
    pub media_ip: IpAddr,
    /// How often to send OPTIONS keep-alives to the proxy.
    pub keepalive: Duration,
}

struct Inner {
    cfg: SipLineConfig,
    settings: Mutex<Settings>,
    ua: AsyncMutex<Option<UserAgent>>,
    /// The line can place and take calls (registered, or no registrar needed).
    up: AtomicBool,
    /// The proxy answers keep-alives (or none has gone unanswered yet).
    reachable: AtomicBool,
    /// Why the line is down, for the supervisor's API (None when it is up or starting).
    status: Mutex<Option<String>>,
    busy: AtomicU32,
    receiving: AtomicU32,
    received_tx: mpsc::UnboundedSender<ReceivedFax>,
    received_rx: AsyncMutex<mpsc::UnboundedReceiver<ReceivedFax>>,
    /// Bumped by each settings change; an older start-up task gives way.
    generation: AtomicU32,
    /// The fax server is shutting down: new calls are refused.
    stopping: AtomicBool,
}

/// The SIP + T.38 line.
#[derive(Clone)]
pub struct SipLine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SipLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipLine")
            .field("sip_bind", &self.inner.cfg.sip_bind)
            .finish()
    }
}

/// Holds a channel until dropped.
struct ChannelGuard<'a>(&'a AtomicU32, Option<&'a AtomicU32>);

impl Drop for ChannelGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        if let Some(r) = self.1 {
            r.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl SipLine {
    pub fn new(cfg: SipLineConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                cfg,
                settings: Mutex::new(Settings::default()),
                ua: AsyncMutex::new(None),
                up: AtomicBool::new(false),
                reachable: AtomicBool::new(true),
                status: Mutex::new(Some("the line is starting".into())),
                busy: AtomicU32::new(0),
                receiving: AtomicU32::new(0),
                received_tx: tx,
                received_rx: AsyncMutex::new(rx),
                generation: AtomicU32::new(0),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Records why the line is down (logged once as an error), or that it is up.
    fn set_status(&self, why: Option<String>) {
        if let Some(w) = &why {
            tracing::error!("{w}");
        }
        *self.inner.status.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    fn settings(&self) -> Settings {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a channel if one is free.
    fn take_channel(&self, receiving: bool) -> Option<ChannelGuard<'_>> {
        let limit = self.channels();
        let busy = &self.inner.busy;
        let mut cur = busy.load(Ordering::SeqCst);
        loop {
            if cur >= limit {
                return None;
            }
            match busy.compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        if receiving {
            self.inner.receiving.fetch_add(1, Ordering::SeqCst);
        }
        Some(ChannelGuard(
            busy,
            receiving.then_some(&self.inner.receiving),
        ))
    }

    /// (Re)starts the user agent for the current settings; registers when there is a registrar.
    async fn start_ua(self, generation: u32) {
        let s = self.settings();
        let old = self.inner.ua.lock().await.take();
        if let Some(old) = old {
            old.shutdown();
            // Let the old agent release its socket.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner.up.store(false, Ordering::SeqCst);
        let Some(next_hop) = s.sip.next_hop().filter(|_| !s.sip.user.is_empty()) else {
            self.set_status(Some("no SIP account configured (settings sip.user, and sip.registrar or sip.proxy): the line stays down".into()));
            return;
        };
        let target = if next_hop.contains(':') {
            next_hop.to_owned()
        } else {
            format!("{next_hop}:5060")
        };
        let proxy = match tokio::net::lookup_host(&target)
            .await
            .ok()
            .and_then(|mut a| a.next())
        {
            Some(a) => a,
            None => {
                self.set_status(Some(format!(
                    "the SIP proxy / registrar address {target} does not resolve"
                )));
                return;
            }
        };
        let domain = if s.sip.registrar.is_empty() {
            target.clone()
        } else {
            s.sip.registrar.clone()
        };
        let password = s.sip.password.plain().unwrap_or("").to_string();
        let account = Account {
            proxy,
            domain,
            user: s.sip.user.clone(),
            auth_user: s.sip.digest_user().to_owned(),
            password,
            expires: 600,
        };
        let transport = match s.sip.transport {
            SipTransport::Udp => sip::ua::Transport::Udp,
            SipTransport::Tcp => sip::ua::Transport::Tcp,
        };
        let cfg = sip::ua::Config {
            bind: self.inner.cfg.sip_bind,
            account,
            transport,
            timers: sip::transaction::Timers::default(),
            user_agent: format!("faxhub {}", env!("CARGO_PKG_VERSION")),
            keepalive: Some(self.inner.cfg.keepalive),
        };
        let mut tries = 0;
        let (ua, incoming) = loop {
            match UserAgent::start(cfg.clone()).await {
                Ok(x) => break x,
                Err(e) if tries < 20 => {
                    tries += 1;
                    tracing::debug!(error = %e, "SIP socket busy, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.set_status(Some(format!(
                        "the SIP socket {} cannot be bound: {e}",
                        cfg.bind
                    )));
                    return;
                }
            }
        };
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            ua.shutdown();
            return;
        }
        *self.inner.ua.lock().await = Some(ua.clone());
        tokio::spawn(self.clone().answer_calls(incoming));
        tokio::spawn(self.clone().watch_trunk(ua.trunk()));
        if !s.sip.registrar.is_empty() {
            match ua.register().await {
                Ok(expires) => {
                    tracing::info!(user = %s.sip.user, transport = transport.name(), expires, "registered")
                }
                Err(e) => {
                    self.set_status(Some(format!(
                        "SIP registration of {} at {} failed: {e}",
                        s.sip.user, s.sip.registrar
                    )));
                    return;
                }
            }
        }
        self.set_status(None);
        self.inner.up.store(true, Ordering::SeqCst);
    }

    /// Takes the line's channels away while the proxy does not answer keep-alives, and gives them back
    /// when it does again.
    async fn watch_trunk(self, mut trunk: watch::Receiver<sip::ua::TrunkState>) {
        while trunk.changed().await.is_ok() {
            let reachable = *trunk.borrow_and_update() != sip::ua::TrunkState::Unreachable;
            if self.inner.reachable.swap(reachable, Ordering::SeqCst) != reachable {
                if reachable {
                    tracing::info!("the SIP proxy answers again: the line is back");
                } else {
                    tracing::error!(
                        "the SIP proxy does not answer keep-alives: the line offers no channels until it does"
                    );
                }
            }
        }
    }

    async fn answer_calls(self, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(inc) = incoming.recv().await {
            if self.inner.stopping.load(Ordering::SeqCst) {
                // RFC 3261 21.5.4: a temporary refusal the caller's network may route elsewhere.
                inc.reject(503, "Service Unavailable");
                continue;
            }
            let s = self.settings();
            if !s.local_numbers.is_empty() && own_number(&s, &inc.to_user).is_none() {
                inc.reject(404, "Not Found");
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move { this.receive(inc).await });
        }
    }

    fn t38_params(s: &Settings) -> T38Params {
        T38Params {
            version: s.t38.version.min(3),
            max_bit_rate: s.t38.max_bit_rate,
            max_buffer: 2000,
            max_datagram: u32::from(s.t38.max_datagram),
            udp_ec: if s.t38.redundancy_depth > 0 {
                UdpEc::Redundancy
            } else {
                UdpEc::None
            },
        }
    }

    fn transport(s: &Settings, far: &T38Params) -> line::Transport {
        line::Transport {
            version: t38::T38Version::from_number(far.version.min(s.t38.version))
                .unwrap_or_default(),
            redundancy: if far.udp_ec == UdpEc::Redundancy {
                usize::from(s.t38.redundancy_depth)
            } else {
                0
            },
            max_datagram: (far.max_datagram as usize).clamp(100, 1400),
            ..line::Transport::default()
        }
    }

    async fn receive(self, inc: Incoming) {
        let Some(_guard) = self.take_channel(true) else {
            inc.reject(486, "Busy Here");
            return;
        };
        let s = self.settings();
        let socket = match UdpSocket::bind(SocketAddr::new(self.inner.cfg.media_ip, 0)).await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "no UDP port for T.38");
                inc.reject(503, "Service Unavailable");
                return;
            }
        };
        let local = socket
            .local_addr()
            .unwrap_or(SocketAddr::new(self.inner.cfg.media_ip, 0));
        let ours = Self::t38_params(&s);
        let started = now_rfc3339();
        // The called number as the settings spell it (E.164 with '+'), when it is one of ours.
        let called = own_number(&s, &inc.to_user)
            .cloned()
            .unwrap_or_else(|| inc.to_user.clone());
        let caller = inc.from_user.clone();
        let offered = inc.offer.as_ref().and_then(Sdp::t38);
        let audio = inc.offer.as_ref().and_then(Sdp::audio).is_some();
        let (mut call, remote, far) = if let Some((remote, far)) = offered {
            let answer = sdp::answer_params(&far, &ours);
            match inc.accept(sdp::t38(1, 1, local, &answer)).await {
                Ok(c) => (c, remote, far),
                Err(e) => {
                    tracing::warn!("answering failed: {e}");
                    return;
                }
            }
        } else if audio {
            // Voice first: answer, then switch the call to T.38 ourselves.
            let call = match inc.accept(sdp::audio(1, 1, local)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("answering failed: {e}");
                    return;
                }
            };
            match call
                .reinvite(sdp::t38(1, 2, local, &ours))
                .await
                .map(|a| a.t38())
            {
                Ok(Some((remote, far))) => (call, remote, far),
                other => {
                    tracing::warn!("the caller did not switch to T.38: {other:?}");
                    call.hang_up().await;
                    return;
                }
            }
        } else {
            inc.reject(488, "Not Acceptable Here");
            return;
        };
        let mut c = t30::Config::new(t30::Role::Receive, false);
        c.ident = s.station_id.clone();
        c.max_rate = s.t38.max_bit_rate.min(far.max_bit_rate.max(2400));
        c.ecm = s.t38.ecm;
        c.max_pages = s.receive.max_pages.max(1);
        c.receive_fine = s.receive.takes(ReceiveResolution::Fine);
        c.receive_superfine = s.receive.takes(ReceiveResolution::Superfine);
        let transport = Self::transport(&s, &far);
        // The caller's BYE ends the session where it stands (after [`AFTER_BYE`] for what is still on the
        // way), keeping the pages confirmed so far; a BYE
        // that comes while the session ends stays queued in the call's events and is seen below.
        let hung_up = AtomicBool::new(false);
        let run = line::run_until(
            &socket,
            Some(remote),
            c,
            transport,
            Duration::from_secs(5),
            hung_up_then_grace(&mut call.events, &hung_up),
            |_| {},
        )
        .await;
        let hung_up = hung_up.load(Ordering::SeqCst);
        let result = match run {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("T.38 receive failed: {e}");
                if !hung_up {
                    call.hang_up().await;
                }
                return;
            }
        };
        // Give the sender a moment to hang up first, as it should after DCN.
        if !hung_up
            && tokio::time::timeout(Duration::from_secs(2), far_end_hung_up(&mut call.events))
                .await
                .is_err()
        {
            call.hang_up().await;
        }
        if result.pages.is_empty() {
            tracing::info!(caller = %caller, outcome = ?result.outcome.result, detail = %result.outcome.detail, "call ended with no page received");
            return;
        }
        tracing::info!(pages = result.pages.len(), outcome = ?result.outcome.result, "fax received");
        let tiff =
            match line::received_tiff(&result.pages, concat!("faxhub ", env!("CARGO_PKG_VERSION")))
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("received pages could not be stored: {e}");
                    return;
                }
            };
        let fax = ReceivedFax {
            tiff,
            pages: result.pages.len() as u32,
            caller_number: Some(caller).filter(|c| !c.is_empty()),
            called_number: Some(called).filter(|c| !c.is_empty()),
            tsi: Some(result.stats.remote_ident.clone()).filter(|t| !t.is_empty()),
            started_at: started,
            ended_at: now_rfc3339(),
            stats: stats(&result.stats),
            page_info: result
                .pages
                .iter()
                .map(|p| protocol::InboundPage {
                    lines: p.page.height,
                    bad_lines: p.bad_lines,
                    lines_lost: p.lines_lost,
                    complete: p.complete,
                    confirmed: p.confirmed,
                })
                .collect(),
            failure: result.outcome.result.as_ref().err().map(|f| f.to_string()),
        };
        let _ = self.inner.received_tx.send(fax);
    }
}

/// The line's local number a called SIP user stands for (digits compared, so `15550102` is `+15550102`).
fn own_number<'a>(s: &'a Settings, user: &str) -> Option<&'a String> {
    let digits = |n: &str| n.chars().filter(char::is_ascii_digit).collect::<String>();
    let wanted = digits(user);
    s.local_numbers.iter().find(|n| digits(n) == wanted)
}

/// The highest rate and whether to use ECM for one attempt: the settings, the job and the far end's
/// T38MaxBitRate, and after a training or transmission failure the step-down of the retry policy (9600
/// bit/s, ECM off). A retry after a busy line or no answer keeps the full rate.
fn attempt_limits(s: &Settings, job: &SendJob, far_max: u32) -> (u32, bool) {
    let retry = job.step_down;
    let step = (retry && s.retry.step_down_rate).then_some(9600);
    let rate = [
        Some(s.t38.max_bit_rate),
        job.options.max_bit_rate,
        Some(far_max.max(2400)),
        step,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(14_400);
    let ecm = s.t38.ecm && job.options.ecm && !(retry && s.retry.ecm_off_on_retry);
    if retry && (step.is_some() || s.retry.ecm_off_on_retry) {
        tracing::info!(
            attempt = job.attempt_number,
            rate,
            ecm,
            "retry stepped down"
        );
    }
    (rate, ecm)
}

fn stats(s: &line::CallStats) -> CallStats {
    CallStats {
        bit_rate: (s.bit_rate > 0).then_some(s.bit_rate),
        ecm: Some(s.ecm),
        coding: s.compression.map(|c| c.name().to_string()),
        duration_ms: s.duration.as_millis() as u64,
        bad_lines: s.bad_lines,
        retransmissions: s.retransmitted_frames,
    }
}

/// Renders the job's documents to fax pages at the asked resolution, with the settings' header line
/// (none when neither the job nor the settings name the sender).
fn render_pages(job: &SendJob, s: &Settings) -> Result<Vec<t30::Page>, String> {
    let resolution = match job.options.resolution.as_str() {
        "standard" => render::Resolution::Standard,
        "superfine" => render::Resolution::Superfine,
        _ => render::Resolution::Fine,
    };
    let options = render::LoadOptions {
        threads: 1,
        ..render::LoadOptions::default()
    };
    let docs = job
        .documents
        .iter()
        .map(|(_, path)| {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            render::load_owned(bytes, &options).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let from = job
        .options
        .header
        .clone()
        .or_else(|| (!s.station_id.is_empty()).then(|| s.station_id.clone()));
    // Applied settings validated, so both parse; a fault here prints no header rather than a wrong one.
    let header = match (
        from,
        s.header(),
        protocol::settings::time_zone(&s.time_zone),
    ) {
        (Some(from), Ok(template), Some(zone)) => crate::pages::header_line(
            &template,
            &from,
            &s.station_id,
            &zone,
            jiff::Timestamp::now(),
        ),
        _ => None,
    };
    let o = render::FaxOptions {
        spec: render::PageSpec::new(resolution, render::PaperSize::A4),
        header,
        ..render::FaxOptions::default()
    };
    crate::pages::fax_pages(&docs, &o).map_err(|e| e.to_string())
}

/// Resolves once the supervisor cancels the attempt (never, if the sender of `rx` is gone).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when the far end hangs up (BYE); never if the call's events end otherwise.
async fn far_end_hung_up(events: &mut mpsc::UnboundedReceiver<CallEvent>) {
    while let Some(ev) = events.recv().await {
        if ev == CallEvent::Bye {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// How long a T.30 session may go on after the far end's BYE: the far end says its last frames (MCF,
/// DCN) over UDPTL just before its BYE, and those may come after it, so the session usually ends on its
/// own within this; past it the call is over and the session is ended where it stands.
const AFTER_BYE: Duration = Duration::from_secs(3);

/// Resolves [`AFTER_BYE`] after the far end hangs up, setting `hung_up` at the BYE: the `call_ended` of
/// [`line::run_until`], so the channel is not held by T.30's timers and what came before is kept.
async fn hung_up_then_grace(events: &mut mpsc::UnboundedReceiver<CallEvent>, hung_up: &AtomicBool) {
    far_end_hung_up(events).await;
    hung_up.store(true, Ordering::SeqCst);
    tokio::time::sleep(AFTER_BYE).await;
}

fn call_failure(e: &sip::Error) -> Outcome {
    let reason = match e {
        sip::Error::Busy { .. } => FailureReason::Busy,
        sip::Error::NoAnswer { .. } => FailureReason::NoAnswer,
        sip::Error::BadNumber { .. } => FailureReason::BadNumber,
        sip::Error::NoT38 { .. } => FailureReason::NoT38,
        sip::Error::TrunkDown { .. } => FailureReason::TrunkDown,
        sip::Error::Timeout => FailureReason::SipTimeout,
        sip::Error::Credentials { .. } => FailureReason::SipCredentials,
        sip::Error::BadAnswer(_) => FailureReason::BadAnswer,
        sip::Error::Stopped => FailureReason::LineDown,
        // Any other refusal, including ones a later `sip` names.
        _ => FailureReason::CallRefused,
    };
    Outcome::failed(reason, Some(e.to_string()), 0)
}

fn fax_failure(f: &t30::Failure, detail: &str, pages: u32) -> Outcome {
    use t30::Failure as F;
    let reason = match f {
        F::NoFaxTone => FailureReason::NoFaxTone,
        F::TrainingFailed => FailureReason::TrainingFailed,
        F::RemoteHungUp { .. } => FailureReason::RemoteHungUp,
        F::RetriesExhausted { .. } => FailureReason::RetriesExhausted,
        F::Incompatible { .. } => FailureReason::Incompatible,
        F::PageRejected { .. } => FailureReason::PageRejected,
        F::ReceiveTimeout { .. } => FailureReason::Timeout,
        F::LimitExceeded { .. } => FailureReason::LimitExceeded,
        F::BadPage { .. } => FailureReason::DocumentRejected,
        F::PasswordRejected => FailureReason::PasswordRejected,
        F::PageIncomplete { .. } => FailureReason::PageIncomplete,
    };
    Outcome::failed(reason, Some(format!("{f}; {detail}")), pages)
}

#[async_trait::async_trait]
impl Line for SipLine {
    fn channels(&self) -> u32 {
        if self.inner.up.load(Ordering::SeqCst) && self.inner.reachable.load(Ordering::SeqCst) {
            self.settings().channels
        } else {
            0
        }
    }

    fn max_bit_rate(&self) -> u32 {
        self.settings().t38.max_bit_rate
    }

    fn ecm(&self) -> bool {
        self.settings().t38.ecm
    }

    fn answers(&self) -> Vec<String> {
        self.settings().local_numbers
    }

    fn receiving(&self) -> u32 {
        self.inner.receiving.load(Ordering::SeqCst)
    }

    fn stop_answering(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    fn status(&self) -> Option<String> {
        if !self.inner.reachable.load(Ordering::SeqCst) {
            return Some(
                "the SIP proxy does not answer keep-alives (OPTIONS): no channels until it does"
                    .into(),
            );
        }
        self.inner
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn next_received(&self) -> Option<ReceivedFax> {
        self.inner.received_rx.lock().await.recv().await
    }

    fn apply_settings(&self, settings: &Settings) -> Result<(), SettingsError> {
        settings.validate()?;
        if !settings.sip.user.is_empty()
            && settings.sip.password.plain().is_none()
            && !settings.sip.registrar.is_empty()
        {
            return Err(SettingsError::PasswordMissing);
        }
        let new = settings.clone();
        let changed = {
            let mut cur = self
                .inner
                .settings
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let changed = cur.sip != new.sip;
            *cur = new;
            changed
        };
        if changed || !self.inner.up.load(Ordering::SeqCst) {
            let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(self.clone().start_ua(generation));
                }
                Err(_) => return Err(SettingsError::NoRuntime),
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        job: SendJob,
        progress: mpsc::UnboundedSender<LineProgress>,
        mut cancel: watch::Receiver<bool>,
    ) -> LineOutcome {
        let no_stats = CallStats::default();
        let Some(_guard) = self.take_channel(false) else {
            return LineOutcome {
                outcome: Outcome::failed(FailureReason::NoFreeChannel, None, 0),
                stats: no_stats,
            };
        };
        let s = self.settings();
        let report = |phase: Phase, page: Option<u32>, total: Option<u32>, rate: Option<u32>| {
            let _ = progress.send(LineProgress {
                phase,
                page,
                pages_total: total,
                bit_rate: rate,
            });
        };
        report(Phase::Preparing, None, None, None);
        let job2 = job.clone();
        let s2 = s.clone();
        let pages = match tokio::task::spawn_blocking(move || render_pages(&job2, &s2)).await {
            Ok(Ok(p)) if !p.is_empty() => p,
            Ok(Ok(_)) => {
                return LineOutcome {
                    outcome: Outcome::failed(
                        FailureReason::DocumentRejected,
                        Some("no pages".into()),
                        0,
                    ),
                    stats: no_stats,
                };
            }
            Ok(Err(e)) => {
                return LineOutcome {
                    outcome: Outcome::failed(FailureReason::DocumentRejected, Some(e), 0),
                    stats: no_stats,
                };
            }
            Err(e) => {
                return LineOutcome {
                    outcome: Outcome::failed(FailureReason::RenderFailed, Some(e.to_string()), 0),
                    stats: no_stats,
                };
            }
        };
        let total = pages.len() as u32;
        let Some(ua) = self.inner.ua.lock().await.clone() else {
            return LineOutcome {
                outcome: Outcome::failed(FailureReason::LineDown, None, 0),
                stats: no_stats,
            };
        };
        let socket = match UdpSocket::bind(SocketAddr::new(self.inner.cfg.media_ip, 0)).await {
            Ok(x) => x,
            Err(e) => {
                return LineOutcome {
                    outcome: Outcome::failed(FailureReason::NoMediaPort, Some(e.to_string()), 0),
                    stats: no_stats,
                };
            }
        };
        let local = socket
            .local_addr()
            .unwrap_or(SocketAddr::new(self.inner.cfg.media_ip, 0));
        report(Phase::Dialling, None, Some(total), None);
        let number = format!(
            "{}{}",
            s.dial_rules.access_code,
            job.recipient.trim_start_matches('+')
        );
        let ours = Self::t38_params(&s);
        let call = tokio::select! {
            r = ua.call(&number, sdp::t38(1, 1, local, &ours)) => r,
            _ = cancelled(&mut cancel) => {
                return LineOutcome { outcome: Outcome::failed(FailureReason::Cancelled, None, 0), stats: no_stats };
            }
        };
        let mut call = match call {
            Ok(c) => c,
            Err(e) => {
                return LineOutcome {
                    outcome: call_failure(&e),
                    stats: no_stats,
                };
            }
        };
        let Some((remote, far)) = call.remote_sdp.t38() else {
            call.hang_up().await;
            return LineOutcome {
                outcome: Outcome::failed(
                    FailureReason::NoT38,
                    Some("the answer has no T.38 stream".into()),
                    0,
                ),
                stats: no_stats,
            };
        };
        report(Phase::Negotiating, None, Some(total), None);
        let mut c = t30::Config::new(t30::Role::Send(pages), true);
        c.ident = job
            .options
            .tsi
            .clone()
            .unwrap_or_else(|| s.station_id.clone());
        (c.max_rate, c.ecm) = attempt_limits(&s, &job, far.max_bit_rate);
        let transport = Self::transport(&s, &far);
        let sent = AtomicU32::new(0);
        let hung_up = AtomicBool::new(false);
        let run = line::run_until(
            &socket,
            Some(remote),
            c,
            transport,
            Duration::ZERO,
            hung_up_then_grace(&mut call.events, &hung_up),
            |e| match e {
                t30::Event::Trained(d) => report(
                    Phase::Transmitting,
                    Some(1),
                    Some(total),
                    Some(d.modem.bit_rate()),
                ),
                t30::Event::PageSent { index } => {
                    sent.store(index + 1, Ordering::SeqCst);
                    if index + 1 < total {
                        report(Phase::Transmitting, Some(index + 2), Some(total), None);
                    }
                }
                t30::Event::PageReceived(_) => {}
            },
        );
        let ended = tokio::select! {
            r = run => Some(r),
            _ = cancelled(&mut cancel) => None,
        };
        if !hung_up.load(Ordering::SeqCst) {
            call.hang_up().await;
        }
        let pages_sent = sent.load(Ordering::SeqCst);
        let Some(result) = ended else {
            return LineOutcome {
                outcome: Outcome::failed(FailureReason::Cancelled, None, pages_sent),
                stats: no_stats,
            };
        };
        report(Phase::Finished, None, Some(total), None);
        match result {
            Ok(r) => {
                let stats = stats(&r.stats);
                let outcome = match &r.outcome.result {
                    Ok(()) => Outcome::Sent {
                        pages: r.stats.pages,
                    },
                    Err(f) => fax_failure(f, &r.outcome.detail, r.stats.pages),
                };
                LineOutcome { outcome, stats }
            }
            Err(e) => LineOutcome {
                outcome: Outcome::failed(FailureReason::MediaError, Some(e.to_string()), 0),
                stats: no_stats,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use protocol::settings::RetryPolicy;

    /// Attempt `attempt_number`; a later attempt follows a transmission failure unless `job_after_busy`
    /// made it.
    fn job(attempt_number: u32) -> SendJob {
        SendJob {
            attempt_id: "a".into(),
            job_id: "j".into(),
            recipient: "+15550102".into(),
            documents: Vec::new(),
            options: protocol::SendOptions {
                resolution: "fine".into(),
                ecm: true,
                ..Default::default()
            },
            attempt_number,
            step_down: attempt_number > 1,
        }
    }

    fn job_after_busy(attempt_number: u32) -> SendJob {
        SendJob {
            step_down: false,
            ..job(attempt_number)
        }
    }

    fn settings(step_down_rate: bool, ecm_off_on_retry: bool) -> Settings {
        Settings {
            retry: RetryPolicy {
                step_down_rate,
                ecm_off_on_retry,
            },
            ..Settings::default()
        }
    }

    #[test]
    fn first_attempts_use_the_settings_and_the_far_end() {
        assert_eq!(
            attempt_limits(&settings(true, true), &job(1), 14_400),
            (14_400, true)
        );
        assert_eq!(
            attempt_limits(&settings(true, true), &job(1), 9600),
            (9600, true)
        );
        let mut s = settings(false, false);
        s.t38.ecm = false;
        s.t38.max_bit_rate = 7200;
        assert_eq!(attempt_limits(&s, &job(1), 14_400), (7200, false));
    }

    #[test]
    fn retries_step_down_as_the_retry_policy_says() {
        assert_eq!(
            attempt_limits(&settings(true, false), &job(2), 14_400),
            (9600, true)
        );
        assert_eq!(
            attempt_limits(&settings(false, true), &job(2), 14_400),
            (14_400, false)
        );
        assert_eq!(
            attempt_limits(&settings(true, true), &job(3), 14_400),
            (9600, false)
        );
        assert_eq!(
            attempt_limits(&settings(false, false), &job(2), 14_400),
            (14_400, true)
        );
        // Never above what the far end takes.
        assert_eq!(
            attempt_limits(&settings(true, false), &job(2), 4800),
            (4800, true)
        );
        // After a busy line or no answer: the full rate and error correction, whatever the policy.
        assert_eq!(
            attempt_limits(&settings(true, true), &job_after_busy(3), 14_400),
            (14_400, true)
        );
    }

    #[test]
    fn the_policy_arrives_in_the_pushed_settings() {
        let s: Settings = serde_json::from_value(serde_json::json!({
            "retry": {"step_down_rate": true, "ecm_off_on_retry": true},
            "sip": {"transport": "tcp"}
        }))
        .unwrap();
        assert_eq!(
            s.retry,
            RetryPolicy {
                step_down_rate: true,
                ecm_off_on_retry: true
            }
        );
        assert_eq!(s.sip.transport, SipTransport::Tcp);
    }
}
