//! The T.30 procedure (T.30 §5 and the flow charts of Annex A; ECM from T.30 Annex A and T.4 Annex A).
//!
//! One [`Session`] is either a sender that called (CNG, waits for DIS, DCS + TCF, pages, DCN) or a
//! receiver that answered (CED, CSI + DIS, checks TCF, receives pages, answers post-message commands).
//! It holds the part both share ([`Shared`]: the T.38 front end that frames HDLC at V.21 and paces it,
//! the last frames sent for repeats, the timers, events and statistics) and the state of its one role,
//! [`sender::Sender`] or [`receiver::Receiver`]. Every wait has its T.30 timer; commands are repeated up
//! to `max_retries` times.

mod receiver;
mod sender;

use std::collections::VecDeque;
use std::time::Duration;

use t38::Ifp;
use tracing::debug;

use crate::dis_dcs::Capabilities;
use crate::fcf::{self, Fcf, Frame};
use crate::t38_terminal::{self, Due, RxEvent, Signal, Transmitter};
use crate::timer::{Timer, TimerTable};
use crate::{Config, Event, Failure, Outcome, Output, Role, Stats};

use receiver::Receiver;
use sender::Sender;

/// The T.30 session. See the crate documentation for the calling contract.
#[derive(Debug)]
pub struct Session {
    shared: Shared,
    role: RoleState,
}

/// The state of the session's one role: a sender has no receiver fields, and the reverse.
#[derive(Debug)]
enum RoleState {
    Sender(Sender),
    Receiver(Receiver),
}

/// What a sender and a receiver share: framing and pacing (the T.38 front end), the last command or
/// response sent (for repeats), the timers, events, statistics and the end of the call.
#[derive(Debug)]
struct Shared {
    cfg: Config,
    start: Duration,
    tx: Transmitter,
    rx: t38_terminal::Receiver,
    rx_events: Vec<RxEvent>,
    events: VecDeque<Event>,
    timers: TimerTable,
    finished: Option<Outcome>,
    /// The call is ending with this result once what is queued has been sent.
    finishing: Option<Result<(), Failure>>,
    stats: Stats,
    /// The last command or response sent, for repeats (timeout, CRP, repeated commands).
    last_sent: Vec<Frame>,
    last_sent_name: &'static str,
    /// Frames of the burst being received, before its final frame.
    pending: Vec<Frame>,
    /// What we announce (DIS) or can use (against the far end's DIS).
    local: Capabilities,
}

impl Session {
    /// A new session starting at `now`.
    pub fn new(cfg: Config, now: Duration) -> Self {
        let receiving = matches!(cfg.role, Role::Receive);
        let local = Capabilities {
            receive: receiving,
            transmit: false,
            v27ter: true,
            v29: cfg.max_rate >= 7200,
            v17: cfg.max_rate >= 12000,
            fine: cfg.receive_fine || !receiving,
            superfine: cfg.receive_superfine || !receiving,
            mr: cfg.mr,
            mmr: cfg.mmr && cfg.ecm,
            ecm: cfg.ecm,
            max_width: 2432,
            unlimited_length: true,
            b4_length: true,
            min_scan_ms: 0,
            min_scan_halves: false,
            subaddressing: true,
            password: true,
        };
        let mut timers = TimerTable::default();
        timers.set(Timer::T1, now + cfg.timers.t1);
        let mut role = match &cfg.role {
            Role::Send(pages) => RoleState::Sender(Sender::new(pages.clone())),
            Role::Receive => RoleState::Receiver(Receiver::new()),
        };
        let calling = cfg.calling;
        let mut shared = Shared {
            start: now,
            tx: Transmitter::new(cfg.pacing),
            rx: t38_terminal::Receiver::new(),
            rx_events: Vec::new(),
            events: VecDeque::new(),
            timers,
            finished: None,
            finishing: None,
            stats: Stats::default(),
            last_sent: Vec::new(),
            last_sent_name: "",
            pending: Vec::new(),
            local,
            cfg,
        };
        match (&mut role, calling) {
            (RoleState::Sender(s), true) => s.begin(&mut shared, now),
            (RoleState::Receiver(r), false) => r.begin(&mut shared, now),
            (RoleState::Sender(_), false) => shared.fail_now(Failure::Incompatible {
                reason: "sending on a call we answered (polling) is not supported".into(),
            }),
            (RoleState::Receiver(_), true) => shared.fail_now(Failure::Incompatible {
                reason: "receiving on a call we placed (polling) is not supported".into(),
            }),
        }
        Self { shared, role }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Whether the session has ended.
    pub fn is_finished(&self) -> bool {
        self.shared.finished.is_some()
    }

    /// The call itself is gone (the far end hung up: a SIP BYE): the session ends now, sending nothing
    /// more, as it would had the far end sent DCN at this point. The pages received so far were already
    /// given out as [`Event::PageReceived`]; a call that ends after the last page was confirmed (EOP and
    /// MCF) is a fax that arrived whole.
    pub fn call_ended(&mut self, now: Duration) {
        let sh = &mut self.shared;
        if sh.finished.is_some() {
            return;
        }
        if sh.finishing.is_none() {
            sh.stop_waiting();
            sh.finishing = Some(match &self.role {
                RoleState::Sender(s) => s.on_dcn(),
                RoleState::Receiver(r) => r.on_dcn(),
            });
        }
        sh.tx.clear();
        sh.finish(now);
    }

    /// Handles a received IFP; `seq` is its UDPTL sequence number.
    pub fn handle_ifp(&mut self, now: Duration, seq: Option<u16>, ifp: &Ifp) {
        if self.shared.finished.is_some() || self.shared.finishing.is_some() {
            return;
        }
        let mut evs = std::mem::take(&mut self.shared.rx_events);
        self.shared.rx.handle(seq, ifp, &mut evs);
        for ev in evs.drain(..) {
            if self.shared.finishing.is_some() {
                break;
            }
            self.on_rx(now, ev);
        }
        self.shared.rx_events = evs;
    }

    /// The next output; see the crate documentation.
    pub fn poll_output(&mut self, now: Duration) -> Output {
        loop {
            let sh = &mut self.shared;
            if let Some(o) = &sh.finished {
                if let Some(e) = sh.events.pop_front() {
                    return Output::Event(e);
                }
                return Output::Finished(o.clone());
            }
            if let Some(e) = sh.events.pop_front() {
                return Output::Event(e);
            }
            match sh.tx.poll(now) {
                Some(Due::Ifp(ifp)) => return Output::Transmit(ifp),
                // Once the call is ending, the role has nothing more to send.
                Some(Due::SignalDone) if sh.finishing.is_some() => continue,
                Some(Due::SignalDone) => {
                    match &mut self.role {
                        RoleState::Sender(s) => s.on_sent(sh, now),
                        RoleState::Receiver(r) => r.on_sent(sh, now),
                    }
                    continue;
                }
                None => {}
            }
            if sh.finishing.is_some() {
                if sh.tx.idle() {
                    sh.finish(now);
                    continue;
                }
            } else if let Some(t) = sh.timers.expired(now).next() {
                sh.timers.stop(t);
                match &mut self.role {
                    RoleState::Sender(s) => s.on_timer(sh, now, t),
                    RoleState::Receiver(r) => r.on_timer(sh, now, t),
                }
                continue;
            }
            // Once the call is ending, only what is still to be sent counts.
            let timers = sh.timers.next_timeout().filter(|_| sh.finishing.is_none());
            return Output::Timeout([sh.tx.next_due(), timers].into_iter().flatten().min());
        }
    }

    fn on_rx(&mut self, now: Duration, ev: RxEvent) {
        let sh = &mut self.shared;
        match (ev, &mut self.role) {
            (RxEvent::SignalStart { hdlc_v21 }, role) => {
                // Something is arriving: give it time (the response timer would cut a slow burst).
                let until = now + sh.cfg.timers.t2.max(Duration::from_secs(6));
                for t in [Timer::T2, Timer::T4] {
                    if sh.timers.get(t).is_some_and(|at| at < until) {
                        sh.timers.set(t, until);
                    }
                }
                if let RoleState::Receiver(r) = role
                    && !hdlc_v21
                {
                    r.image_signal_starts();
                }
            }
            (
                RxEvent::Frame {
                    frame,
                    ok,
                    v21: true,
                },
                _,
            ) => self.on_control(now, frame, ok),
            (
                RxEvent::Frame {
                    frame,
                    ok,
                    v21: false,
                },
                RoleState::Receiver(r),
            ) => {
                r.on_ecm_frame(sh, now, &frame, ok);
            }
            (RxEvent::Data(d), RoleState::Receiver(r)) => r.on_data(sh, now, &d),
            (RxEvent::DataLost { ifps }, RoleState::Receiver(r)) => r.on_data_lost(ifps),
            (RxEvent::SignalEnd, RoleState::Receiver(r)) => r.on_signal_end(sh, now),
            // A sender receives no image data and waits for no signal's end.
            (
                RxEvent::Frame { v21: false, .. }
                | RxEvent::Data(_)
                | RxEvent::DataLost { .. }
                | RxEvent::SignalEnd,
                RoleState::Sender(_),
            ) => {}
        }
    }

    fn on_control(&mut self, now: Duration, frame: Frame, ok: bool) {
        let sh = &mut self.shared;
        if !ok {
            if let RoleState::Receiver(r) = &mut self.role {
                r.on_damaged_frame(sh, now, &frame);
            }
            sh.pending.clear();
            return;
        }
        let f = frame.fcf();
        debug!(frame = fcf::name(frame.fcf_octet()), "T.30 received");
        if f == Some(Fcf::DCN) {
            sh.stop_waiting();
            let result = match &self.role {
                RoleState::Sender(s) => s.on_dcn(),
                RoleState::Receiver(r) => r.on_dcn(),
            };
            sh.finishing = Some(result);
            sh.tx.clear();
            return;
        }
        if !frame.is_final() {
            sh.pending.push(frame);
            return;
        }
        let sid = sh.take_identities();
        match &mut self.role {
            RoleState::Sender(s) => s.on_frame(sh, now, f, &frame),
            // A receiver has nothing to say to an FCF it does not know.
            RoleState::Receiver(r) => {
                if let Some(f) = f {
                    r.on_frame(sh, now, f, &frame, sid.as_deref());
                }
            }
        }
    }
}

/// A role's place in the exchange of frames: its state `S` (the default is "sending"), what follows the
/// burst being sent (`A`, the default being nothing), and what followed the last command or response
/// sent, for its repeat.
#[derive(Debug, Default)]
struct Turn<S, A> {
    state: S,
    after: A,
    last_after: A,
}

impl<S: Copy + Default, A: Copy + Default> Turn<S, A> {
    /// A signal is being sent; `after` follows once it has left.
    fn sending(&mut self, after: A) {
        self.state = S::default();
        self.after = after;
    }

    /// Sends a command or response, kept for repeats; `after` follows once it has left.
    fn send(
        &mut self,
        sh: &mut Shared,
        now: Duration,
        frames: Vec<Frame>,
        name: &'static str,
        after: A,
    ) {
        sh.send_frames(now, frames, name);
        self.last_after = after;
        self.sending(after);
    }

    /// The last command or response again, followed by what followed it.
    fn send_again(&mut self, sh: &mut Shared, now: Duration) {
        let (frames, name) = (sh.last_sent.clone(), sh.last_sent_name);
        self.send(sh, now, frames, name, self.last_after);
    }

    /// What follows the burst that has just left, taken.
    fn take_after(&mut self) -> A {
        std::mem::take(&mut self.after)
    }
}

impl Shared {
    fn set_timer(&mut self, now: Duration, t: Timer) {
        self.timers.set(t, now + self.cfg.timers.get(t));
    }

    /// Stops the wait for a command or a response (T2, T4): we are about to speak, or the call ends.
    fn stop_waiting(&mut self) {
        self.timers.stop(Timer::T2);
        self.timers.stop(Timer::T4);
    }

    /// Queues a burst of control frames at V.21.
    fn send_hdlc(&mut self, now: Duration, frames: Vec<Frame>) {
        self.tx.send(
            now,
            Signal::Hdlc {
                modem: None,
                frames,
                long_training: false,
            },
        );
    }

    /// Sends a command or response, kept as the one to repeat; the wait for the far end starts when it
    /// has left.
    fn send_frames(&mut self, now: Duration, frames: Vec<Frame>, name: &'static str) {
        debug!(frames = %frames.iter().map(|f| fcf::name(f.fcf_octet())).collect::<Vec<_>>().join(","), "T.30 send");
        self.last_sent = frames.clone();
        self.last_sent_name = name;
        self.stop_waiting();
        self.send_hdlc(now, frames);
    }

    /// A command from the sender (X bit set: we received the DIS).
    fn command(&self, fcf: Fcf, fif: &[u8], last: bool) -> Frame {
        Frame::with_octet(fcf.with_x(self.cfg.calling), fif, last)
    }

    /// The identities that came before the final frame of a burst (CSI or TSI, SUB) into the
    /// statistics; the password (SID), if one came.
    fn take_identities(&mut self) -> Option<String> {
        let mut sid = None;
        for p in std::mem::take(&mut self.pending) {
            match p.fcf() {
                Some(Fcf::CSI | Fcf::TSI) => self.stats.remote_ident = fcf::decode_ident(p.fif()),
                Some(Fcf::SUB) => self.stats.sub_address = fcf::decode_ident(p.fif()),
                Some(Fcf::SID) => sid = Some(fcf::decode_ident(p.fif())),
                _ => {}
            }
        }
        sid
    }

    /// Ends the call at once, sending nothing more.
    fn fail_now(&mut self, f: Failure) {
        self.finishing = Some(Err(f));
        self.tx.clear();
    }

    /// Ends the call: DCN then the outcome.
    fn end(&mut self, now: Duration, result: Result<(), Failure>) {
        if self.finishing.is_some() {
            return;
        }
        let dcn = self.command(Fcf::DCN, &[], true);
        self.stop_waiting();
        self.send_hdlc(now, vec![dcn]);
        self.finishing = Some(result);
    }

    fn finish(&mut self, now: Duration) {
        let result = self.finishing.take().unwrap_or(Ok(()));
        self.stats.image_octets = self.tx.image_octets;
        self.stats.lost_packets = self.rx.lost_packets;
        let detail = match &result {
            Ok(()) => format!(
                "{} page(s), last frame {}",
                self.stats.pages, self.last_sent_name
            ),
            Err(f) => format!(
                "{f}; last sent {}",
                if self.last_sent_name.is_empty() {
                    "-"
                } else {
                    self.last_sent_name
                }
            ),
        };
        self.finished = Some(Outcome {
            result,
            detail,
            stats: self.stats.clone(),
            duration: now.saturating_sub(self.start),
        });
    }
}

#[cfg(test)]
mod tests;
