//! A SIP user agent for a fax server, over UDP and TCP: registers its account (digest, refresh), places
//! calls with an SDP offer (and CANCELs them when the caller drops the `call` future before the answer),
//! answers incoming calls, keeps their dialogs (ACK, re-INVITE, UPDATE, BYE, CANCEL), answers OPTIONS and sends OPTIONS keep-alives to its proxy. One task owns the sockets and
//! every transaction; [`UserAgent`] talks to it through channels.
//!
//! The agent listens on UDP and TCP on the same port. Its own requests go to the account's proxy over
//! the account's transport with the dialog's route set (loose routing); responses go back the way the
//! request came (over TCP, on the same connection). TCP connections are framed by Content-Length, kept
//! open for reuse, and dropped when the peer closes them or sends what cannot be framed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::Error;
use crate::digest::Challenge;
use crate::message::{Message, addr_uri, param};
use crate::sdp::Sdp;
use crate::transaction::{ClientEvent, ClientTx, ServerTx, Timers};

/// The SIP account of a fax server.
#[derive(Clone)]
pub struct Account {
    /// Where requests go: the registrar / outbound proxy.
    pub proxy: SocketAddr,
    /// The domain of our address of record (`sip:user@domain`).
    pub domain: String,
    pub user: String,
    /// The digest user name (often the same as `user`).
    pub auth_user: String,
    pub password: String,
    /// Registration lifetime asked for, in seconds.
    pub expires: u32,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("proxy", &self.proxy)
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("auth_user", &self.auth_user)
            .field("password", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// The transport of the agent's own requests (both are always listened on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    /// The Via token.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "" | "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            other => Err(Error::UnsupportedTransport(other.to_string())),
        }
    }
}

/// User agent settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (UDP and TCP on the same port).
    pub bind: SocketAddr,
    pub account: Account,
    /// How our requests travel to the proxy.
    pub transport: Transport,
    pub timers: Timers,
    pub user_agent: String,
    /// Send OPTIONS to the proxy this often and report whether it answers ([`UserAgent::trunk`]).
    pub keepalive: Option<Duration>,
}

impl Config {
    /// UDP, default timers, no keep-alive.
    pub fn new(bind: SocketAddr, account: Account, user_agent: impl Into<String>) -> Self {
        Self {
            bind,
            account,
            transport: Transport::Udp,
            timers: Timers::default(),
            user_agent: user_agent.into(),
            keepalive: None,
        }
    }
}

/// Whether the proxy answers our keep-alives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkState {
    /// No keep-alive answered or missed yet.
    Unknown,
    Reachable,
    /// The last keep-alive went unanswered (timer F).
    Unreachable,
}

/// What happens in an established call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The far end sent a re-INVITE: with a new media description (e.g. switching audio to T.38), or the
    /// same one (a session refresh, already answered with our current SDP).
    ReInvite { sdp: Option<Sdp>, refresh: bool },
    /// The far end hung up (BYE).
    Bye,
}

/// An established call (a dialog).
#[derive(Debug)]
pub struct Call {
    pub call_id: String,
    /// The far end's SDP as answered (outgoing) or offered (incoming).
    pub remote_sdp: Sdp,
    pub events: mpsc::UnboundedReceiver<CallEvent>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl Call {
    /// Hangs up (BYE) and waits for the far end's answer (or timer F).
    pub async fn hang_up(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .cmd
            .send(Cmd::Bye {
                call_id: self.call_id.clone(),
                done: tx,
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// The T.38 SDP to answer with if the far end re-INVITEs this call to T.38.
    pub fn prepare_t38(&self, sdp: Vec<u8>) {
        let _ = self.cmd.send(Cmd::PrepareT38 {
            call_id: self.call_id.clone(),
            sdp,
        });
    }

    /// Refreshes the session without changing it (RFC 4028): a re-INVITE offering our current SDP
    /// unchanged, or an UPDATE without a body. The media goes on untouched.
    pub async fn refresh(&self, update: bool) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Refresh {
                call_id: self.call_id.clone(),
                update,
                done: tx,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Sends a re-INVITE with a new offer (e.g. to switch to T.38) and returns the answer.
    pub async fn reinvite(&self, sdp: Vec<u8>) -> Result<Sdp, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::ReInvite {
                call_id: self.call_id.clone(),
                sdp,
                done: tx,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

/// An incoming call waiting for an answer.
#[derive(Debug)]
pub struct Incoming {
    pub call_id: String,
    /// The called user / number (Request-URI user).
    pub to_user: String,
    /// The caller's user part (From).
    pub from_user: String,
    pub offer: Option<Sdp>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl Incoming {
    /// Answers 200 OK with our SDP.
    pub async fn accept(self, sdp: Vec<u8>) -> Result<Call, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Accept {
                call_id: self.call_id.clone(),
                sdp,
                done: tx,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Refuses with a final response (486 busy, 488 not acceptable, ...).
    pub fn reject(self, code: u16, reason: &str) {
        let _ = self.cmd.send(Cmd::Reject {
            call_id: self.call_id.clone(),
            code,
            reason: reason.to_string(),
        });
    }
}

enum Cmd {
    Register {
        done: oneshot::Sender<Result<u32, Error>>,
    },
    Invite {
        to: String,
        sdp: Vec<u8>,
        t38: Option<Vec<u8>>,
        done: oneshot::Sender<Result<Call, Error>>,
    },
    Accept {
        call_id: String,
        sdp: Vec<u8>,
        done: oneshot::Sender<Result<Call, Error>>,
    },
    Reject {
        call_id: String,
        code: u16,
        reason: String,
    },
    ReInvite {
        call_id: String,
        sdp: Vec<u8>,
        done: oneshot::Sender<Result<Sdp, Error>>,
    },
    Refresh {
        call_id: String,
        update: bool,
        done: oneshot::Sender<Result<(), Error>>,
    },
    Bye {
        call_id: String,
        done: oneshot::Sender<()>,
    },
    PrepareT38 {
        call_id: String,
        sdp: Vec<u8>,
    },
    Shutdown,
}

/// The user agent's handle.
#[derive(Debug, Clone)]
pub struct UserAgent {
    cmd: mpsc::UnboundedSender<Cmd>,
    pub local: SocketAddr,
    trunk: watch::Receiver<TrunkState>,
}

impl UserAgent {
    /// Binds the UDP socket and the TCP listener (same port) and starts the agent; incoming calls
    /// arrive on the returned receiver.
    pub async fn start(cfg: Config) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Incoming>)> {
        let (udp, tcp) = bind_both(cfg.bind).await?;
        let local = udp.local_addr()?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (trunk_tx, trunk_rx) = watch::channel(TrunkState::Unknown);
        let engine = Engine::new(cfg, local, cmd_tx.clone(), in_tx, trunk_tx);
        tokio::spawn(engine.run(Arc::new(udp), tcp, cmd_rx));
        Ok((
            Self {
                cmd: cmd_tx,
                local,
                trunk: trunk_rx,
            },
            in_rx,
        ))
    }

    /// Whether the proxy answers our OPTIONS keep-alives (stays `Unknown` without keep-alives).
    pub fn trunk(&self) -> watch::Receiver<TrunkState> {
        self.trunk.clone()
    }

    /// Registers (answering a digest challenge once); the agent refreshes before expiry. Returns the
    /// lifetime the registrar granted.
    pub async fn register(&self) -> Result<u32, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Register { done: tx })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Stops the agent and closes its socket (calls in progress are abandoned).
    pub fn shutdown(&self) {
        let _ = self.cmd.send(Cmd::Shutdown);
    }

    /// Calls `to` (a number or user at the account's domain) with an SDP offer; returns when answered.
    pub async fn call(&self, to: &str, sdp: Vec<u8>) -> Result<Call, Error> {
        self.call_with(to, sdp, None).await
    }

    /// Calls `to` with an audio offer, ready to answer a switch to T.38 with `t38` from the first moment
    /// of the call (the callee may re-INVITE before this returns).
    pub async fn call_audio(&self, to: &str, audio: Vec<u8>, t38: Vec<u8>) -> Result<Call, Error> {
        self.call_with(to, audio, Some(t38)).await
    }

    async fn call_with(&self, to: &str, sdp: Vec<u8>, t38: Option<Vec<u8>>) -> Result<Call, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Invite {
                to: to.to_string(),
                sdp,
                t38,
                done: tx,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

/// What a client transaction is for.
enum Purpose {
    Register {
        done: Option<oneshot::Sender<Result<u32, Error>>>,
        authed: bool,
    },
    Invite {
        done: Option<oneshot::Sender<Result<Call, Error>>>,
        authed: bool,
        call_id: String,
        t38: Option<Vec<u8>>,
        /// A provisional response came (a CANCEL may be sent from then on).
        provisional: bool,
        cancelled: bool,
    },
    ReInvite {
        done: Option<oneshot::Sender<Result<Sdp, Error>>>,
        call_id: String,
    },
    Refresh {
        done: Option<oneshot::Sender<Result<(), Error>>>,
        call_id: String,
    },
    KeepAlive,
    Bye {
        done: Option<oneshot::Sender<()>>,
    },
    Other,
}

/// A message to send and where: over TCP it goes on the connection to (or from) that address.
struct Outgoing {
    bytes: Vec<u8>,
    to: SocketAddr,
    tcp: bool,
}

struct Client {
    tx: ClientTx,
    request: Message,
    purpose: Purpose,
}

/// A dialog (RFC 3261 §12).
struct Dialog {
    local_tag: String,
    remote_tag: String,
    /// Our From / To values as sent in this dialog.
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    events: mpsc::UnboundedSender<CallEvent>,
    /// Our current SDP (answered to refreshes).
    local_sdp: Vec<u8>,
    /// Our T.38 SDP, answered when the far end switches the call to T.38.
    t38_local: Option<Vec<u8>>,
    sdp_version: u64,
    /// UAS: the 2xx we retransmit until ACK (timer G-like with T1 doubling to T2, up to 64 T1).
    pending_2xx: Option<(Vec<u8>, Duration, Duration, Duration)>,
}

/// An INVITE we received and have not answered yet.
struct Pending {
    request: Message,
    server: String,
    local_tag: String,
}

struct Engine {
    cfg: Config,
    local: SocketAddr,
    origin: Instant,
    clients: HashMap<String, Client>,
    servers: HashMap<String, ServerTx>,
    /// Where each server transaction's responses go (the request's source, and whether over TCP).
    reply_to: HashMap<String, (SocketAddr, bool)>,
    dialogs: HashMap<String, Dialog>,
    pending: HashMap<String, Pending>,
    cmd: mpsc::UnboundedSender<Cmd>,
    incoming: mpsc::UnboundedSender<Incoming>,
    register_cseq: u32,
    register_call_id: String,
    refresh_at: Option<Duration>,
    keepalive_at: Option<Duration>,
    trunk: watch::Sender<TrunkState>,
    nc: u32,
    out: Vec<Outgoing>,
}

/// Client transactions are keyed by branch and method: a CANCEL shares its INVITE's branch.
fn client_key(branch: &str, method: &str) -> String {
    format!("{branch}/{method}")
}

fn token() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..12)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[r.gen_range(0..36)]))
        .collect()
}

impl Engine {
    fn new(
        cfg: Config,
        local: SocketAddr,
        cmd: mpsc::UnboundedSender<Cmd>,
        incoming: mpsc::UnboundedSender<Incoming>,
        trunk: watch::Sender<TrunkState>,
    ) -> Self {
        Self {
            keepalive_at: cfg.keepalive.map(|_| Duration::ZERO),
            trunk,
            cfg,
            local,
            origin: Instant::now(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            reply_to: HashMap::new(),
            dialogs: HashMap::new(),
            pending: HashMap::new(),
            cmd,
            incoming,
            register_cseq: 0,
            register_call_id: format!("{}@faxhub", token()),
            refresh_at: None,
            nc: 0,
            out: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.account.user, self.cfg.account.domain)
    }

    fn tcp(&self) -> bool {
        self.cfg.transport == Transport::Tcp
    }

    fn contact(&self) -> String {
        if self.tcp() {
            format!(
                "<sip:{}@{};transport=tcp>",
                self.cfg.account.user, self.local
            )
        } else {
            format!("<sip:{}@{}>", self.cfg.account.user, self.local)
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.cfg.transport.name(),
            self.local
        )
    }

    /// Queues bytes for the proxy over the account's transport.
    fn send_proxy(&mut self, bytes: Vec<u8>) {
        let tcp = self.tcp();
        self.out.push(Outgoing {
            bytes,
            to: self.cfg.account.proxy,
            tcp,
        });
    }

    fn base_request(
        &self,
        method: &str,
        uri: &str,
        from: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let mut m = Message::request(method, uri);
        m.add_header("Via", self.via(&format!("z9hG4bK{}", token())));
        m.add_header("Max-Forwards", "70");
        m.add_header("From", from);
        m.add_header("To", to);
        m.add_header("Call-ID", call_id);
        m.add_header("CSeq", format!("{cseq} {method}"));
        m.add_header("User-Agent", self.cfg.user_agent.clone());
        m
    }

    fn start_client(&mut self, request: Message, purpose: Purpose) {
        let now = self.now();
        let mut tx = ClientTx::new(&request, self.tcp(), self.cfg.timers, now);
        while let Some(b) = tx.poll_transmit() {
            self.send_proxy(b);
        }
        let key = client_key(&tx.branch, request.method().unwrap_or(""));
        self.clients.insert(
            key,
            Client {
                tx,
                request,
                purpose,
            },
        );
    }

    /// CANCELs an INVITE whose caller went away (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, Route
    /// and CSeq number, one Via equal to the INVITE's top Via (so the same branch).
    fn cancel(&mut self, invite: &Message) {
        let uri = match &invite.start {
            crate::message::StartLine::Request { uri, .. } => uri.clone(),
            crate::message::StartLine::Response { .. } => return,
        };
        let mut m = Message::request("CANCEL", &uri);
        if let Some(v) = invite.header_values("Via").first() {
            m.add_header("Via", v.clone());
        }
        m.add_header("Max-Forwards", "70");
        for h in ["From", "To", "Call-ID"] {
            if let Some(v) = invite.header(h) {
                m.add_header(h, v.to_string());
            }
        }
        m.add_header(
            "CSeq",
            format!("{} CANCEL", invite.cseq().map_or(1, |c| c.0)),
        );
        for r in invite.header_values("Route") {
            m.add_header("Route", r);
        }
        debug!(
            call_id = invite.call_id().unwrap_or(""),
            "the caller gave up: CANCEL"
        );
        self.start_client(m, Purpose::Other);
    }

    /// INVITEs whose caller went away and that have had a provisional answer: CANCEL them now.
    fn cancel_abandoned(&mut self) {
        let mut cancel = Vec::new();
        for c in self.clients.values_mut() {
            if let Purpose::Invite {
                done: Some(d),
                provisional: true,
                cancelled,
                ..
            } = &mut c.purpose
                && d.is_closed()
                && !*cancelled
            {
                *cancelled = true;
                cancel.push(c.request.clone());
            }
        }
        for r in cancel {
            self.cancel(&r);
        }
    }

    fn register(
        &mut self,
        done: Option<oneshot::Sender<Result<u32, Error>>>,
        auth: Option<String>,
    ) {
        self.register_cseq += 1;
        let aor = self.aor();
        let uri = format!("sip:{}", self.cfg.account.domain);
        let mut m = self.base_request(
            "REGISTER",
            &uri,
            &format!("<{aor}>;tag={}", token()),
            &format!("<{aor}>"),
            &self.register_call_id.clone(),
            self.register_cseq,
        );
        m.add_header("Contact", self.contact());
        m.add_header("Expires", self.cfg.account.expires.to_string());
        let authed = auth.is_some();
        if let Some(a) = auth {
            m.add_header("Authorization", a);
        }
        self.start_client(m, Purpose::Register { done, authed });
    }

    fn authorize(
        &mut self,
        resp: &Message,
        request: &Message,
    ) -> Result<(String, &'static str), String> {
        let (hdr, out) = if resp.code() == Some(407) {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let v = resp
            .header(hdr)
            .ok_or_else(|| format!("{} without {hdr}", resp.code().unwrap_or(0)))?;
        let c = Challenge::parse(v).map_err(|e| e.to_string())?;
        let uri = match &request.start {
            crate::message::StartLine::Request { uri, .. } => uri.clone(),
            crate::message::StartLine::Response { .. } => String::new(),
        };
        self.nc += 1;
        let a = &self.cfg.account;
        Ok((
            c.answer(
                request.method().unwrap_or(""),
                &uri,
                &a.auth_user,
                &a.password,
                &token(),
                self.nc,
            ),
            out,
        ))
    }

    fn invite(
        &mut self,
        to: &str,
        sdp: Vec<u8>,
        t38: Option<Vec<u8>>,
        done: Option<oneshot::Sender<Result<Call, Error>>>,
        call_id: Option<String>,
        auth: Option<(String, &'static str)>,
    ) {
        let call_id = call_id.unwrap_or_else(|| format!("{}@faxhub", token()));
        let uri = if to.starts_with("sip:") {
            to.to_string()
        } else {
            format!("sip:{to}@{}", self.cfg.account.domain)
        };
        let tag = token();
        let cseq = if auth.is_some() { 2 } else { 1 };
        let mut m = self.base_request(
            "INVITE",
            &uri,
            &format!("<{}>;tag={tag}", self.aor()),
            &format!("<{uri}>"),
            &call_id,
            cseq,
        );
        m.add_header("Contact", self.contact());
        m.add_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE");
        m.add_header("Content-Type", "application/sdp");
        let authed = auth.is_some();
        if let Some((a, h)) = auth {
            m.add_header(h, a);
        }
        m.body = sdp;
        self.start_client(
            m,
            Purpose::Invite {
                done,
                authed,
                call_id,
                t38,
                provisional: false,
                cancelled: false,
            },
        );
    }

    /// An OPTIONS keep-alive to the proxy (out of any dialog).
    fn keepalive(&mut self) {
        let aor = self.aor();
        let uri = format!("sip:{}", self.cfg.account.proxy);
        let mut m = self.base_request(
            "OPTIONS",
            &uri,
            &format!("<{aor}>;tag={}", token()),
            &format!("<{uri}>"),
            &format!("{}@faxhub", token()),
            1,
        );
        m.add_header("Accept", "application/sdp");
        self.start_client(m, Purpose::KeepAlive);
    }

    fn set_trunk(&mut self, state: TrunkState) {
        if *self.trunk.borrow() != state {
            match state {
                TrunkState::Unreachable => {
                    warn!(proxy = %self.cfg.account.proxy, "the SIP proxy does not answer keep-alives")
                }
                _ => debug!(proxy = %self.cfg.account.proxy, ?state, "SIP proxy keep-alive"),
            }
            self.trunk.send_replace(state);
        }
    }

    /// A request inside a dialog: Request-URI the remote target, Route the route set.
    fn in_dialog(&mut self, call_id: &str, method: &str) -> Option<Message> {
        let d = self.dialogs.get_mut(call_id)?;
        d.local_cseq += 1;
        let (target, from, to, cseq, routes) = (
            d.remote_target.clone(),
            format!("{};tag={}", d.local_uri, d.local_tag),
            format!("{};tag={}", d.remote_uri, d.remote_tag),
            d.local_cseq,
            d.route_set.clone(),
        );
        let mut m = self.base_request(method, &target, &from, &to, call_id, cseq);
        for r in routes {
            m.add_header("Route", r);
        }
        Some(m)
    }

    fn make_call(
        &self,
        call_id: &str,
        remote_sdp: Sdp,
        events: mpsc::UnboundedReceiver<CallEvent>,
    ) -> Call {
        Call {
            call_id: call_id.to_string(),
            remote_sdp,
            events,
            cmd: self.cmd.clone(),
        }
    }

    fn on_command(&mut self, c: Cmd) {
        match c {
            Cmd::Register { done } => self.register(Some(done), None),
            Cmd::Invite { to, sdp, t38, done } => {
                self.invite(&to, sdp, t38, Some(done), None, None)
            }
            Cmd::Accept { call_id, sdp, done } => {
                let Some(p) = self.pending.remove(&call_id) else {
                    let _ = done.send(Err(Error::Refused {
                        code: 481,
                        reason: "the call is gone".into(),
                    }));
                    return;
                };
                let offer = Sdp::parse(&p.request.body);
                let mut ok = Message::response_to(&p.request, 200, "OK", Some(&p.local_tag));
                ok.add_header("Contact", self.contact());
                ok.add_header("Content-Type", "application/sdp");
                ok.body = sdp.clone();
                let (tx, rx) = mpsc::unbounded_channel();
                let req = &p.request;
                let remote_target = req.header("Contact").and_then(addr_uri).map_or_else(
                    || {
                        req.header("From")
                            .and_then(addr_uri)
                            .map(|u| u.to_string())
                            .unwrap_or_default()
                    },
                    |u| u.to_string(),
                );
                let from = req.header("From").unwrap_or("");
                let to = req.header("To").unwrap_or("");
                let strip = |v: &str| v.split(";tag=").next().unwrap_or(v).to_string();
                let now = self.now();
                let bytes = ok.to_bytes();
                self.dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        local_tag: p.local_tag.clone(),
                        remote_tag: req.from_tag().unwrap_or_default(),
                        local_uri: strip(to),
                        remote_uri: strip(from),
                        remote_target,
                        route_set: req.header_values("Record-Route"),
                        local_cseq: 0,
                        events: tx,
                        local_sdp: sdp,
                        t38_local: None,
                        sdp_version: 1,
                        pending_2xx: Some((
                            bytes.clone(),
                            now + self.cfg.timers.t1,
                            self.cfg.timers.t1,
                            now + self.cfg.timers.t1 * 64,
                        )),
                    },
                );
                self.respond_server(&p.server, &ok);
                let _ = bytes;
                match offer {
                    Ok(sdp) => {
                        let call = self.make_call(&call_id, sdp, rx);
                        let _ = done.send(Ok(call));
                    }
                    Err(e) => {
                        let _ = done.send(Err(Error::BadAnswer(e.to_string())));
                    }
                }
            }
            Cmd::Reject {
                call_id,
                code,
                reason,
            } => {
                if let Some(p) = self.pending.remove(&call_id) {
                    let r = Message::response_to(&p.request, code, &reason, Some(&p.local_tag));
                    self.respond_server(&p.server, &r);
                }
            }
            Cmd::ReInvite { call_id, sdp, done } => {
                let Some(mut m) = self.in_dialog(&call_id, "INVITE") else {
                    let _ = done.send(Err(Error::Refused {
                        code: 481,
                        reason: "no such call".into(),
                    }));
                    return;
                };
                m.add_header("Contact", self.contact());
                m.add_header("Content-Type", "application/sdp");
                m.body = sdp.clone();
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.local_sdp = sdp;
                }
                self.start_client(
                    m,
                    Purpose::ReInvite {
                        done: Some(done),
                        call_id,
                    },
                );
            }
            Cmd::Refresh {
                call_id,
                update,
                done,
            } => {
                let method = if update { "UPDATE" } else { "INVITE" };
                let Some(mut m) = self.in_dialog(&call_id, method) else {
                    let _ = done.send(Err(Error::Refused {
                        code: 481,
                        reason: "no such call".into(),
                    }));
                    return;
                };
                m.add_header("Contact", self.contact());
                m.add_header("Session-Expires", "1800;refresher=uac");
                if !update && let Some(d) = self.dialogs.get(&call_id) {
                    m.add_header("Content-Type", "application/sdp");
                    m.body = d.local_sdp.clone();
                }
                self.start_client(
                    m,
                    Purpose::Refresh {
                        done: Some(done),
                        call_id,
                    },
                );
            }
            Cmd::Shutdown => {}
            Cmd::PrepareT38 { call_id, sdp } => {
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.t38_local = Some(sdp);
                }
            }
            Cmd::Bye { call_id, done } => match self.in_dialog(&call_id, "BYE") {
                Some(m) => {
                    self.dialogs.remove(&call_id);
                    self.start_client(m, Purpose::Bye { done: Some(done) });
                }
                None => {
                    let _ = done.send(());
                }
            },
        }
    }

    fn respond_server(&mut self, key: &str, r: &Message) {
        let now = self.now();
        let (to, tcp) = self
            .reply_to
            .get(key)
            .copied()
            .unwrap_or((self.cfg.account.proxy, self.tcp()));
        if let Some(st) = self.servers.get_mut(key) {
            st.respond(now, r);
            while let Some(bytes) = st.poll_transmit() {
                self.out.push(Outgoing { bytes, to, tcp });
            }
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        match Message::parse(bytes) {
            Ok(m) => self.on_message(m, from, false),
            Err(e) => debug!(%from, error = %e, "unparsable SIP datagram ignored"),
        }
    }

    fn on_message(&mut self, m: Message, from: SocketAddr, tcp: bool) {
        if m.check().is_err() {
            debug!(%from, "SIP message without its mandatory headers ignored");
            return;
        }
        if m.code().is_some() {
            self.on_response(m);
        } else {
            self.on_request(m, from, tcp);
        }
    }

    fn on_response(&mut self, resp: Message) {
        let Some(branch) = resp.branch() else { return };
        let Some((_, method)) = resp.cseq() else {
            return;
        };
        let key = client_key(&branch, &method);
        let now = self.now();
        let Some(mut c) = self.clients.remove(&key) else {
            // A retransmitted 2xx to an INVITE whose transaction ended: ACK it again.
            if resp.code().is_some_and(|c| (200..300).contains(&c))
                && resp.cseq().is_some_and(|(_, m)| m == "INVITE")
                && let Some(call_id) = resp.call_id().map(str::to_string)
                && let Some(ack) = self.ack_2xx(&call_id, &resp)
            {
                self.send_proxy(ack);
            }
            return;
        };
        let ev = c.tx.on_response(now, &resp, &c.request);
        while let Some(b) = c.tx.poll_transmit() {
            self.send_proxy(b);
        }
        if resp.code().is_some_and(|code| code < 200)
            && let Purpose::Invite { provisional, .. } = &mut c.purpose
        {
            *provisional = true;
        }
        match ev {
            Some(ClientEvent::Final(r)) => self.on_final(c, r),
            Some(_) | None => {
                if !c.tx.is_terminated() {
                    self.clients.insert(key, c);
                }
            }
        }
        self.cancel_abandoned();
    }

    /// The ACK for a 2xx (RFC 3261 §13.2.2.4): a new transaction in the dialog, same CSeq number.
    fn ack_2xx(&mut self, call_id: &str, resp: &Message) -> Option<Vec<u8>> {
        let d = self.dialogs.get(call_id)?;
        let n = resp.cseq()?.0;
        let mut m = self.base_request(
            "ACK",
            &d.remote_target,
            &format!("{};tag={}", d.local_uri, d.local_tag),
            &format!("{};tag={}", d.remote_uri, d.remote_tag),
            call_id,
            n,
        );
        for r in d.route_set.clone() {
            m.add_header("Route", r);
        }
        Some(m.to_bytes())
    }

    fn on_final(&mut self, mut c: Client, resp: Message) {
        let code = resp.code().unwrap_or(500);
        let reason = match &resp.start {
            crate::message::StartLine::Response { reason, .. } => reason.clone(),
            crate::message::StartLine::Request { .. } => String::new(),
        };
        let keep = !c.tx.is_terminated();
        match std::mem::replace(&mut c.purpose, Purpose::Other) {
            Purpose::Register { done, authed } => {
                if (code == 401 || code == 407) && !authed {
                    match self.authorize(&resp, &c.request) {
                        Ok((a, _)) => self.register(done, Some(a)),
                        Err(e) => {
                            if let Some(d) = done {
                                let _ = d.send(Err(Error::RegistrarChallenge(e)));
                            }
                        }
                    }
                } else if (200..300).contains(&code) {
                    let granted = resp
                        .header_values("Contact")
                        .iter()
                        .find_map(|c| param(c, "expires").and_then(|e| e.parse().ok()))
                        .or_else(|| resp.header("Expires").and_then(|e| e.trim().parse().ok()))
                        .unwrap_or(self.cfg.account.expires);
                    // Refresh well before expiry.
                    self.refresh_at =
                        Some(self.now() + Duration::from_secs(u64::from(granted.max(10)) * 8 / 10));
                    if let Some(d) = done {
                        let _ = d.send(Ok(granted));
                    }
                } else if let Some(d) = done {
                    let e = if matches!(code, 401 | 403 | 407) {
                        Error::RegistrarCredentials { code, reason }
                    } else {
                        Error::RegistrarRefused { code, reason }
                    };
                    warn!(%e, "registration failed");
                    let _ = d.send(Err(e));
                }
            }
            Purpose::Invite {
                done,
                authed,
                call_id,
                t38,
                ..
            } => {
                if (code == 401 || code == 407) && !authed {
                    let to = match &c.request.start {
                        crate::message::StartLine::Request { uri, .. } => uri.clone(),
                        crate::message::StartLine::Response { .. } => String::new(),
                    };
                    match self.authorize(&resp, &c.request) {
                        Ok(a) => self.invite(
                            &to,
                            c.request.body.clone(),
                            t38,
                            done,
                            Some(call_id),
                            Some(a),
                        ),
                        Err(_) => {
                            if let Some(d) = done {
                                let _ = d.send(Err(Error::Credentials { code }));
                            }
                        }
                    }
                } else if (200..300).contains(&code) {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let req = &c.request;
                    let strip = |v: &str| v.split(";tag=").next().unwrap_or(v).to_string();
                    let mut routes = resp.header_values("Record-Route");
                    routes.reverse();
                    let dialog = Dialog {
                        local_tag: req.from_tag().unwrap_or_default(),
                        remote_tag: resp.to_tag().unwrap_or_default(),
                        local_uri: strip(req.header("From").unwrap_or("")),
                        remote_uri: strip(req.header("To").unwrap_or("")),
                        remote_target: resp
                            .header("Contact")
                            .and_then(addr_uri)
                            .map(|u| u.to_string())
                            .unwrap_or_default(),
                        route_set: routes,
                        local_cseq: req.cseq().map_or(1, |c| c.0),
                        events: tx,
                        local_sdp: req.body.clone(),
                        t38_local: t38,
                        sdp_version: 1,
                        pending_2xx: None,
                    };
                    self.dialogs.insert(call_id.clone(), dialog);
                    if let Some(ack) = self.ack_2xx(&call_id, &resp) {
                        self.send_proxy(ack);
                    }
                    let result = Sdp::parse(&resp.body)
                        .map_err(|e| Error::BadAnswer(e.to_string()))
                        .map(|sdp| self.make_call(&call_id, sdp, rx));
                    let taken = match done {
                        Some(d) => d.send(result).is_ok(),
                        None => false,
                    };
                    if !taken {
                        // Answered after the caller gave up (CANCEL and 200 crossed): hang up at once.
                        debug!(%call_id, "answered after the caller gave up: BYE");
                        if let Some(m) = self.in_dialog(&call_id, "BYE") {
                            self.dialogs.remove(&call_id);
                            self.start_client(m, Purpose::Bye { done: None });
                        }
                    }
                } else if let Some(d) = done {
                    let _ = d.send(Err(Error::from_response(code, &reason)));
                }
            }
            Purpose::ReInvite { done, call_id } => {
                if (200..300).contains(&code) {
                    if let Some(ack) = self.ack_2xx(&call_id, &resp) {
                        self.send_proxy(ack);
                    }
                    if let Some(d) = done {
                        let _ = d.send(
                            Sdp::parse(&resp.body).map_err(|e| Error::BadAnswer(e.to_string())),
                        );
                    }
                } else if let Some(d) = done {
                    let _ = d.send(Err(Error::from_response(code, &reason)));
                }
            }
            Purpose::Refresh { done, call_id } => {
                if (200..300).contains(&code)
                    && resp.cseq().is_some_and(|(_, m)| m == "INVITE")
                    && let Some(ack) = self.ack_2xx(&call_id, &resp)
                {
                    self.send_proxy(ack);
                }
                if let Some(d) = done {
                    let _ = d.send(if (200..300).contains(&code) {
                        Ok(())
                    } else {
                        Err(Error::from_response(code, &reason))
                    });
                }
            }
            Purpose::KeepAlive => {
                // Any answer, even 404 or 405, shows the proxy is there.
                self.set_trunk(TrunkState::Reachable);
            }
            Purpose::Bye { done } => {
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            Purpose::Other => {}
        }
        if keep {
            let key = client_key(&c.tx.branch, c.request.method().unwrap_or(""));
            self.clients.insert(key, c);
        }
    }

    fn on_request(&mut self, req: Message, from: SocketAddr, tcp: bool) {
        let now = self.now();
        let method = req.method().unwrap_or("").to_string();
        let branch = req.branch().unwrap_or_default();
        let call_id = req.call_id().unwrap_or("").to_string();
        // Retransmissions and the ACK of a non-2xx response belong to a server transaction.
        let key = format!(
            "{branch}/{}",
            if method == "ACK" {
                "INVITE"
            } else {
                method.as_str()
            }
        );
        if let Some(st) = self.servers.get_mut(&key) {
            st.on_request(now, &req);
            while let Some(bytes) = st.poll_transmit() {
                self.out.push(Outgoing {
                    bytes,
                    to: from,
                    tcp,
                });
            }
            if method != "ACK" {
                return;
            }
        }
        if method == "ACK" {
            // The ACK of our 2xx: stop retransmitting it.
            if let Some(d) = self.dialogs.get_mut(&call_id) {
                d.pending_2xx = None;
            }
            return;
        }
        let mut st = ServerTx::new(&req, tcp, self.cfg.timers);
        let has_to_tag = req.to_tag().is_some();
        let local_tag = token();
        let response =
            |code: u16, reason: &str| Message::response_to(&req, code, reason, Some(&local_tag));
        let mut reply: Option<Message>;
        match method.as_str() {
            "OPTIONS" => {
                let mut r = response(200, "OK");
                r.add_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE");
                r.add_header("Accept", "application/sdp");
                reply = Some(r);
            }
            "INVITE" if !has_to_tag => {
                reply = Some(response(100, "Trying"));
                let to_user = match &req.start {
                    crate::message::StartLine::Request { uri, .. } => {
                        crate::message::Uri::parse(uri)
                            .and_then(|u| u.user)
                            .unwrap_or_default()
                    }
                    crate::message::StartLine::Response { .. } => String::new(),
                };
                let from_user = req
                    .header("From")
                    .and_then(addr_uri)
                    .and_then(|u| u.user)
                    .unwrap_or_default();
                let offer = Sdp::parse(&req.body).ok();
                self.pending.insert(
                    call_id.clone(),
                    Pending {
                        request: req.clone(),
                        server: key.clone(),
                        local_tag: local_tag.clone(),
                    },
                );
                let inc = Incoming {
                    call_id: call_id.clone(),
                    to_user,
                    from_user,
                    offer,
                    cmd: self.cmd.clone(),
                };
                if self.incoming.send(inc).is_err() {
                    reply = Some(response(486, "Busy Here"));
                    self.pending.remove(&call_id);
                }
            }
            "INVITE" | "UPDATE" => {
                // A re-INVITE or UPDATE in a dialog: answer with our current SDP, so that a session
                // refresh changes nothing; tell the call when the media description changed.
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    let sdp = Sdp::parse(&req.body).ok();
                    let offers_t38 = sdp.as_ref().and_then(Sdp::t38).is_some();
                    let ours_t38 = Sdp::parse(&d.local_sdp)
                        .ok()
                        .and_then(|s| s.t38())
                        .is_some();
                    // A refresh: no SDP, or the same kind of media we already have.
                    let refresh = req.body.is_empty() || offers_t38 == ours_t38;
                    if offers_t38
                        && !ours_t38
                        && let Some(t) = d.t38_local.clone()
                    {
                        d.local_sdp = t;
                    }
                    d.sdp_version += 1;
                    let mut r = Message::response_to(&req, 200, "OK", Some(&d.local_tag));
                    r.add_header(
                        "Contact",
                        format!("<sip:{}@{}>", self.cfg.account.user, self.local),
                    );
                    if !d.local_sdp.is_empty() && method == "INVITE" {
                        r.add_header("Content-Type", "application/sdp");
                        r.body = d.local_sdp.clone();
                    }
                    let _ = d.events.send(CallEvent::ReInvite { sdp, refresh });
                    reply = Some(r);
                } else {
                    reply = Some(response(481, "Call/Transaction Does Not Exist"));
                }
            }
            "BYE" => {
                if let Some(d) = self.dialogs.remove(&call_id) {
                    let _ = d.events.send(CallEvent::Bye);
                    reply = Some(response(200, "OK"));
                } else {
                    reply = Some(response(481, "Call/Transaction Does Not Exist"));
                }
            }
            "CANCEL" => {
                reply = Some(response(200, "OK"));
                if let Some(p) = self.pending.remove(&call_id) {
                    let r = Message::response_to(
                        &p.request,
                        487,
                        "Request Terminated",
                        Some(&p.local_tag),
                    );
                    self.respond_server(&p.server.clone(), &r);
                }
            }
            _ => reply = Some(response(405, "Method Not Allowed")),
        }
        if let Some(r) = reply {
            st.respond(now, &r);
        }
        while let Some(bytes) = st.poll_transmit() {
            self.out.push(Outgoing {
                bytes,
                to: from,
                tcp,
            });
        }
        self.reply_to.insert(key.clone(), (from, tcp));
        self.servers.insert(key, st);
    }

    fn on_timers(&mut self) {
        let now = self.now();
        let (proxy, tcp) = (self.cfg.account.proxy, self.tcp());
        let mut ended = Vec::new();
        for (k, c) in self.clients.iter_mut() {
            if c.tx.deadline().is_some_and(|d| d <= now) {
                if let Some(ev) = c.tx.on_timer(now) {
                    ended.push((k.clone(), ev));
                }
                while let Some(b) = c.tx.poll_transmit() {
                    self.out.push(Outgoing {
                        bytes: b,
                        to: proxy,
                        tcp,
                    });
                }
            }
        }
        for (k, ev) in ended {
            let Some(c) = self.clients.remove(&k) else {
                continue;
            };
            if ev == ClientEvent::Timeout {
                match c.purpose {
                    Purpose::Register { done: Some(d), .. } => {
                        let _ = d.send(Err(Error::RegistrarTimeout(self.cfg.account.proxy)));
                    }
                    Purpose::Invite { done: Some(d), .. } => {
                        let _ = d.send(Err(Error::Timeout));
                    }
                    Purpose::ReInvite { done: Some(d), .. } => {
                        let _ = d.send(Err(Error::Timeout));
                    }
                    Purpose::Refresh { done: Some(d), .. } => {
                        let _ = d.send(Err(Error::Timeout));
                    }
                    Purpose::KeepAlive => self.set_trunk(TrunkState::Unreachable),
                    Purpose::Bye { done: Some(d) } => {
                        let _ = d.send(());
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        self.servers.retain(|k, st| {
            if st.deadline().is_some_and(|d| d <= now) {
                st.on_timer(now);
                while let Some(b) = st.poll_transmit() {
                    out.push((b, k.clone()));
                }
            }
            !st.is_terminated()
        });
        for (bytes, k) in out {
            let (to, tcp) = self
                .reply_to
                .get(&k)
                .copied()
                .unwrap_or((self.cfg.account.proxy, self.tcp()));
            self.out.push(Outgoing { bytes, to, tcp });
        }
        let servers = &self.servers;
        self.reply_to.retain(|k, _| servers.contains_key(k));
        let mut resend = Vec::new();
        for d in self.dialogs.values_mut() {
            if let Some((bytes, at, interval, until)) = &mut d.pending_2xx
                && *at <= now
            {
                if now >= *until {
                    d.pending_2xx = None;
                    continue;
                }
                resend.push(bytes.clone());
                *interval = (*interval * 2).min(self.cfg.timers.t2);
                *at = now + *interval;
            }
        }
        for b in resend {
            self.send_proxy(b);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.register(None, None);
        }
        self.cancel_abandoned();
        if let Some(every) = self.cfg.keepalive
            && self.keepalive_at.is_some_and(|t| t <= now)
        {
            self.keepalive_at = Some(now + every);
            // One keep-alive at a time: the last one is still waiting for its answer (or timer F).
            if !self
                .clients
                .values()
                .any(|c| matches!(c.purpose, Purpose::KeepAlive))
            {
                self.keepalive();
            }
        }
    }

    fn next_deadline(&self) -> Duration {
        let mut next = self.now() + Duration::from_secs(1);
        for d in self.clients.values().filter_map(|c| c.tx.deadline()) {
            next = next.min(d);
        }
        for d in self.servers.values().filter_map(ServerTx::deadline) {
            next = next.min(d);
        }
        for d in self
            .dialogs
            .values()
            .filter_map(|d| d.pending_2xx.as_ref().map(|p| p.1))
        {
            next = next.min(d);
        }
        for r in [self.refresh_at, self.keepalive_at].into_iter().flatten() {
            next = next.min(r);
        }
        next
    }

    /// Sends what is queued: datagrams at once, TCP messages to their connection's writer (connecting
    /// first when there is none).
    async fn flush(&mut self, udp: &UdpSocket, conns: &mut Connections) {
        for o in std::mem::take(&mut self.out) {
            if o.tcp {
                conns.send(o.to, o.bytes);
            } else if let Err(e) = udp.send_to(&o.bytes, o.to).await {
                warn!(to = %o.to, error = %e, "SIP send failed");
            }
        }
    }

    async fn run(
        mut self,
        udp: Arc<UdpSocket>,
        tcp: TcpListener,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let mut buf = vec![0u8; 65_536];
        let (stream_tx, mut stream_rx) = mpsc::unbounded_channel();
        let mut conns = Connections {
            map: HashMap::new(),
            next_id: 0,
            events: stream_tx,
        };
        loop {
            self.flush(&udp, &mut conns).await;
            let wake = self.origin + self.next_deadline();
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(Cmd::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.on_datagram(&buf[..n], from),
                    Err(e) => warn!(error = %e, "SIP receive failed"),
                },
                r = tcp.accept() => match r {
                    Ok((stream, peer)) => conns.adopt(stream, peer),
                    Err(e) => warn!(error = %e, "SIP TCP accept failed"),
                },
                Some(ev) = stream_rx.recv() => match ev {
                    StreamEvent::Message(m, from) => self.on_message(m, from, true),
                    StreamEvent::Closed { peer, id } => conns.closed(peer, id),
                },
                _ = tokio::time::sleep_until(wake) => self.on_timers(),
            }
        }
        conns.close_all();
    }
}

/// Binds UDP and TCP on the same port (when the port is 0, on one both have free).
async fn bind_both(bind: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..if bind.port() == 0 { 20 } else { 1 } {
        let udp = UdpSocket::bind(bind).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(bind.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// What the TCP connection tasks tell the agent.
enum StreamEvent {
    Message(Message, SocketAddr),
    Closed { peer: SocketAddr, id: u64 },
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// The task serving the connection (or connecting first).
    task: tokio::task::AbortHandle,
}

/// The agent's TCP connections, by peer address (accepted or connected).
struct Connections {
    map: HashMap<SocketAddr, Conn>,
    next_id: u64,
    events: mpsc::UnboundedSender<StreamEvent>,
}

/// The longest a message may grow on a stream before the connection is dropped.
const MAX_STREAM_BUFFER: usize = 256 * 1024;

impl Connections {
    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        let bytes = match self.map.get(&to) {
            Some(c) => match c.tx.send(bytes) {
                Ok(()) => return,
                // The connection is gone: take the message back and connect again.
                Err(mpsc::error::SendError(b)) => b,
            },
            None => bytes,
        };
        // No connection (or a dead one): connect, then write what was queued.
        let id = self.bump();
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(bytes);
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(to)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    serve(stream, to, id, rx, events).await;
                }
                Ok(Err(e)) => {
                    warn!(%to, error = %e, "SIP TCP connection failed");
                    let _ = events.send(StreamEvent::Closed { peer: to, id });
                }
                Err(_) => {
                    warn!(%to, "SIP TCP connection timed out");
                    let _ = events.send(StreamEvent::Closed { peer: to, id });
                }
            }
        });
        self.map.insert(
            to,
            Conn {
                id,
                tx,
                task: task.abort_handle(),
            },
        );
    }

    fn adopt(&mut self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let id = self.bump();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(stream, peer, id, rx, self.events.clone()));
        if let Some(old) = self.map.insert(
            peer,
            Conn {
                id,
                tx,
                task: task.abort_handle(),
            },
        ) {
            old.task.abort();
        }
    }

    fn closed(&mut self, peer: SocketAddr, id: u64) {
        if self.map.get(&peer).is_some_and(|c| c.id == id) {
            self.map.remove(&peer);
        }
    }

    fn close_all(&mut self) {
        for (_, c) in self.map.drain() {
            c.task.abort();
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Runs one TCP connection: writes what the agent queues, frames what arrives into messages.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<StreamEvent>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let write = async move {
        while let Some(b) = rx.recv().await {
            if let Err(e) = writer.write_all(&b).await {
                debug!(%peer, error = %e, "SIP TCP write failed");
                break;
            }
        }
    };
    let ev = events.clone();
    let read = async move {
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 16_384];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            loop {
                match Message::parse_prefix(&buf) {
                    Ok(Some((m, used))) => {
                        buf.drain(..used);
                        if ev.send(StreamEvent::Message(m, peer)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        // Keep-alive CRLFs alone are consumed.
                        if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                            buf.clear();
                        }
                        break;
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "unframeable SIP stream: closing the connection");
                        return;
                    }
                }
            }
            if buf.len() > MAX_STREAM_BUFFER {
                debug!(%peer, "SIP message on the stream too large: closing the connection");
                return;
            }
        }
    };
    // The connection ends when either direction does.
    tokio::select! {
        () = write => {},
        () = read => {},
    }
    let _ = events.send(StreamEvent::Closed { peer, id });
}
