//! The user agent core (RFC 3261 §8, §10, §12 to §15), sans I/O: one SIP account's registration with
//! refresh, outgoing and incoming INVITE dialogs with ACK, re-INVITE, UPDATE, BYE and CANCEL, OPTIONS
//! answered and sent as keep-alives. Datagrams, stream messages, commands and the time come in; messages
//! to send, events and the next deadline come out. See the crate documentation for the calling contract.
//!
//! The agent's own requests go to the account's proxy over the account's transport with the dialog's
//! route set (loose routing); responses go back the way the request came.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tracing::{debug, warn};

use crate::Error;
use crate::dialog::{Dialog, Retransmit2xx};
use crate::digest::Challenge;
use crate::message::{Message, Uri, addr_uri, param};
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

/// The transport of a message (the agent's own requests use the configured one; both are listened on).
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

    fn reliable(self) -> bool {
        self == Transport::Tcp
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
    /// Address to bind (UDP and TCP on the same port); used by the transport, not by the [`Engine`].
    pub bind: SocketAddr,
    pub account: Account,
    /// How our requests travel to the proxy.
    pub transport: Transport,
    pub timers: Timers,
    pub user_agent: String,
    /// Send OPTIONS to the proxy this often and report whether it answers ([`Event::Trunk`]).
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

/// An incoming call waiting for [`Command::Accept`] or [`Command::Reject`] (it has had 100 Trying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_id: String,
    /// The called user / number (Request-URI user).
    pub to_user: String,
    /// The caller's user part (From).
    pub from_user: String,
    pub offer: Option<Sdp>,
}

/// Names a command whose result comes later as an [`Event`] carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op(pub u64);

/// What the user of the engine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Registers (answering a digest challenge once); refreshed before expiry. [`Event::Registered`].
    Register,
    /// Calls `to` (a number or user at the account's domain, or a `sip:` URI) with an SDP offer, ready to
    /// answer a switch to T.38 with `t38` from the first moment. [`Event::Established`].
    Invite {
        to: String,
        sdp: Vec<u8>,
        t38: Option<Vec<u8>>,
    },
    /// The caller of the INVITE `invite` gave up: CANCEL it once it has had a provisional answer, and
    /// hang up at once if it is answered anyway (RFC 3261 §9.1).
    Abandon { invite: Op },
    /// Answers an [`IncomingCall`] 200 OK with our SDP. [`Event::Established`].
    Accept { call_id: String, sdp: Vec<u8> },
    /// Refuses an [`IncomingCall`] with a final response (486 busy, 488 not acceptable, ...).
    Reject {
        call_id: String,
        code: u16,
        reason: String,
    },
    /// A re-INVITE with a new offer (e.g. to switch to T.38). [`Event::Answered`].
    ReInvite { call_id: String, sdp: Vec<u8> },
    /// Refreshes the session without changing it (RFC 4028): a re-INVITE offering our current SDP, or
    /// an UPDATE without a body. [`Event::Refreshed`].
    Refresh { call_id: String, update: bool },
    /// Hangs up. [`Event::HungUp`] when the far end answers (or timer F).
    Bye { call_id: String },
    /// The T.38 SDP to answer with if the far end re-INVITEs this call to T.38.
    PrepareT38 { call_id: String, sdp: Vec<u8> },
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A registration ended: the lifetime granted, or why not. `op` is `None` for the engine's refreshes.
    Registered {
        op: Option<Op>,
        result: Result<u32, Error>,
    },
    /// Someone calls.
    Incoming(IncomingCall),
    /// An INVITE we sent was answered (the far end's SDP) or failed; or an incoming call we accepted is
    /// established (the SDP it offered).
    Established {
        op: Op,
        call_id: String,
        result: Result<Sdp, Error>,
    },
    /// The answer to our re-INVITE.
    Answered { op: Op, result: Result<Sdp, Error> },
    /// Our session refresh was answered.
    Refreshed { op: Op, result: Result<(), Error> },
    /// Our BYE was answered (or timer F fired).
    HungUp { op: Op },
    /// Something happened in an established call.
    Call { call_id: String, event: CallEvent },
    /// The proxy answers our keep-alives, or stopped answering them.
    Trunk(TrunkState),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    /// Over TCP it goes on the connection to (or from) that address.
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// What [`Engine::poll_output`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    Event(Event),
}

/// How many times a re-INVITE is sent at most when each is answered 491.
const REINVITE_TRIES: u8 = 4;

/// A re-INVITE answered 491, due again at `at`.
#[derive(Debug)]
struct ReInviteAgain {
    at: Duration,
    op: Op,
    call_id: String,
    sdp: Vec<u8>,
    tries: u8,
}

/// What a client transaction is for.
enum Purpose {
    Register {
        op: Option<Op>,
        authed: bool,
    },
    Invite {
        op: Op,
        authed: bool,
        call_id: String,
        t38: Option<Vec<u8>>,
        /// A provisional response came (a CANCEL may be sent from then on).
        provisional: bool,
        /// The caller gave up ([`Command::Abandon`]).
        abandoned: bool,
        cancelled: bool,
    },
    ReInvite {
        op: Op,
        call_id: String,
        /// Earlier tries answered 491 (Request Pending).
        tries: u8,
    },
    Refresh {
        op: Op,
        call_id: String,
    },
    KeepAlive,
    Bye {
        op: Option<Op>,
    },
    Other,
}

struct Client {
    tx: ClientTx,
    request: Message,
    purpose: Purpose,
}

/// A server transaction and where its responses go: the request's source, the way it came.
struct Server {
    tx: ServerTx,
    to: SocketAddr,
    transport: Transport,
}

/// An INVITE we received and have not answered yet.
struct Pending {
    request: Message,
    server: String,
    local_tag: String,
}

/// A seeded pseudo-random generator (SplitMix64): the engine's only source of randomness.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A token for tags, branches and Call-IDs: 12 characters of `[a-z0-9]`.
    fn token(&mut self) -> String {
        let mut z = self.next_u64();
        (0..12)
            .map(|_| {
                let c = b"abcdefghijklmnopqrstuvwxyz0123456789"[(z % 36) as usize];
                z /= 36;
                char::from(c)
            })
            .collect()
    }
}

/// Client transactions are keyed by branch and method: a CANCEL shares its INVITE's branch.
fn transaction_key(branch: &str, method: &str) -> String {
    format!("{branch}/{method}")
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE";

/// The user agent state machine.
pub struct Engine {
    cfg: Config,
    local: SocketAddr,
    now: Duration,
    tokens: SplitMix64,
    next_op: u64,
    clients: HashMap<String, Client>,
    servers: HashMap<String, Server>,
    dialogs: HashMap<String, Dialog>,
    pending: HashMap<String, Pending>,
    register_cseq: u32,
    register_call_id: String,
    refresh_at: Option<Duration>,
    keepalive_at: Option<Duration>,
    /// Re-INVITEs answered 491 (their offer crossed one of the far end's), to be sent again.
    reinvite_again: Vec<ReInviteAgain>,
    trunk: TrunkState,
    nc: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("local", &self.local)
            .field("now", &self.now)
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .field("dialogs", &self.dialogs.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `cfg.account`, reachable at `local` (its Via and Contact address: the transport's
    /// bound address). `seed` drives every tag, branch and Call-ID. A keep-alive, when configured, is
    /// due at once.
    pub fn new(cfg: Config, local: SocketAddr, seed: u64) -> Self {
        let mut tokens = SplitMix64(seed);
        Self {
            keepalive_at: cfg.keepalive.map(|_| Duration::ZERO),
            register_call_id: format!("{}@faxhub", tokens.token()),
            tokens,
            cfg,
            local,
            now: Duration::ZERO,
            next_op: 0,
            clients: HashMap::new(),
            servers: HashMap::new(),
            dialogs: HashMap::new(),
            pending: HashMap::new(),
            register_cseq: 0,
            refresh_at: None,
            reinvite_again: Vec::new(),
            trunk: TrunkState::Unknown,
            nc: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The address in our Via and Contact headers.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether the call has an established dialog.
    pub fn has_dialog(&self, call_id: &str) -> bool {
        self.dialogs.contains_key(call_id)
    }

    /// Whether nothing is in progress: no transaction, dialog, unanswered call or pending 2xx.
    pub fn is_idle(&self) -> bool {
        self.clients.is_empty()
            && self.servers.is_empty()
            && self.dialogs.is_empty()
            && self.pending.is_empty()
    }

    /// A UDP datagram from `from`. What does not parse as a SIP message is dropped.
    pub fn handle_datagram(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        match Message::parse(bytes) {
            Ok(m) => self.on_message(m, from, Transport::Udp),
            Err(e) => debug!(%from, error = %e, "unparsable SIP datagram ignored"),
        }
    }

    /// A message framed from a stream connection (TCP) with `from`; responses go back on it.
    pub fn handle_stream_message(&mut self, now: Duration, from: SocketAddr, message: Message) {
        self.now = now;
        self.on_message(message, from, Transport::Tcp);
    }

    /// A command from the user; its result, if it has one, comes as an event carrying the returned op.
    pub fn handle_command(&mut self, now: Duration, command: Command) -> Op {
        self.now = now;
        self.next_op += 1;
        let op = Op(self.next_op);
        self.on_command(op, command);
        op
    }

    /// Time passed: at (or after) [`poll_timeout`](Self::poll_timeout), run the timers that are due.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = now;
        self.on_timers();
    }

    /// The next message to send or event to report; `None` when drained.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(Output::Transmit(t));
        }
        self.events.pop_front().map(Output::Event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let clients = self.clients.values().filter_map(|c| c.tx.deadline());
        let servers = self.servers.values().filter_map(|s| s.tx.deadline());
        let pending_2xx = self
            .dialogs
            .values()
            .filter_map(|d| d.pending_2xx.as_ref().map(|p| p.at));
        clients
            .chain(servers)
            .chain(pending_2xx)
            .chain(self.refresh_at)
            .chain(self.keepalive_at)
            .chain(self.reinvite_again.iter().map(|r| r.at))
            .min()
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.account.user, self.cfg.account.domain)
    }

    fn contact(&self) -> String {
        match self.cfg.transport {
            Transport::Tcp => format!(
                "<sip:{}@{};transport=tcp>",
                self.cfg.account.user, self.local
            ),
            Transport::Udp => format!("<sip:{}@{}>", self.cfg.account.user, self.local),
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.cfg.transport.name(),
            self.local
        )
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Queues bytes for the proxy over the account's transport.
    fn send_proxy(&mut self, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            to: self.cfg.account.proxy,
            transport: self.cfg.transport,
            bytes,
        });
    }

    fn base_request(
        &mut self,
        method: &str,
        uri: &str,
        from: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let branch = format!("z9hG4bK{}", self.tokens.token());
        let mut m = Message::request(method, uri);
        m.add_header("Via", self.via(&branch));
        m.add_header("Max-Forwards", "70");
        m.add_header("From", from);
        m.add_header("To", to);
        m.add_header("Call-ID", call_id);
        m.add_header("CSeq", format!("{cseq} {method}"));
        m.add_header("User-Agent", self.cfg.user_agent.clone());
        m
    }

    /// Sends a re-INVITE offering `sdp` in the call (`tries` earlier ones were answered 491).
    fn reinvite(&mut self, op: Op, call_id: String, sdp: Vec<u8>, tries: u8) {
        let Some(mut m) = self.in_dialog(&call_id, "INVITE") else {
            let result = Err(Self::no_such_call("no such call"));
            self.emit(Event::Answered { op, result });
            return;
        };
        m.add_header("Contact", self.contact());
        m.add_header("Content-Type", "application/sdp");
        m.body = sdp.clone();
        if let Some(d) = self.dialogs.get_mut(&call_id) {
            d.local_sdp = sdp;
        }
        self.start_client(m, Purpose::ReInvite { op, call_id, tries });
    }

    /// Whether an INVITE or re-INVITE of ours in this call awaits its final response: an offer from the
    /// far end now crosses ours (RFC 3261 §14.2, RFC 3311 §5.2), including a re-INVITE that overtook the
    /// 2xx of our INVITE on its way.
    fn offer_pending(&self, call_id: &str) -> bool {
        self.clients.values().any(|c| match &c.purpose {
            Purpose::Invite { call_id: id, .. } | Purpose::ReInvite { call_id: id, .. } => {
                id == call_id && !c.tx.is_terminated()
            }
            _ => false,
        })
    }

    fn start_client(&mut self, request: Message, purpose: Purpose) {
        let mut tx = ClientTx::new(
            &request,
            self.cfg.transport.reliable(),
            self.cfg.timers,
            self.now,
        );
        while let Some(b) = tx.poll_transmit() {
            self.send_proxy(b);
        }
        let key = transaction_key(&tx.branch, request.method().unwrap_or(""));
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
        let Some(uri) = invite.request_uri() else {
            return;
        };
        let mut m = Message::request("CANCEL", uri);
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
                provisional: true,
                abandoned: true,
                cancelled,
                ..
            } = &mut c.purpose
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

    fn register(&mut self, op: Option<Op>, auth: Option<String>) {
        self.register_cseq += 1;
        let aor = self.aor();
        let uri = format!("sip:{}", self.cfg.account.domain);
        let tag = self.tokens.token();
        let call_id = self.register_call_id.clone();
        let mut m = self.base_request(
            "REGISTER",
            &uri,
            &format!("<{aor}>;tag={tag}"),
            &format!("<{aor}>"),
            &call_id,
            self.register_cseq,
        );
        m.add_header("Contact", self.contact());
        m.add_header("Expires", self.cfg.account.expires.to_string());
        let authed = auth.is_some();
        if let Some(a) = auth {
            m.add_header("Authorization", a);
        }
        self.start_client(m, Purpose::Register { op, authed });
    }

    /// The answer to a 401 / 407 challenge (RFC 3261 §22.2, §22.3): the header value and its name.
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
        self.nc += 1;
        let cnonce = self.tokens.token();
        let a = &self.cfg.account;
        Ok((
            c.answer(
                request.method().unwrap_or(""),
                request.request_uri().unwrap_or_default(),
                &a.auth_user,
                &a.password,
                &cnonce,
                self.nc,
            ),
            out,
        ))
    }

    fn invite(
        &mut self,
        op: Op,
        to: &str,
        sdp: Vec<u8>,
        t38: Option<Vec<u8>>,
        call_id: Option<String>,
        auth: Option<(String, &'static str)>,
    ) {
        let call_id = call_id.unwrap_or_else(|| format!("{}@faxhub", self.tokens.token()));
        let uri = if to.starts_with("sip:") {
            to.to_string()
        } else {
            format!("sip:{to}@{}", self.cfg.account.domain)
        };
        let tag = self.tokens.token();
        let cseq = if auth.is_some() { 2 } else { 1 };
        let from = format!("<{}>;tag={tag}", self.aor());
        let mut m = self.base_request("INVITE", &uri, &from, &format!("<{uri}>"), &call_id, cseq);
        m.add_header("Contact", self.contact());
        m.add_header("Allow", ALLOW);
        m.add_header("Content-Type", "application/sdp");
        let authed = auth.is_some();
        if let Some((a, h)) = auth {
            m.add_header(h, a);
        }
        m.body = sdp;
        self.start_client(
            m,
            Purpose::Invite {
                op,
                authed,
                call_id,
                t38,
                provisional: false,
                abandoned: false,
                cancelled: false,
            },
        );
    }

    /// An OPTIONS keep-alive to the proxy (out of any dialog).
    fn keepalive(&mut self) {
        let aor = self.aor();
        let uri = format!("sip:{}", self.cfg.account.proxy);
        let tag = self.tokens.token();
        let call_id = format!("{}@faxhub", self.tokens.token());
        let mut m = self.base_request(
            "OPTIONS",
            &uri,
            &format!("<{aor}>;tag={tag}"),
            &format!("<{uri}>"),
            &call_id,
            1,
        );
        m.add_header("Accept", "application/sdp");
        self.start_client(m, Purpose::KeepAlive);
    }

    fn set_trunk(&mut self, state: TrunkState) {
        if self.trunk != state {
            match state {
                TrunkState::Unreachable => {
                    warn!(proxy = %self.cfg.account.proxy, "the SIP proxy does not answer keep-alives")
                }
                _ => debug!(proxy = %self.cfg.account.proxy, ?state, "SIP proxy keep-alive"),
            }
            self.trunk = state;
            self.emit(Event::Trunk(state));
        }
    }

    /// A new request inside a dialog, with the dialog's next CSeq number.
    fn in_dialog(&mut self, call_id: &str, method: &str) -> Option<Message> {
        let d = self.dialogs.get_mut(call_id)?;
        d.local_cseq += 1;
        let cseq = d.local_cseq;
        self.dialog_request(call_id, method, cseq)
    }

    /// A request inside a dialog (RFC 3261 §12.2.1.1): Request-URI the remote target, Route the route set.
    fn dialog_request(&mut self, call_id: &str, method: &str, cseq: u32) -> Option<Message> {
        let d = self.dialogs.get(call_id)?;
        let (target, routes) = (d.remote_target.clone(), d.route_set.clone());
        let (from, to) = d.request_addresses();
        let mut m = self.base_request(method, &target, &from, &to, call_id, cseq);
        for r in routes {
            m.add_header("Route", r);
        }
        Some(m)
    }

    /// Sends BYE in a dialog and forgets it; false when there is no such dialog.
    fn bye(&mut self, call_id: &str, op: Option<Op>) -> bool {
        let Some(m) = self.in_dialog(call_id, "BYE") else {
            return false;
        };
        self.dialogs.remove(call_id);
        self.start_client(m, Purpose::Bye { op });
        true
    }

    fn no_such_call(reason: &str) -> Error {
        Error::Refused {
            code: 481,
            reason: reason.into(),
        }
    }

    fn on_command(&mut self, op: Op, c: Command) {
        match c {
            Command::Register => self.register(Some(op), None),
            Command::Invite { to, sdp, t38 } => self.invite(op, &to, sdp, t38, None, None),
            Command::Abandon { invite } => {
                for c in self.clients.values_mut() {
                    if let Purpose::Invite { op, abandoned, .. } = &mut c.purpose
                        && *op == invite
                    {
                        *abandoned = true;
                    }
                }
                self.cancel_abandoned();
            }
            Command::Accept { call_id, sdp } => self.accept(op, call_id, sdp),
            Command::Reject {
                call_id,
                code,
                reason,
            } => {
                if let Some(p) = self.pending.remove(&call_id) {
                    let r = Message::response_to(&p.request, code, &reason, Some(&p.local_tag));
                    self.respond_server(&p.server, &r);
                }
            }
            Command::ReInvite { call_id, sdp } => self.reinvite(op, call_id, sdp, 0),
            Command::Refresh { call_id, update } => {
                let method = if update { "UPDATE" } else { "INVITE" };
                let Some(mut m) = self.in_dialog(&call_id, method) else {
                    let result = Err(Self::no_such_call("no such call"));
                    self.emit(Event::Refreshed { op, result });
                    return;
                };
                m.add_header("Contact", self.contact());
                m.add_header("Session-Expires", "1800;refresher=uac");
                if !update && let Some(d) = self.dialogs.get(&call_id) {
                    m.add_header("Content-Type", "application/sdp");
                    m.body = d.local_sdp.clone();
                }
                self.start_client(m, Purpose::Refresh { op, call_id });
            }
            Command::PrepareT38 { call_id, sdp } => {
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.t38_local = Some(sdp);
                }
            }
            Command::Bye { call_id } => {
                if !self.bye(&call_id, Some(op)) {
                    self.emit(Event::HungUp { op });
                }
            }
        }
    }

    /// 200 OK to an incoming call, retransmitted until its ACK; the dialog starts (RFC 3261 §13.3.1.4).
    fn accept(&mut self, op: Op, call_id: String, sdp: Vec<u8>) {
        let Some(p) = self.pending.remove(&call_id) else {
            let result = Err(Self::no_such_call("the call is gone"));
            self.emit(Event::Established {
                op,
                call_id,
                result,
            });
            return;
        };
        let offer = Sdp::parse(&p.request.body);
        let mut ok = Message::response_to(&p.request, 200, "OK", Some(&p.local_tag));
        ok.add_header("Contact", self.contact());
        ok.add_header("Content-Type", "application/sdp");
        ok.body = sdp.clone();
        let mut dialog = Dialog::as_uas(&p.request, &p.local_tag, sdp);
        if let Some(s) = self.servers.get(&p.server) {
            dialog.pending_2xx = Some(Retransmit2xx::new(
                &ok,
                s.to,
                s.transport,
                self.now,
                self.cfg.timers,
            ));
        }
        self.dialogs.insert(call_id.clone(), dialog);
        self.respond_server(&p.server, &ok);
        let result = offer.map_err(|e| Error::BadAnswer(e.to_string()));
        self.emit(Event::Established {
            op,
            call_id,
            result,
        });
    }

    fn respond_server(&mut self, key: &str, r: &Message) {
        let now = self.now;
        if let Some(s) = self.servers.get_mut(key) {
            s.tx.respond(now, r);
            while let Some(bytes) = s.tx.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: s.to,
                    transport: s.transport,
                    bytes,
                });
            }
        }
    }

    fn on_message(&mut self, m: Message, from: SocketAddr, transport: Transport) {
        if m.check().is_err() {
            debug!(%from, "SIP message without its mandatory headers ignored");
            return;
        }
        if m.code().is_some() {
            self.on_response(m);
        } else {
            self.on_request(m, from, transport);
        }
    }

    fn on_response(&mut self, resp: Message) {
        let Some(branch) = resp.branch() else { return };
        let Some((_, method)) = resp.cseq() else {
            return;
        };
        let key = transaction_key(&branch, &method);
        let Some(mut c) = self.clients.remove(&key) else {
            // A retransmitted 2xx to an INVITE whose transaction ended: ACK it again.
            if resp.code().is_some_and(|c| (200..300).contains(&c))
                && method == "INVITE"
                && let Some(call_id) = resp.call_id().map(str::to_string)
                && let Some(ack) = self.ack_2xx(&call_id, &resp)
            {
                self.send_proxy(ack);
            }
            return;
        };
        let ev = c.tx.on_response(self.now, &resp, &c.request);
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
        let n = resp.cseq()?.0;
        self.dialog_request(call_id, "ACK", n).map(|m| m.to_bytes())
    }

    fn on_final(&mut self, mut c: Client, resp: Message) {
        let code = resp.code().unwrap_or(500);
        let reason = resp.reason().unwrap_or_default().to_string();
        let ok = (200..300).contains(&code);
        let challenged = code == 401 || code == 407;
        let keep = !c.tx.is_terminated();
        match std::mem::replace(&mut c.purpose, Purpose::Other) {
            Purpose::Register { op, authed } => {
                if challenged && !authed {
                    match self.authorize(&resp, &c.request) {
                        Ok((a, _)) => self.register(op, Some(a)),
                        Err(e) => self.emit(Event::Registered {
                            op,
                            result: Err(Error::RegistrarChallenge(e)),
                        }),
                    }
                } else if ok {
                    let granted = resp
                        .header_values("Contact")
                        .iter()
                        .find_map(|c| param(c, "expires").and_then(|e| e.parse().ok()))
                        .or_else(|| resp.header("Expires").and_then(|e| e.trim().parse().ok()))
                        .unwrap_or(self.cfg.account.expires);
                    // Refresh well before expiry.
                    self.refresh_at =
                        Some(self.now + Duration::from_secs(u64::from(granted.max(10)) * 8 / 10));
                    self.emit(Event::Registered {
                        op,
                        result: Ok(granted),
                    });
                } else {
                    let e = if matches!(code, 401 | 403 | 407) {
                        Error::RegistrarCredentials { code, reason }
                    } else {
                        Error::RegistrarRefused { code, reason }
                    };
                    warn!(%e, "registration failed");
                    self.emit(Event::Registered { op, result: Err(e) });
                }
            }
            Purpose::Invite {
                op,
                authed,
                call_id,
                t38,
                abandoned,
                ..
            } => {
                if challenged && !authed {
                    let to = c.request.request_uri().unwrap_or_default().to_string();
                    match self.authorize(&resp, &c.request) {
                        Ok(a) => {
                            let body = c.request.body.clone();
                            self.invite(op, &to, body, t38, Some(call_id), Some(a));
                            if abandoned {
                                self.on_command(op, Command::Abandon { invite: op });
                            }
                        }
                        Err(_) if abandoned => {}
                        Err(_) => self.emit(Event::Established {
                            op,
                            call_id,
                            result: Err(Error::Credentials { code }),
                        }),
                    }
                } else if ok {
                    self.dialogs
                        .insert(call_id.clone(), Dialog::as_uac(&c.request, &resp, t38));
                    if let Some(ack) = self.ack_2xx(&call_id, &resp) {
                        self.send_proxy(ack);
                    }
                    if abandoned {
                        // Answered after the caller gave up (CANCEL and 200 crossed): hang up at once.
                        debug!(%call_id, "answered after the caller gave up: BYE");
                        self.bye(&call_id, None);
                    } else {
                        let result =
                            Sdp::parse(&resp.body).map_err(|e| Error::BadAnswer(e.to_string()));
                        self.emit(Event::Established {
                            op,
                            call_id,
                            result,
                        });
                    }
                } else if !abandoned {
                    self.emit(Event::Established {
                        op,
                        call_id,
                        result: Err(Error::from_response(code, &reason)),
                    });
                }
            }
            Purpose::ReInvite { op, call_id, tries }
                if code == 491 && tries + 1 < REINVITE_TRIES =>
            {
                // Our offer crossed one of the far end's: try again after a random wait, longer for
                // the Call-ID's owner so that the two ends do not cross again (RFC 3261 §14.1).
                let owner = self.dialogs.get(&call_id).is_some_and(|d| d.owns_call_id);
                let units = self.tokens.next_u64();
                let wait_ms = if owner {
                    2100 + (units % 191) * 10
                } else {
                    (units % 201) * 10
                };
                debug!(%call_id, wait_ms, "re-INVITE answered 491: trying again");
                self.reinvite_again.push(ReInviteAgain {
                    at: self.now + Duration::from_millis(wait_ms),
                    op,
                    call_id,
                    sdp: c.request.body.clone(),
                    tries: tries + 1,
                });
            }
            Purpose::ReInvite { op, call_id, .. } => {
                let result = if ok {
                    if let Some(ack) = self.ack_2xx(&call_id, &resp) {
                        self.send_proxy(ack);
                    }
                    Sdp::parse(&resp.body).map_err(|e| Error::BadAnswer(e.to_string()))
                } else {
                    Err(Error::from_response(code, &reason))
                };
                self.emit(Event::Answered { op, result });
            }
            Purpose::Refresh { op, call_id } => {
                if ok
                    && resp.cseq().is_some_and(|(_, m)| m == "INVITE")
                    && let Some(ack) = self.ack_2xx(&call_id, &resp)
                {
                    self.send_proxy(ack);
                }
                let result = if ok {
                    Ok(())
                } else {
                    Err(Error::from_response(code, &reason))
                };
                self.emit(Event::Refreshed { op, result });
            }
            // Any answer, even 404 or 405, shows the proxy is there.
            Purpose::KeepAlive => self.set_trunk(TrunkState::Reachable),
            Purpose::Bye { op } => {
                if let Some(op) = op {
                    self.emit(Event::HungUp { op });
                }
            }
            Purpose::Other => {}
        }
        if keep {
            let key = transaction_key(&c.tx.branch, c.request.method().unwrap_or(""));
            self.clients.insert(key, c);
        }
    }

    fn on_request(&mut self, req: Message, from: SocketAddr, transport: Transport) {
        let now = self.now;
        let method = req.method().unwrap_or("").to_string();
        let branch = req.branch().unwrap_or_default();
        let call_id = req.call_id().unwrap_or("").to_string();
        // Retransmissions and the ACK of a non-2xx response belong to a server transaction.
        let key = transaction_key(&branch, if method == "ACK" { "INVITE" } else { &method });
        if let Some(s) = self.servers.get_mut(&key) {
            s.tx.on_request(now, &req);
            while let Some(bytes) = s.tx.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: from,
                    transport,
                    bytes,
                });
            }
            if method != "ACK" {
                return;
            }
        }
        if method == "ACK" {
            // The ACK of our 2xx: stop retransmitting it.
            let cseq = req.cseq().map(|c| c.0);
            if let Some(d) = self.dialogs.get_mut(&call_id)
                && d.pending_2xx.as_ref().map(|p| p.cseq) == cseq
            {
                d.pending_2xx = None;
            }
            return;
        }
        let mut tx = ServerTx::new(&req, transport.reliable(), self.cfg.timers);
        let local_tag = self.tokens.token();
        let response =
            |code: u16, reason: &str| Message::response_to(&req, code, reason, Some(&local_tag));
        let reply = match method.as_str() {
            "OPTIONS" => {
                let mut r = response(200, "OK");
                r.add_header("Allow", ALLOW);
                r.add_header("Accept", "application/sdp");
                r
            }
            "INVITE" if req.to_tag().is_none() => {
                let to_user = req
                    .request_uri()
                    .and_then(Uri::parse)
                    .and_then(|u| u.user)
                    .unwrap_or_default();
                let from_user = req
                    .header("From")
                    .and_then(addr_uri)
                    .and_then(|u| u.user)
                    .unwrap_or_default();
                let offer = Sdp::parse(&req.body).ok();
                self.emit(Event::Incoming(IncomingCall {
                    call_id: call_id.clone(),
                    to_user,
                    from_user,
                    offer,
                }));
                let trying = response(100, "Trying");
                self.pending.insert(
                    call_id,
                    Pending {
                        request: req,
                        server: key.clone(),
                        local_tag,
                    },
                );
                trying
            }
            "INVITE" | "UPDATE" if self.offer_pending(&call_id) => response(491, "Request Pending"),
            "INVITE" | "UPDATE" => match self.dialogs.get_mut(&call_id) {
                Some(d) => {
                    let event = d.take_offer(&req);
                    let mut r = response(200, "OK");
                    r.add_header(
                        "Contact",
                        format!("<sip:{}@{}>", self.cfg.account.user, self.local),
                    );
                    if method == "INVITE" {
                        if !d.local_sdp.is_empty() {
                            r.add_header("Content-Type", "application/sdp");
                            r.body = d.local_sdp.clone();
                        }
                        let t = self.cfg.timers;
                        d.pending_2xx = Some(Retransmit2xx::new(&r, from, transport, now, t));
                    }
                    self.emit(Event::Call { call_id, event });
                    r
                }
                None => response(481, "Call/Transaction Does Not Exist"),
            },
            "BYE" => match self.dialogs.remove(&call_id) {
                Some(_) => {
                    let r = response(200, "OK");
                    self.emit(Event::Call {
                        call_id,
                        event: CallEvent::Bye,
                    });
                    r
                }
                None => response(481, "Call/Transaction Does Not Exist"),
            },
            "CANCEL" => {
                let r = response(200, "OK");
                if let Some(p) = self.pending.remove(&call_id) {
                    let terminated = Message::response_to(
                        &p.request,
                        487,
                        "Request Terminated",
                        Some(&p.local_tag),
                    );
                    self.respond_server(&p.server, &terminated);
                }
                r
            }
            _ => response(405, "Method Not Allowed"),
        };
        tx.respond(now, &reply);
        while let Some(bytes) = tx.poll_transmit() {
            self.transmits.push_back(Transmit {
                to: from,
                transport,
                bytes,
            });
        }
        self.servers.insert(
            key,
            Server {
                tx,
                to: from,
                transport,
            },
        );
    }

    fn on_timers(&mut self) {
        let now = self.now;
        let mut ended = Vec::new();
        let mut out = Vec::new();
        for (k, c) in self.clients.iter_mut() {
            if c.tx.deadline().is_some_and(|d| d <= now) {
                if let Some(ev) = c.tx.on_timer(now) {
                    ended.push((k.clone(), ev));
                }
                while let Some(b) = c.tx.poll_transmit() {
                    out.push(b);
                }
            }
        }
        for b in out {
            self.send_proxy(b);
        }
        for (k, ev) in ended {
            let Some(c) = self.clients.remove(&k) else {
                continue;
            };
            if ev == ClientEvent::Timeout {
                self.on_client_timeout(c.purpose);
            }
        }
        let mut out = Vec::new();
        self.servers.retain(|_, s| {
            if s.tx.deadline().is_some_and(|d| d <= now) {
                s.tx.on_timer(now);
                while let Some(bytes) = s.tx.poll_transmit() {
                    out.push(Transmit {
                        to: s.to,
                        transport: s.transport,
                        bytes,
                    });
                }
            }
            !s.tx.is_terminated()
        });
        self.transmits.extend(out);
        let timers = self.cfg.timers;
        let mut resend = Vec::new();
        for d in self.dialogs.values_mut() {
            if let Some(p) = &mut d.pending_2xx
                && p.at <= now
            {
                match p.fire(now, timers) {
                    Some(bytes) => resend.push(Transmit {
                        to: p.to,
                        transport: p.transport,
                        bytes,
                    }),
                    None => d.pending_2xx = None,
                }
            }
        }
        self.transmits.extend(resend);
        let (due, later) = std::mem::take(&mut self.reinvite_again)
            .into_iter()
            .partition(|r| r.at <= now);
        self.reinvite_again = later;
        for r in due {
            self.reinvite(r.op, r.call_id, r.sdp, r.tries);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.register(None, None);
        }
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

    /// Timer B or F: no final response (RFC 3261 §17.1.1.2, §17.1.2.2).
    fn on_client_timeout(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Register { op, .. } => {
                let e = Error::RegistrarTimeout(self.cfg.account.proxy);
                self.emit(Event::Registered { op, result: Err(e) });
            }
            Purpose::Invite {
                op,
                call_id,
                abandoned: false,
                ..
            } => self.emit(Event::Established {
                op,
                call_id,
                result: Err(Error::Timeout),
            }),
            Purpose::ReInvite { op, .. } => self.emit(Event::Answered {
                op,
                result: Err(Error::Timeout),
            }),
            Purpose::Refresh { op, .. } => self.emit(Event::Refreshed {
                op,
                result: Err(Error::Timeout),
            }),
            Purpose::KeepAlive => self.set_trunk(TrunkState::Unreachable),
            Purpose::Bye { op: Some(op) } => self.emit(Event::HungUp { op }),
            _ => {}
        }
    }
}
