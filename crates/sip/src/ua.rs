//! A SIP user agent for a fax server on tokio UDP and TCP sockets: a thin layer over the sans-I/O
//! [`Engine`]. One task owns the sockets, the clock and the engine; [`UserAgent`], [`Call`] and
//! [`Incoming`] talk to it through channels. A caller that drops the `call` future before the answer
//! has its INVITE CANCELled.
//!
//! The agent listens on UDP and TCP on the same port. TCP connections are framed by Content-Length,
//! kept open for reuse both ways, and dropped when the peer closes them or sends what cannot be framed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::Error;
pub use crate::engine::{Account, CallEvent, Config, Transport, TrunkState};
use crate::engine::{Command, Engine, Event, IncomingCall, Op, Output, Transmit};
use crate::message::Message;
use crate::sdp::Sdp;

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
        let call_id = self.call_id.clone();
        let _ = run(&self.cmd, Command::Bye { call_id }, Waiter::HungUp).await;
    }

    /// The T.38 SDP to answer with if the far end re-INVITEs this call to T.38.
    pub fn prepare_t38(&self, sdp: Vec<u8>) {
        let call_id = self.call_id.clone();
        let _ = self.cmd.send(Cmd::Run {
            command: Command::PrepareT38 { call_id, sdp },
            waiter: None,
        });
    }

    /// Refreshes the session without changing it (RFC 4028): a re-INVITE offering our current SDP
    /// unchanged, or an UPDATE without a body. The media goes on untouched.
    pub async fn refresh(&self, update: bool) -> Result<(), Error> {
        let call_id = self.call_id.clone();
        run(
            &self.cmd,
            Command::Refresh { call_id, update },
            Waiter::Refreshed,
        )
        .await?
    }

    /// Sends a re-INVITE with a new offer (e.g. to switch to T.38) and returns the answer.
    pub async fn reinvite(&self, sdp: Vec<u8>) -> Result<Sdp, Error> {
        let call_id = self.call_id.clone();
        run(
            &self.cmd,
            Command::ReInvite { call_id, sdp },
            Waiter::Answered,
        )
        .await?
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
        let call_id = self.call_id.clone();
        run(&self.cmd, Command::Accept { call_id, sdp }, |tx| {
            Waiter::Call(tx, None)
        })
        .await?
    }

    /// Refuses with a final response (486 busy, 488 not acceptable, ...).
    pub fn reject(self, code: u16, reason: &str) {
        let _ = self.cmd.send(Cmd::Run {
            command: Command::Reject {
                call_id: self.call_id,
                code,
                reason: reason.to_string(),
            },
            waiter: None,
        });
    }
}

/// Who waits for a command's result.
enum Waiter {
    Registered(oneshot::Sender<Result<u32, Error>>),
    /// An outgoing call (with its abandonment ticket) or an accepted incoming one.
    Call(oneshot::Sender<Result<Call, Error>>, Option<u64>),
    Answered(oneshot::Sender<Result<Sdp, Error>>),
    Refreshed(oneshot::Sender<Result<(), Error>>),
    HungUp(oneshot::Sender<()>),
}

enum Cmd {
    Run {
        command: Command,
        waiter: Option<Waiter>,
    },
    /// The `call` future with this ticket was dropped before its answer.
    Abandon(u64),
    Shutdown,
}

/// Sends `command` to the agent's task and waits for its result.
async fn run<T>(
    cmd: &mpsc::UnboundedSender<Cmd>,
    command: Command,
    waiter: impl FnOnce(oneshot::Sender<T>) -> Waiter,
) -> Result<T, Error> {
    let (tx, rx) = oneshot::channel();
    cmd.send(Cmd::Run {
        command,
        waiter: Some(waiter(tx)),
    })
    .map_err(|_| Error::Stopped)?;
    rx.await.map_err(|_| Error::Stopped)
}

/// Tells the agent when an outgoing call's future is dropped before the answer.
struct AbandonOnDrop<'a> {
    cmd: &'a mpsc::UnboundedSender<Cmd>,
    ticket: u64,
    armed: bool,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.cmd.send(Cmd::Abandon(self.ticket));
        }
    }
}

/// The user agent's handle.
#[derive(Debug, Clone)]
pub struct UserAgent {
    cmd: mpsc::UnboundedSender<Cmd>,
    pub local: SocketAddr,
    trunk: watch::Receiver<TrunkState>,
    tickets: Arc<AtomicU64>,
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
        let agent = Agent {
            engine: Engine::new(cfg, local, rand::random()),
            origin: Instant::now(),
            cmd: cmd_tx.clone(),
            incoming: in_tx,
            trunk: trunk_tx,
            waiters: HashMap::new(),
            tickets: HashMap::new(),
            calls: HashMap::new(),
        };
        tokio::spawn(agent.run(udp, tcp, cmd_rx));
        Ok((
            Self {
                cmd: cmd_tx,
                local,
                trunk: trunk_rx,
                tickets: Arc::new(AtomicU64::new(0)),
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
        run(&self.cmd, Command::Register, Waiter::Registered).await?
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
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let mut guard = AbandonOnDrop {
            cmd: &self.cmd,
            ticket,
            armed: true,
        };
        let to = to.to_string();
        let result = run(&self.cmd, Command::Invite { to, sdp, t38 }, |tx| {
            Waiter::Call(tx, Some(ticket))
        })
        .await;
        guard.armed = false;
        result?
    }
}

/// The task that owns the engine: feeds it what the sockets, the handles and the clock bring, and
/// carries out what it asks.
struct Agent {
    engine: Engine,
    origin: Instant,
    cmd: mpsc::UnboundedSender<Cmd>,
    incoming: mpsc::UnboundedSender<Incoming>,
    trunk: watch::Sender<TrunkState>,
    waiters: HashMap<Op, Waiter>,
    /// Outgoing calls still waiting for their answer, by ticket.
    tickets: HashMap<u64, Op>,
    /// Where each established call's events go.
    calls: HashMap<String, mpsc::UnboundedSender<CallEvent>>,
}

impl Agent {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn command(&mut self, command: Command, waiter: Option<Waiter>) {
        if let Command::Bye { call_id } = &command {
            self.calls.remove(call_id);
        }
        let op = self.engine.handle_command(self.now(), command);
        if let Some(w) = waiter {
            if let Waiter::Call(_, Some(ticket)) = &w {
                self.tickets.insert(*ticket, op);
            }
            self.waiters.insert(op, w);
        }
    }

    fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::Run { command, waiter } => self.command(command, waiter),
            Cmd::Abandon(ticket) => {
                if let Some(invite) = self.tickets.remove(&ticket) {
                    self.waiters.remove(&invite);
                    self.command(Command::Abandon { invite }, None);
                }
            }
            Cmd::Shutdown => {}
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Registered {
                op: Some(op),
                result,
            } => {
                if let Some(Waiter::Registered(tx)) = self.waiters.remove(&op) {
                    let _ = tx.send(result);
                }
            }
            Event::Registered { op: None, .. } => {}
            Event::Incoming(IncomingCall {
                call_id,
                to_user,
                from_user,
                offer,
            }) => {
                let inc = Incoming {
                    call_id: call_id.clone(),
                    to_user,
                    from_user,
                    offer,
                    cmd: self.cmd.clone(),
                };
                if self.incoming.send(inc).is_err() {
                    let reason = "Busy Here".to_string();
                    self.command(
                        Command::Reject {
                            call_id,
                            code: 486,
                            reason,
                        },
                        None,
                    );
                }
            }
            Event::Established {
                op,
                call_id,
                result,
            } => {
                let Some(Waiter::Call(tx, ticket)) = self.waiters.remove(&op) else {
                    return;
                };
                if let Some(t) = ticket {
                    self.tickets.remove(&t);
                }
                let (events_tx, events) = mpsc::unbounded_channel();
                let established = result.is_ok();
                let result = result.map(|remote_sdp| Call {
                    call_id: call_id.clone(),
                    remote_sdp,
                    events,
                    cmd: self.cmd.clone(),
                });
                if tx.send(result).is_ok() {
                    if established {
                        self.calls.insert(call_id, events_tx);
                    }
                } else if ticket.is_some() && self.engine.has_dialog(&call_id) {
                    // Answered as the caller gave up (CANCEL and 200 crossed): hang up at once.
                    debug!(%call_id, "answered after the caller gave up: BYE");
                    self.command(Command::Bye { call_id }, None);
                }
            }
            Event::Answered { op, result } => {
                if let Some(Waiter::Answered(tx)) = self.waiters.remove(&op) {
                    let _ = tx.send(result);
                }
            }
            Event::Refreshed { op, result } => {
                if let Some(Waiter::Refreshed(tx)) = self.waiters.remove(&op) {
                    let _ = tx.send(result);
                }
            }
            Event::HungUp { op } => {
                if let Some(Waiter::HungUp(tx)) = self.waiters.remove(&op) {
                    let _ = tx.send(());
                }
            }
            Event::Call { call_id, event } => {
                let bye = event == CallEvent::Bye;
                if let Some(tx) = self.calls.get(&call_id) {
                    let _ = tx.send(event);
                }
                if bye {
                    self.calls.remove(&call_id);
                }
            }
            Event::Trunk(state) => {
                self.trunk.send_replace(state);
            }
        }
    }

    /// Carries out what the engine has queued: datagrams at once, TCP messages to their connection's
    /// writer (connecting first when there is none), events to their handles.
    async fn drain(&mut self, udp: &UdpSocket, conns: &mut Connections) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit(Transmit {
                    to,
                    transport: Transport::Tcp,
                    bytes,
                }) => conns.send(to, bytes),
                Output::Transmit(Transmit { to, bytes, .. }) => {
                    if let Err(e) = udp.send_to(&bytes, to).await {
                        warn!(%to, error = %e, "SIP send failed");
                    }
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    async fn run(
        mut self,
        udp: UdpSocket,
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
            self.drain(&udp, &mut conns).await;
            let wake = self.engine.poll_timeout().map(|d| self.origin + d);
            let timer = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(Cmd::Shutdown) | None => break,
                    Some(c) => self.on_cmd(c),
                },
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.engine.handle_datagram(self.now(), from, &buf[..n]),
                    Err(e) => warn!(error = %e, "SIP receive failed"),
                },
                r = tcp.accept() => match r {
                    Ok((stream, peer)) => conns.adopt(stream, peer),
                    Err(e) => warn!(error = %e, "SIP TCP accept failed"),
                },
                Some(ev) = stream_rx.recv() => match ev {
                    StreamEvent::Message(m, from) => {
                        self.engine.handle_stream_message(self.now(), from, m)
                    }
                    StreamEvent::Closed { peer, id } => conns.closed(peer, id),
                },
                () = timer => self.engine.handle_timeout(self.now()),
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
