//! The T.30 procedure (T.30 §5 and the flow charts of Annex A; ECM from T.30 Annex A and T.4 Annex A).
//!
//! One [`Session`] is either a sender that called (CNG, waits for DIS, DCS + TCF, pages, DCN) or a
//! receiver that answered (CED, CSI + DIS, checks TCF, receives pages, answers post-message commands).
//! Every wait has its T.30 timer; commands are repeated up to `max_retries` times.

use std::collections::VecDeque;
use std::time::Duration;

use t38::Ifp;
use tracing::debug;

use crate::dis_dcs::{
    Capabilities, Compression, Dcs, Fif, Modem, Resolution, bit, min_scan_for, page_lines,
};
use crate::ecm::{self, BlockRx};
use crate::fcf::{self, Fcf, Frame};
use crate::t38_terminal::{Due, Receiver, RxEvent, Signal, Transmitter};
use crate::timer::{Timer, TimerTable};
use crate::{Config, Event, Failure, Outcome, Output, Page, ReceivedPage, Role, Stats};

/// TCF lasts 1.5 s (T.30 §5.3.6.1.3); the receiver wants at least 1 s of unbroken zeros.
const TCF_SECONDS_X2: u32 = 3;
/// ECM: partial page requests before CTC (T.30 §A.4.3).
const PPR_BEFORE_CTC: u32 = 4;
/// ECM: CTC rounds before giving up on a block.
const MAX_CTC: u32 = 2;
/// Non-ECM pages sent again after RTN.
const MAX_PAGE_RETRIES: u32 = 2;
/// Largest non-ECM page data accepted (a page of noise at 2432 pels is far smaller).
const MAX_PAGE_OCTETS: usize = 32 << 20;

/// What to do when the burst being sent has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    /// DCS sent: the TCF follows.
    SendTcf,
    /// A command sent: wait T4 for the response.
    AwaitResponse,
    /// Image (non-ECM page or ECM block) sent: the post-message command follows.
    PostMessage,
    /// CED sent: DIS follows.
    SendDis,
    /// A response sent: wait T2 for the next command.
    AwaitCommand,
    /// CFR, MCF or CTR sent: wait T2 for image data.
    AwaitPage,
    /// MCF to EOP sent: wait for DCN.
    AwaitDcn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sending something; see `after`.
    Busy,
    /// Sender: CNG sent, waiting for DIS (T1).
    WaitDis,
    /// Sender: waiting for CFR / FTT.
    WaitCfr,
    /// Sender: waiting for the response to a post-message command (or PPS, RR).
    WaitPostResponse,
    /// Sender: waiting for CTR.
    WaitCtr,
    /// Receiver: waiting for a command (DCS, post-message, DCN).
    WaitCommand,
    /// Receiver: DCS received, the TCF comes.
    WaitTcf,
    /// Receiver: waiting for or receiving image data.
    Image,
    /// Receiver: all pages in, waiting for DCN.
    WaitDcn,
    Done,
}

/// Sender: the current page in ECM frames.
#[derive(Debug, Default)]
struct EcmTx {
    /// The page's frames (each `frame_size` octets of T.4 data, in line order).
    frames: Vec<Vec<u8>>,
    /// First frame of the current block.
    block_start: usize,
    block: u8,
    /// Frames of the block still to send (after PPR).
    resend: Vec<bool>,
    pprs: u32,
    ctcs: u32,
}

impl EcmTx {
    fn block_len(&self) -> usize {
        (self.frames.len() - self.block_start).min(256)
    }

    fn last_block(&self) -> bool {
        self.block_start + self.block_len() >= self.frames.len()
    }
}

/// The T.30 session. See the crate documentation for the calling contract.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    start: Duration,
    state: State,
    after: After,
    tx: Transmitter,
    rx: Receiver,
    rx_events: Vec<RxEvent>,
    events: VecDeque<Event>,
    timers: TimerTable,
    finished: Option<Outcome>,
    finishing: Option<Result<(), Failure>>,
    stats: Stats,
    /// The last command or response sent, for repeats (timeout, CRP, repeated commands).
    last_sent: Vec<Frame>,
    last_sent_name: &'static str,
    last_after: After,
    retries: u32,
    /// Frames of the burst being received, before its final frame.
    pending: Vec<Frame>,
    local: Capabilities,
    // Sender.
    pages: Vec<Page>,
    page: usize,
    page_retries: u32,
    far: Option<Capabilities>,
    modems: Vec<Modem>,
    fallback: usize,
    dcs: Option<Dcs>,
    retrain: bool,
    post_fcf: Fcf,
    ecm_tx: EcmTx,
    // Receiver.
    tcf_zeros: u32,
    tcf_best: u32,
    tcf_bits: u64,
    page_data: Vec<u8>,
    new_data: bool,
    /// Non-ECM: how the page's IFPs came.
    page_ifps: IfpCount,
    ecm_rx: BlockRx,
    eop_seen: bool,
    /// Pages handed up, confirmed or not: every one counts against `max_pages`.
    pages_kept: u32,
}

impl Session {
    /// A new session starting at `now`.
    pub fn new(cfg: Config, now: Duration) -> Self {
        let tx = Transmitter::new(cfg.pacing);
        let local = Capabilities {
            receive: matches!(cfg.role, Role::Receive),
            transmit: false,
            v27ter: true,
            v29: cfg.max_rate >= 7200,
            v17: cfg.max_rate >= 12000,
            fine: cfg.receive_fine || !matches!(cfg.role, Role::Receive),
            superfine: cfg.receive_superfine || !matches!(cfg.role, Role::Receive),
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
        let pages = match &cfg.role {
            Role::Send(p) => p.clone(),
            Role::Receive => Vec::new(),
        };
        let mut timers = TimerTable::default();
        timers.set(Timer::T1, now + cfg.timers.t1);
        let mut s = Self {
            start: now,
            state: State::Busy,
            after: After::Nothing,
            tx,
            rx: Receiver::new(),
            rx_events: Vec::new(),
            events: VecDeque::new(),
            timers,
            finished: None,
            finishing: None,
            stats: Stats::default(),
            last_sent: Vec::new(),
            last_sent_name: "",
            last_after: After::Nothing,
            retries: 0,
            pending: Vec::new(),
            local,
            pages,
            page: 0,
            page_retries: 0,
            far: None,
            modems: Vec::new(),
            fallback: 0,
            dcs: None,
            retrain: false,
            post_fcf: Fcf::EOP,
            ecm_tx: EcmTx::default(),
            tcf_zeros: 0,
            tcf_best: 0,
            tcf_bits: 0,
            page_data: Vec::new(),
            new_data: false,
            page_ifps: IfpCount::default(),
            ecm_rx: BlockRx::default(),
            eop_seen: false,
            pages_kept: 0,
            cfg,
        };
        s.begin(now);
        s
    }

    fn begin(&mut self, now: Duration) {
        match (&self.cfg.role, self.cfg.calling) {
            (Role::Send(pages), true) => {
                if pages.is_empty() {
                    self.fail_now(Failure::BadPage {
                        reason: "no pages to send".into(),
                    });
                    return;
                }
                if let Some(p) = pages
                    .iter()
                    .find(|p| ![1728, 2048, 2432].contains(&p.width))
                {
                    let reason = format!(
                        "page width {} is not a fax width (1728, 2048 or 2432)",
                        p.width
                    );
                    self.fail_now(Failure::BadPage { reason });
                    return;
                }
                self.tx.send(now, Signal::Cng);
                self.state = State::WaitDis;
            }
            (Role::Receive, false) => {
                self.tx.send(now, Signal::Ced);
                self.state = State::Busy;
                self.after = After::SendDis;
            }
            (Role::Send(_), false) => self.fail_now(Failure::Incompatible {
                reason: "sending on a call we answered (polling) is not supported".into(),
            }),
            (Role::Receive, true) => self.fail_now(Failure::Incompatible {
                reason: "receiving on a call we placed (polling) is not supported".into(),
            }),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the session has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Handles a received IFP; `seq` is its UDPTL sequence number.
    pub fn handle_ifp(&mut self, now: Duration, seq: Option<u16>, ifp: &Ifp) {
        if self.finished.is_some() || self.finishing.is_some() {
            return;
        }
        let mut evs = std::mem::take(&mut self.rx_events);
        self.rx.handle(seq, ifp, &mut evs);
        for ev in evs.drain(..) {
            if self.finishing.is_some() {
                break;
            }
            self.on_rx(now, ev);
        }
        self.rx_events = evs;
    }

    /// The next output; see the crate documentation.
    pub fn poll_output(&mut self, now: Duration) -> Output {
        loop {
            if let Some(o) = &self.finished {
                if let Some(e) = self.events.pop_front() {
                    return Output::Event(e);
                }
                return Output::Finished(o.clone());
            }
            if let Some(e) = self.events.pop_front() {
                return Output::Event(e);
            }
            match self.tx.poll(now) {
                Some(Due::Ifp(ifp)) => return Output::Transmit(ifp),
                Some(Due::SignalDone) => {
                    self.on_tx_done(now);
                    continue;
                }
                None => {}
            }
            if self.finishing.is_some() {
                if self.tx.idle() {
                    self.finish(now);
                    continue;
                }
            } else if let Some(t) = self.timers.expired(now).next() {
                self.timers.stop(t);
                self.on_timer(now, t);
                continue;
            }
            // Once the call is ending, only what is still to be sent counts.
            let timers = self
                .timers
                .next_timeout()
                .filter(|_| self.finishing.is_none());
            return Output::Timeout([self.tx.next_due(), timers].into_iter().flatten().min());
        }
    }

    // ----- output helpers -----

    fn set_timer(&mut self, now: Duration, t: Timer) {
        self.timers.set(t, now + self.cfg.timers.get(t));
    }

    /// Stops the wait for a command or a response (T2, T4): we are about to speak, or the call ends.
    fn stop_waiting(&mut self) {
        self.timers.stop(Timer::T2);
        self.timers.stop(Timer::T4);
    }

    fn send_frames(&mut self, now: Duration, frames: Vec<Frame>, name: &'static str, after: After) {
        debug!(frames = %frames.iter().map(|f| fcf::name(f.fcf_octet())).collect::<Vec<_>>().join(","), "T.30 send");
        self.last_sent = frames.clone();
        self.last_sent_name = name;
        self.last_after = after;
        self.stop_waiting();
        self.tx.send(
            now,
            Signal::Hdlc {
                modem: None,
                frames,
                long_training: false,
            },
        );
        self.state = State::Busy;
        self.after = after;
    }

    /// A command from the sender (X bit set: we received the DIS).
    fn command(&self, fcf: Fcf, fif: &[u8], last: bool) -> Frame {
        Frame::with_octet(fcf.with_x(self.cfg.calling), fif, last)
    }

    fn response(&self, fcf: Fcf, fif: &[u8]) -> Frame {
        Frame::new(fcf, fif, true)
    }

    fn fail_now(&mut self, f: Failure) {
        self.finishing = Some(Err(f));
        self.after = After::Nothing;
        self.tx.clear();
    }

    /// Ends the call: DCN then the outcome.
    fn end(&mut self, now: Duration, result: Result<(), Failure>) {
        if self.finishing.is_some() {
            return;
        }
        let dcn = self.command(Fcf::DCN, &[], true);
        self.stop_waiting();
        self.after = After::Nothing;
        self.tx.send(
            now,
            Signal::Hdlc {
                modem: None,
                frames: vec![dcn],
                long_training: false,
            },
        );
        self.finishing = Some(result);
    }

    fn finish(&mut self, now: Duration) {
        let result = self.finishing.take().unwrap_or(Ok(()));
        self.state = State::Done;
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

    // ----- events -----

    fn on_tx_done(&mut self, now: Duration) {
        let after = std::mem::replace(&mut self.after, After::Nothing);
        match after {
            After::Nothing => {}
            After::SendTcf => self.send_tcf(now),
            After::AwaitResponse => {
                self.state = match self.last_sent_name {
                    "DCS" => State::WaitCfr,
                    "CTC" => State::WaitCtr,
                    _ => State::WaitPostResponse,
                };
                self.set_timer(now, Timer::T4);
            }
            After::PostMessage => self.send_post_message(now),
            After::SendDis => self.send_dis(now),
            After::AwaitCommand => {
                self.state = State::WaitCommand;
                self.set_timer(now, Timer::T2);
            }
            After::AwaitPage => {
                self.state = State::Image;
                self.set_timer(now, Timer::T2);
            }
            After::AwaitDcn => {
                self.state = State::WaitDcn;
                self.set_timer(now, Timer::T2);
            }
        }
    }

    fn on_timer(&mut self, now: Duration, t: Timer) {
        match (t, self.state) {
            (Timer::T1, State::WaitDis) => self.fail_now(Failure::NoFaxTone),
            // An answering receiver that never got a DCS gives up, whatever it is doing (even in the
            // middle of saying DIS again). T1 is cleared once DIS (sender) or DCS (receiver) arrives.
            (Timer::T1, _) if !self.cfg.calling && self.dcs.is_none() => {
                self.end(now, Err(Failure::NoFaxTone));
            }
            (Timer::T5, _) => {
                self.end(now, Err(Failure::RetriesExhausted { command: "RR" }));
            }
            (Timer::T4, State::WaitCfr | State::WaitPostResponse | State::WaitCtr) => {
                self.repeat(now);
            }
            (Timer::T2, State::WaitCommand) if !self.cfg.calling && self.dcs.is_none() => {
                // No DCS yet: say DIS again until T1.
                self.send_dis(now);
            }
            (Timer::T2, State::WaitTcf) => {
                // No TCF: the sender will repeat DCS.
                self.state = State::WaitCommand;
                self.set_timer(now, Timer::T2);
            }
            (Timer::T2, State::WaitDcn) => {
                // The sender left without DCN; every page is in.
                self.finishing = Some(Ok(()));
            }
            (Timer::T2, State::WaitCommand | State::Image) => {
                let during = if self.state == State::Image {
                    "image data"
                } else {
                    "a command"
                };
                self.end(now, Err(Failure::ReceiveTimeout { during }));
            }
            _ => {}
        }
    }

    /// Sends the last command again, or gives up after `max_retries`.
    fn repeat(&mut self, now: Duration) {
        self.retries += 1;
        if self.retries > self.cfg.max_retries {
            let command = self.last_sent_name;
            self.end(now, Err(Failure::RetriesExhausted { command }));
            return;
        }
        self.stats.repeats += 1;
        let frames = self.last_sent.clone();
        let name = self.last_sent_name;
        if name == "DCS" {
            // DCS is always followed by its TCF.
            self.send_frames(now, frames, name, After::SendTcf);
        } else {
            self.send_frames(now, frames, name, After::AwaitResponse);
        }
    }

    fn on_rx(&mut self, now: Duration, ev: RxEvent) {
        match ev {
            RxEvent::SignalStart { hdlc_v21 } => {
                // Something is arriving: give it time (the response timer would cut a slow burst).
                let until = now + self.cfg.timers.t2.max(Duration::from_secs(6));
                for t in [Timer::T2, Timer::T4] {
                    if self.timers.get(t).is_some_and(|at| at < until) {
                        self.timers.set(t, until);
                    }
                }
                if !hdlc_v21 && self.state == State::WaitTcf {
                    self.tcf_zeros = 0;
                    self.tcf_best = 0;
                    self.tcf_bits = 0;
                }
            }
            RxEvent::Frame { frame, ok, v21 } => {
                if v21 {
                    self.on_control(now, frame, ok);
                } else {
                    self.on_ecm_frame(now, frame, ok);
                }
            }
            RxEvent::Data(d) => self.on_data(now, &d),
            RxEvent::DataLost { ifps } => {
                if self.dcs.is_some_and(|d| !d.ecm) {
                    self.page_ifps.lost += ifps;
                    self.page_ifps.longest_gap = self.page_ifps.longest_gap.max(ifps);
                }
            }
            RxEvent::SignalEnd => {
                if self.state == State::WaitTcf && self.tcf_bits > 0 {
                    self.tcf_decide(now);
                }
            }
        }
    }

    fn on_control(&mut self, now: Duration, frame: Frame, ok: bool) {
        if !ok {
            // A damaged command: ask for it again (CRP) once the burst is over.
            if !self.cfg.calling
                && frame.is_final()
                && matches!(
                    self.state,
                    State::WaitCommand | State::Image | State::WaitDcn
                )
            {
                let crp = self.response(Fcf::CRP, &[]);
                self.stats.repeats += 1;
                let after = if self.state == State::WaitDcn {
                    After::AwaitDcn
                } else {
                    After::AwaitCommand
                };
                self.tx.send(
                    now,
                    Signal::Hdlc {
                        modem: None,
                        frames: vec![crp],
                        long_training: false,
                    },
                );
                self.state = State::Busy;
                self.after = after;
            }
            self.pending.clear();
            return;
        }
        let f = frame.fcf();
        debug!(frame = fcf::name(frame.fcf_octet()), "T.30 received");
        if f == Some(Fcf::DCN) {
            self.on_dcn(now);
            return;
        }
        if !frame.is_final() {
            self.pending.push(frame);
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut sid = None;
        for p in &pending {
            match p.fcf() {
                Some(Fcf::CSI | Fcf::TSI) => self.stats.remote_ident = fcf::decode_ident(p.fif()),
                Some(Fcf::SUB) => self.stats.sub_address = fcf::decode_ident(p.fif()),
                Some(Fcf::SID) => sid = Some(fcf::decode_ident(p.fif())),
                _ => {}
            }
        }
        if !self.cfg.calling && f == Some(Fcf::DCS) && !self.cfg.password.is_empty() {
            // A receive password (T.30 §5.3.6.2.x, SID): no fax without it.
            if sid.as_deref() != Some(self.cfg.password.as_str()) {
                self.end(now, Err(Failure::PasswordRejected));
                return;
            }
        }
        if self.cfg.calling {
            self.sender_frame(now, f, &frame);
        } else if let Some(f) = f {
            // A receiver has nothing to say to an FCF it does not know.
            self.receiver_frame(now, f, &frame);
        }
    }

    fn on_dcn(&mut self, _now: Duration) {
        self.stop_waiting();
        if !self.cfg.calling && (self.eop_seen || self.state == State::WaitDcn) {
            self.finishing = Some(Ok(()));
        } else {
            let during = match self.state {
                State::WaitDis | State::WaitCfr | State::WaitTcf => "phase B (negotiation)",
                State::WaitPostResponse | State::WaitCtr => "phase D (post-message)",
                State::Image => "phase C (image)",
                _ => "the call",
            };
            self.finishing = Some(Err(Failure::RemoteHungUp { during }));
        }
        self.tx.clear();
    }

    // ----- sender -----

    /// A sender's dispatch of a received final frame; `None` is an FCF not in Table 5.
    fn sender_frame(&mut self, now: Duration, f: Option<Fcf>, frame: &Frame) {
        let state = self.state;
        if state == State::WaitPostResponse && !matches!(f, Some(Fcf::CRP | Fcf::RNR)) {
            // Any answer but RNR (or a request to repeat) says the receiver is ready: T5 stops.
            self.timers.stop(Timer::T5);
        }
        let Some(f) = f else { return };
        match f {
            Fcf::DIS => match state {
                State::WaitDis => self.on_dis(now, frame),
                State::WaitCfr => {
                    // Our DCS was not heard: the receiver says DIS again.
                    self.retries += 1;
                    if self.retries > self.cfg.max_retries {
                        self.end(now, Err(Failure::RetriesExhausted { command: "DCS" }));
                        return;
                    }
                    self.on_dis(now, frame);
                }
                _ => {}
            },
            Fcf::CFR if state == State::WaitCfr => {
                self.retries = 0;
                if let Some(d) = self.dcs {
                    self.events.push_back(Event::Trained(d));
                }
                self.retrain = false;
                self.start_page(now);
            }
            Fcf::FTT if state == State::WaitCfr => {
                self.stats.ftts += 1;
                self.retries = 0;
                self.fallback += 1;
                if self.fallback >= self.modems.len() {
                    self.end(now, Err(Failure::TrainingFailed));
                } else {
                    self.send_dcs(now);
                }
            }
            Fcf::CTR if state == State::WaitCtr => {
                self.retries = 0;
                self.ecm_tx.pprs = 0;
                self.send_ecm_block(now, true);
            }
            Fcf::CRP
                if matches!(
                    state,
                    State::WaitCfr | State::WaitCtr | State::WaitPostResponse
                ) =>
            {
                self.repeat(now);
            }
            Fcf::RNR if state == State::WaitPostResponse => self.not_ready(now),
            Fcf::MCF | Fcf::PIP | Fcf::PPR | Fcf::RTP | Fcf::RTN | Fcf::PIN
                if state == State::WaitPostResponse =>
            {
                self.post_response(now, f, frame);
            }
            // Responses out of their state, and what a receiver does not send.
            Fcf::CFR
            | Fcf::FTT
            | Fcf::CTR
            | Fcf::CRP
            | Fcf::RNR
            | Fcf::MCF
            | Fcf::PIP
            | Fcf::PPR
            | Fcf::RTP
            | Fcf::RTN
            | Fcf::PIN
            | Fcf::CSI
            | Fcf::NSF
            | Fcf::DTC
            | Fcf::DCS
            | Fcf::TSI
            | Fcf::NSS
            | Fcf::SUB
            | Fcf::SID
            | Fcf::CTC
            | Fcf::PWD
            | Fcf::EOM
            | Fcf::MPS
            | Fcf::EOP
            | Fcf::PRI_EOM
            | Fcf::PRI_MPS
            | Fcf::PRI_EOP
            | Fcf::PPS
            | Fcf::EOR
            | Fcf::RR
            | Fcf::ERR
            | Fcf::DCN
            | Fcf::FNV
            | Fcf::FCD
            | Fcf::RCP => {}
        }
    }

    fn on_dis(&mut self, now: Duration, frame: &Frame) {
        let far = Capabilities::from_dis(&Fif(frame.fif().to_vec()));
        if !far.receive {
            self.end(
                now,
                Err(Failure::Incompatible {
                    reason: "the far end cannot receive (DIS bit 10 clear)".into(),
                }),
            );
            return;
        }
        let modems = self.local.common_modems(&far, self.cfg.max_rate);
        if modems.is_empty() {
            let reason = format!("no modem at or below {} bit/s", self.cfg.max_rate);
            self.end(now, Err(Failure::Incompatible { reason }));
            return;
        }
        let width = self.pages.first().map_or(1728, |p| p.width);
        if width > far.max_width {
            let reason = format!(
                "page width {width} pels but the far end takes at most {}",
                far.max_width
            );
            self.end(now, Err(Failure::Incompatible { reason }));
            return;
        }
        // One resolution for the document: the first page's, or the finest the far end has below it.
        let want = self
            .pages
            .first()
            .map_or(Resolution::Fine, |p| p.resolution);
        let res = [
            Resolution::Superfine,
            Resolution::Fine,
            Resolution::Standard,
        ]
        .into_iter()
        .filter(|r| *r <= want)
        .find(|r| match r {
            Resolution::Superfine => far.superfine,
            Resolution::Fine => far.fine,
            Resolution::Standard => true,
        })
        .unwrap_or(Resolution::Standard);
        for p in &mut self.pages {
            if p.resolution != res {
                *p = convert_resolution(p, res);
            }
        }
        let ecm = self.cfg.ecm && far.ecm;
        let compression = if ecm && self.cfg.mmr && far.mmr {
            Compression::Mmr
        } else if self.cfg.mr && far.mr {
            Compression::Mr
        } else {
            Compression::Mh
        };
        let max_h = self.pages.iter().map(|p| p.height).max().unwrap_or(0);
        let a4 = page_lines(res, false);
        self.far = Some(far.clone());
        self.modems = modems;
        self.fallback = 0;
        self.dcs = Some(Dcs {
            modem: self.modems[0],
            resolution: res,
            compression,
            ecm,
            ecm_frame: if self.cfg.ecm_frame == 64 { 64 } else { 256 },
            width,
            min_scan_ms: if ecm { 0 } else { min_scan_for(&far, res) },
            unlimited_length: far.unlimited_length && max_h > a4,
            b4_length: far.b4_length && !far.unlimited_length && max_h > a4,
            sub: !self.cfg.sub_address.is_empty() && far.subaddressing,
            sid: !self.cfg.password.is_empty() && far.password,
        });
        self.timers.stop(Timer::T1);
        self.send_dcs(now);
    }

    fn send_dcs(&mut self, now: Duration) {
        let Some(mut d) = self.dcs else { return };
        d.modem = self.modems[self.fallback.min(self.modems.len() - 1)];
        self.dcs = Some(d);
        self.stats.dcs = Some(d);
        let mut frames = vec![self.command(Fcf::TSI, &fcf::encode_ident(&self.cfg.ident), false)];
        if d.sub {
            frames.push(self.command(Fcf::SUB, &fcf::encode_ident(&self.cfg.sub_address), false));
        }
        if d.sid {
            frames.push(self.command(Fcf::SID, &fcf::encode_ident(&self.cfg.password), false));
        }
        frames.push(self.command(Fcf::DCS, &d.to_fif().0, true));
        self.send_frames(now, frames, "DCS", After::SendTcf);
    }

    fn send_tcf(&mut self, now: Duration) {
        let Some(d) = self.dcs else { return };
        let octets = (d.modem.bit_rate() * TCF_SECONDS_X2 / 16) as usize;
        self.tx.send(
            now,
            Signal::NonEcm {
                modem: d.modem,
                data: vec![0; octets],
                long_training: true,
            },
        );
        self.state = State::Busy;
        self.after = After::AwaitResponse;
    }

    fn encode_page(&self, index: usize) -> Result<Vec<u8>, Failure> {
        let (Some(d), Some(p)) = (self.dcs, self.pages.get(index)) else {
            return Err(Failure::BadPage {
                reason: "no page".into(),
            });
        };
        let mut o = t4::EncodeOptions::fax(d.compression.coding(d.resolution));
        o.min_line_bits = d.min_line_bits();
        let page = t4::PageRef {
            width: p.width,
            height: p.height,
            data: &p.data,
        };
        t4::encode(page, &o).map_err(|e| Failure::BadPage {
            reason: e.to_string(),
        })
    }

    fn start_page(&mut self, now: Duration) {
        if self.retrain {
            self.retrain = false;
            self.send_dcs(now);
            return;
        }
        let Some(d) = self.dcs else { return };
        let data = match self.encode_page(self.page) {
            Ok(v) => v,
            Err(f) => {
                self.end(now, Err(f));
                return;
            }
        };
        self.post_fcf = if self.page + 1 < self.pages.len() {
            Fcf::MPS
        } else {
            Fcf::EOP
        };
        if d.ecm {
            // T.4 data in HDLC octet order (see fcf), cut into frames; the last frame zero-padded.
            let size = d.ecm_frame;
            let frames = data
                .chunks(size)
                .map(|c| {
                    let mut v: Vec<u8> = c.iter().map(|b| b.reverse_bits()).collect();
                    v.resize(size, 0);
                    v
                })
                .collect();
            self.ecm_tx = EcmTx {
                frames,
                ..EcmTx::default()
            };
            self.send_ecm_block(now, false);
        } else {
            self.tx.send(
                now,
                Signal::NonEcm {
                    modem: d.modem,
                    data,
                    long_training: false,
                },
            );
            self.state = State::Busy;
            self.after = After::PostMessage;
        }
    }

    /// Sends the current ECM block, or its frames flagged for retransmission.
    fn send_ecm_block(&mut self, now: Duration, resend_only: bool) {
        let Some(d) = self.dcs else { return };
        let n = self.ecm_tx.block_len();
        if !resend_only {
            self.ecm_tx.resend = vec![true; n];
        }
        let mut frames = Vec::new();
        for i in 0..n {
            if self.ecm_tx.resend.get(i).copied().unwrap_or(false) {
                let data = &self.ecm_tx.frames[self.ecm_tx.block_start + i];
                let mut fif = Vec::with_capacity(1 + data.len());
                fif.push(i as u8);
                fif.extend_from_slice(data);
                frames.push(Frame::new(Fcf::FCD, &fif, false));
                if resend_only {
                    self.stats.retransmitted_frames += 1;
                }
            }
        }
        for _ in 0..3 {
            frames.push(Frame::new(Fcf::RCP, &[], false));
        }
        self.tx.send(
            now,
            Signal::Hdlc {
                modem: Some(d.modem),
                frames,
                long_training: false,
            },
        );
        self.state = State::Busy;
        self.after = After::PostMessage;
    }

    fn send_post_message(&mut self, now: Duration) {
        let Some(d) = self.dcs else { return };
        self.retries = 0;
        if d.ecm {
            let last = self.ecm_tx.last_block();
            let fcf2 = if last {
                self.post_fcf.with_x(true)
            } else {
                fcf::PPS_NULL
            };
            let n = if self.cfg.pps_counts_burst {
                self.ecm_tx.resend.iter().filter(|r| **r).count()
            } else {
                self.ecm_tx.block_len()
            };
            let fif = [
                fcf2,
                self.page as u8,
                self.ecm_tx.block,
                (n.max(1) - 1) as u8,
            ];
            let pps = self.command(Fcf::PPS, &fif, true);
            self.send_frames(now, vec![pps], "PPS", After::AwaitResponse);
        } else {
            let name = self.post_fcf.name();
            let cmd = self.command(self.post_fcf, &[], true);
            self.send_frames(now, vec![cmd], name, After::AwaitResponse);
        }
    }

    fn page_confirmed(&mut self, now: Duration) {
        self.events.push_back(Event::PageSent {
            index: self.page as u32,
        });
        self.stats.pages += 1;
        self.page += 1;
        self.page_retries = 0;
        if self.page >= self.pages.len() {
            self.end(now, Ok(()));
        } else {
            self.start_page(now);
        }
    }

    /// Not ready (RNR): ask again (RR) until T5.
    fn not_ready(&mut self, now: Duration) {
        if self.timers.get(Timer::T5).is_none() {
            self.set_timer(now, Timer::T5);
        }
        let rr = self.command(Fcf::RR, &[], true);
        self.retries = 0;
        self.send_frames(now, vec![rr], "RR", After::AwaitResponse);
    }

    /// The receiver's answer to a post-message command (or PPS): MCF, PIP, PPR, RTP, RTN or PIN.
    fn post_response(&mut self, now: Duration, f: Fcf, frame: &Frame) {
        let ecm = self.dcs.is_some_and(|d| d.ecm);
        if ecm {
            match f {
                Fcf::MCF | Fcf::PIP => {
                    self.retries = 0;
                    if self.ecm_tx.last_block() {
                        self.page_confirmed(now);
                    } else {
                        self.ecm_tx.block_start += self.ecm_tx.block_len();
                        self.ecm_tx.block = self.ecm_tx.block.wrapping_add(1);
                        self.ecm_tx.pprs = 0;
                        self.ecm_tx.ctcs = 0;
                        self.send_ecm_block(now, false);
                    }
                }
                Fcf::PPR => self.partial_page_request(now, frame),
                Fcf::PIN | Fcf::RTN => {
                    self.end(
                        now,
                        Err(Failure::PageRejected {
                            page: self.page as u32 + 1,
                        }),
                    );
                }
                _ => {}
            }
            return;
        }
        match f {
            Fcf::MCF | Fcf::PIP => {
                self.retries = 0;
                self.page_confirmed(now);
            }
            Fcf::RTP => {
                self.retries = 0;
                self.retrain = true;
                self.page_confirmed(now);
            }
            Fcf::RTN | Fcf::PIN => {
                self.retries = 0;
                self.page_retries += 1;
                if self.page_retries > MAX_PAGE_RETRIES {
                    self.end(
                        now,
                        Err(Failure::PageRejected {
                            page: self.page as u32 + 1,
                        }),
                    );
                    return;
                }
                // Retrain at a lower rate if there is one, then send the page again.
                if self.fallback + 1 < self.modems.len() {
                    self.fallback += 1;
                }
                self.retrain = true;
                self.start_page(now);
            }
            _ => {}
        }
    }

    /// ECM: PPR names the frames of the block to send again; after four, CTC (T.30 §A.4.3).
    fn partial_page_request(&mut self, now: Duration, frame: &Frame) {
        self.retries = 0;
        self.stats.pprs += 1;
        let map = frame.fif();
        let n = self.ecm_tx.block_len();
        self.ecm_tx.resend = (0..n)
            .map(|i| map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
            .collect();
        if !self.ecm_tx.resend.iter().any(|r| *r) {
            // A PPR that asks for nothing: treat as confirmation of the block.
            self.post_response(now, Fcf::MCF, frame);
            return;
        }
        self.ecm_tx.pprs += 1;
        if self.ecm_tx.pprs >= PPR_BEFORE_CTC {
            self.ecm_tx.ctcs += 1;
            if self.ecm_tx.ctcs > MAX_CTC {
                self.end(now, Err(Failure::RetriesExhausted { command: "PPS" }));
                return;
            }
            // Continue to correct, one rate lower if there is one.
            if self.fallback + 1 < self.modems.len() {
                self.fallback += 1;
            }
            let modem = self.modems[self.fallback];
            if let Some(d) = &mut self.dcs {
                d.modem = modem;
                self.stats.dcs = Some(*d);
            }
            let fif = modem_fif(modem);
            let ctc = self.command(Fcf::CTC, &fif.0, true);
            self.send_frames(now, vec![ctc], "CTC", After::AwaitResponse);
        } else {
            self.send_ecm_block(now, true);
        }
    }

    // ----- receiver -----

    fn send_dis(&mut self, now: Duration) {
        if self.timers.get(Timer::T1).is_some_and(|t1| now >= t1) {
            self.end(now, Err(Failure::NoFaxTone));
            return;
        }
        let csi = Frame::new(Fcf::CSI, &fcf::encode_ident(&self.cfg.ident), false);
        let dis = Frame::new(Fcf::DIS, &self.local.to_dis().0, true);
        self.send_frames(now, vec![csi, dis], "DIS", After::AwaitCommand);
    }

    fn respond(
        &mut self,
        now: Duration,
        fcf_value: Fcf,
        fif: &[u8],
        name: &'static str,
        after: After,
    ) {
        let r = self.response(fcf_value, fif);
        self.send_frames(now, vec![r], name, after);
    }

    fn repeat_response(&mut self, now: Duration) {
        if self.last_sent.is_empty() {
            return;
        }
        self.stats.repeats += 1;
        let frames = self.last_sent.clone();
        let after = self.last_after;
        let name = self.last_sent_name;
        self.send_frames(now, frames, name, after);
    }

    /// A receiver's dispatch of a received final frame.
    fn receiver_frame(&mut self, now: Duration, f: Fcf, frame: &Frame) {
        if f == Fcf::DCS {
            self.on_dcs(now, frame);
            return;
        }
        let Some(d) = self.dcs else {
            return;
        };
        match f {
            Fcf::CRP | Fcf::RR => self.repeat_response(now),
            Fcf::MPS | Fcf::EOP | Fcf::EOM | Fcf::PRI_MPS | Fcf::PRI_EOP | Fcf::PRI_EOM
                if !d.ecm =>
            {
                self.non_ecm_post_message(now, f);
            }
            Fcf::PPS if d.ecm => self.pps(now, frame),
            Fcf::CTC if d.ecm => {
                if let Some(m) = modem_from_fif(&Fif(frame.fif().to_vec()))
                    && let Some(d) = &mut self.dcs
                {
                    d.modem = m;
                }
                self.respond(now, Fcf::CTR, &[], "CTR", After::AwaitPage);
            }
            Fcf::EOR if d.ecm => {
                // The sender gives up on the missing frames: keep what came.
                let fcf2 = frame.fif().first().copied().unwrap_or(0);
                self.ecm_rx.take_partial(&mut self.page_data);
                if fcf2 != fcf::PPS_NULL {
                    self.page_after_eor(now, fcf2);
                    return;
                }
                self.respond(now, Fcf::ERR, &[], "ERR", After::AwaitPage);
            }
            // Commands of the other mode (ECM or not), and what a sender does not send.
            Fcf::MPS
            | Fcf::EOP
            | Fcf::EOM
            | Fcf::PRI_MPS
            | Fcf::PRI_EOP
            | Fcf::PRI_EOM
            | Fcf::PPS
            | Fcf::CTC
            | Fcf::EOR
            | Fcf::DIS
            | Fcf::CSI
            | Fcf::NSF
            | Fcf::DTC
            | Fcf::DCS
            | Fcf::TSI
            | Fcf::NSS
            | Fcf::SUB
            | Fcf::SID
            | Fcf::PWD
            | Fcf::CFR
            | Fcf::FTT
            | Fcf::CTR
            | Fcf::MCF
            | Fcf::RTP
            | Fcf::RTN
            | Fcf::PIP
            | Fcf::PIN
            | Fcf::PPR
            | Fcf::RNR
            | Fcf::ERR
            | Fcf::DCN
            | Fcf::FNV
            | Fcf::FCD
            | Fcf::RCP => {}
        }
    }

    /// DCS: the parameters for the call, if we can honour them; otherwise DIS again.
    fn on_dcs(&mut self, now: Duration, frame: &Frame) {
        match Dcs::from_fif(&Fif(frame.fif().to_vec())) {
            Some(d)
                if (d.compression != Compression::Mmr || d.ecm)
                    && (!d.ecm || self.cfg.ecm)
                    && match d.resolution {
                        Resolution::Standard => true,
                        Resolution::Fine => self.local.fine,
                        Resolution::Superfine => self.local.superfine,
                    } =>
            {
                self.dcs = Some(d);
                self.stats.dcs = Some(d);
                self.timers.stop(Timer::T1);
                self.state = State::WaitTcf;
                self.tcf_zeros = 0;
                self.tcf_best = 0;
                self.tcf_bits = 0;
                self.set_timer(now, Timer::T2);
            }
            _ => {
                // DCS we cannot honour: say what we can again.
                self.send_dis(now);
            }
        }
    }

    /// A post-message command (MPS, EOP, ..., or the first FCF of a PPS or EOR FIF): whether it ends the
    /// procedure, and the MCF to answer it with.
    fn post_kind(post: Option<Fcf>) -> (bool, &'static str, After) {
        if matches!(post, Some(Fcf::EOP | Fcf::PRI_EOP)) {
            (true, "MCF-EOP", After::AwaitDcn)
        } else {
            (false, "MCF", After::AwaitPage)
        }
    }

    fn non_ecm_post_message(&mut self, now: Duration, f: Fcf) {
        if !self.new_data {
            // The sender did not hear our response: say it again.
            self.repeat_response(now);
            return;
        }
        self.new_data = false;
        let Some(d) = self.dcs else { return };
        let data = std::mem::take(&mut self.page_data);
        let ifps = std::mem::take(&mut self.page_ifps);
        let decoded = decode(&data, &d, self.cfg.max_page_lines);
        let (eop, mcf_name, mcf_after) = Self::post_kind(Some(f));
        let (transit, transit_run) = decoded
            .as_ref()
            .map_or((0, 0), |p| ifps.lines(p.stats.height));
        // Copy quality (T.30 §5.3.6.1.1): bad lines, and the lines lost in transit or when the data stopped
        // before RTC, against the page's height; runs of them against the longest run allowed.
        let quality = match &decoded {
            Some(p) if p.stats.height > 0 => {
                let s = &p.stats;
                let end_lost = ecm::lines_lost(s, d.nominal_lines());
                let lost = u64::from(end_lost) + u64::from(transit);
                let bad = u64::from(s.bad_lines) + lost;
                let h = u64::from(s.height) + lost;
                let run = s.max_consecutive_bad.max(end_lost).max(transit_run);
                if bad * 50 <= h && run <= 4 {
                    Quality::Good
                } else if bad * 10 <= h && run <= 16 {
                    Quality::Retrain
                } else {
                    Quality::Bad
                }
            }
            _ => Quality::Bad,
        };
        match (quality, decoded) {
            (Quality::Bad, _) | (_, None) => {
                // Rejected: the sender retrains and sends the page again (or gives up).
                let after = After::AwaitCommand;
                self.respond(now, Fcf::RTN, &[], "RTN", after);
            }
            (q, Some(p)) => {
                if !self.accept_page(now, p, d, transit, true) {
                    return;
                }
                if eop {
                    self.eop_seen = true;
                }
                match q {
                    Quality::Good => self.respond(now, Fcf::MCF, &[], mcf_name, mcf_after),
                    _ => {
                        let after = if eop {
                            After::AwaitDcn
                        } else {
                            After::AwaitCommand
                        };
                        self.respond(now, Fcf::RTP, &[], "RTP", after);
                    }
                }
            }
        }
    }

    /// Hands a page up, with `transit` lines lost on the way; `confirmed` when we answer it with MCF /
    /// RTP. False when a limit stops the call.
    fn accept_page(
        &mut self,
        now: Duration,
        p: t4::Decoded,
        d: Dcs,
        transit: u32,
        confirmed: bool,
    ) -> bool {
        if self.pages_kept >= self.cfg.max_pages {
            let what = format!("more than {} pages", self.cfg.max_pages);
            self.end(now, Err(Failure::LimitExceeded { what }));
            return false;
        }
        let s = p.stats;
        self.pages_kept += 1;
        if confirmed {
            self.stats.pages += 1;
        }
        self.stats.bad_lines = self.stats.bad_lines.saturating_add(s.bad_lines);
        let page = ReceivedPage {
            page: Page {
                width: p.width,
                height: s.height,
                resolution: d.resolution,
                data: p.data,
            },
            dcs: d,
            bad_lines: s.bad_lines,
            max_consecutive_bad: s.max_consecutive_bad,
            lines_lost: ecm::lines_lost(&s, d.nominal_lines()).saturating_add(transit),
            complete: s.end == t4::PageEnd::Terminator,
            confirmed,
        };
        self.events.push_back(Event::PageReceived(Box::new(page)));
        true
    }

    fn on_data(&mut self, now: Duration, data: &[u8]) {
        match self.state {
            State::WaitTcf => {
                for &b in data {
                    self.tcf_bits += 8;
                    if b == 0 {
                        self.tcf_zeros += 8;
                    } else {
                        // The run ends at the first one bit.
                        self.tcf_zeros += b.leading_zeros();
                        self.tcf_best = self.tcf_best.max(self.tcf_zeros);
                        self.tcf_zeros = b.trailing_zeros();
                    }
                }
                self.tcf_best = self.tcf_best.max(self.tcf_zeros);
            }
            // Image data may start while our CFR's carrier is still winding down (Busy).
            State::Image | State::WaitCommand | State::Busy if self.dcs.is_some_and(|d| !d.ecm) => {
                if self.page_data.len() + data.len() > MAX_PAGE_OCTETS {
                    self.end(
                        now,
                        Err(Failure::LimitExceeded {
                            what: format!("page data over {MAX_PAGE_OCTETS} octets"),
                        }),
                    );
                    return;
                }
                self.state = State::Image;
                self.page_data.extend_from_slice(data);
                self.page_ifps.received += 1;
                self.new_data = true;
                self.set_timer(now, Timer::T2);
            }
            _ => {}
        }
    }

    fn tcf_decide(&mut self, now: Duration) {
        let Some(d) = self.dcs else { return };
        let good = self.tcf_best >= d.modem.bit_rate();
        self.tcf_bits = 0;
        if good {
            self.page_data.clear();
            self.page_ifps = IfpCount::default();
            self.ecm_rx.next_block();
            self.respond(now, Fcf::CFR, &[], "CFR", After::AwaitPage);
        } else {
            self.respond(now, Fcf::FTT, &[], "FTT", After::AwaitCommand);
        }
    }

    fn on_ecm_frame(&mut self, now: Duration, frame: Frame, ok: bool) {
        if !ok || !self.dcs.is_some_and(|d| d.ecm) {
            return;
        }
        if frame.fcf() == Some(Fcf::FCD) {
            if let Some((&n, data)) = frame.fif().split_first() {
                self.ecm_rx.store(n, data);
            }
            self.state = State::Image;
            self.set_timer(now, Timer::T2);
        }
    }

    fn pps(&mut self, now: Duration, frame: &Frame) {
        let fif = frame.fif();
        if fif.len() < 4 {
            self.respond(now, Fcf::CRP, &[], "CRP", After::AwaitCommand);
            return;
        }
        let (fcf2, page, block, count) = (fif[0], fif[1], fif[2], usize::from(fif[3]) + 1);
        if self.ecm_rx.confirmed == Some((page, block)) && !self.ecm_rx.new_frames {
            // Our MCF was lost: the sender asks again.
            self.repeat_response(now);
            return;
        }
        self.ecm_rx.announce(count);
        let missing = self.ecm_rx.missing();
        if !missing.is_empty() {
            self.request_frames(now, &missing);
            return;
        }
        let Some(d) = self.dcs else { return };
        let last = fcf2 != fcf::PPS_NULL;
        // The page so far with this block: confirmed only if it decodes without a fault.
        let before = self.page_data.len();
        self.ecm_rx.append_to(&mut self.page_data);
        let decoded = decode(&self.page_data, &d, self.cfg.max_page_lines);
        let fault = ecm::fault(
            decoded.as_ref().map(|p| &p.stats),
            last,
            self.cfg.max_page_lines,
        );
        if let Some(why) = fault {
            self.block_fault(now, decoded, d, why, before);
            return;
        }
        self.ecm_rx.next_block();
        self.ecm_rx.confirmed = Some((page, block));
        match decoded {
            Some(p) if last => {
                if !self.accept_page(now, p, d, 0, true) {
                    return;
                }
                self.page_data.clear();
                let (eop, name, after) = Self::post_kind(Fcf::parse(fcf2));
                if eop {
                    self.eop_seen = true;
                }
                self.respond(now, Fcf::MCF, &[], name, after);
            }
            _ => self.respond(now, Fcf::MCF, &[], "MCF", After::AwaitPage),
        }
    }

    /// PPR for these frames of the block.
    fn request_frames(&mut self, now: Duration, frames: &[usize]) {
        self.stats.pprs += 1;
        self.stats.retransmitted_frames += frames.len() as u32;
        let mut map = [0u8; 32];
        for &i in frames {
            map[i / 8] |= 1 << (i % 8);
        }
        self.respond(now, Fcf::PPR, &map, "PPR", After::AwaitPage);
    }

    /// Every frame of the block is in, yet the page does not decode: ask for the whole block again, unless
    /// that was done and the same data came back (it is what the sender sends) or the limit is reached;
    /// then the page is kept unconfirmed and the call ends.
    /// `page_data` holds the page with the block from `before` on.
    fn block_fault(
        &mut self,
        now: Duration,
        decoded: Option<t4::Decoded>,
        d: Dcs,
        why: String,
        before: usize,
    ) {
        let digest = self.ecm_rx.digest();
        let repeated = self.ecm_rx.failed_digest == Some(digest);
        debug!(%why, repeated, requests = self.ecm_rx.requests, "ECM block does not decode");
        if !repeated && self.ecm_rx.requests < ecm::MAX_BLOCK_REQUESTS {
            self.page_data.truncate(before);
            self.ecm_rx.requests += 1;
            self.ecm_rx.failed_digest = Some(digest);
            let all: Vec<usize> = (0..self.ecm_rx.count()).collect();
            self.ecm_rx.drop_frames();
            self.request_frames(now, &all);
            return;
        }
        let page = self.stats.pages + 1;
        if let Some(p) = decoded {
            // What came of the page, kept for the record but not confirmed.
            self.accept_page(now, p, d, 0, false);
        }
        self.page_data.clear();
        self.ecm_rx.next_block();
        self.end(now, Err(Failure::PageIncomplete { page, reason: why }));
    }

    /// The sender gave up on frames (EOR) at the end of a page: what came is kept, never confirmed, and
    /// acknowledged with ERR.
    fn page_after_eor(&mut self, now: Duration, fcf2: u8) {
        let Some(d) = self.dcs else { return };
        let data = std::mem::take(&mut self.page_data);
        let (eop, _, _) = Self::post_kind(Fcf::parse(fcf2));
        let kept = match decode(&data, &d, self.cfg.max_page_lines) {
            Some(p) if p.stats.height > 0 => self.accept_page(now, p, d, 0, false),
            _ => true,
        };
        if !kept {
            return;
        }
        if eop {
            self.eop_seen = true;
        }
        let after = if eop {
            After::AwaitDcn
        } else {
            After::AwaitPage
        };
        self.respond(now, Fcf::ERR, &[], "ERR", after);
    }
}

/// Non-ECM: the data IFPs of a page that came, and those lost in transit.
#[derive(Debug, Clone, Copy, Default)]
struct IfpCount {
    received: u64,
    lost: u64,
    longest_gap: u64,
}

impl IfpCount {
    /// Lines that went with the lost IFPs, and the longest run of them: the decoder cannot see lines
    /// that vanished whole, so they are estimated from the lines an IFP carried (at least one a gap).
    fn lines(&self, height: u32) -> (u32, u32) {
        if self.lost == 0 {
            return (0, 0);
        }
        let per_ifp = u64::from(height).div_ceil(self.received.max(1)).max(1);
        let cap = |n: u64| n.min(u64::from(u32::MAX)) as u32;
        (cap(self.lost * per_ifp), cap(self.longest_gap * per_ifp))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quality {
    Good,
    Retrain,
    Bad,
}

/// Decodes a received page; `None` when nothing could be made of it.
fn decode(data: &[u8], d: &Dcs, max_lines: u32) -> Option<t4::Decoded> {
    let mut o = t4::DecodeOptions::fax(d.compression.coding(d.resolution), d.width);
    o.max_height = max_lines;
    t4::decode(data, &o).ok()
}

/// The FIF of CTC: DCS octets 1 and 2 with the new modem (T.30 §5.3.6.2.12).
fn modem_fif(m: Modem) -> Fif {
    let mut f = Fif(vec![0, 0]);
    for (i, on) in m.dcs_bits().iter().enumerate() {
        if *on {
            f.set(bit::MODEM_1 + i as u32);
        }
    }
    f
}

fn modem_from_fif(f: &Fif) -> Option<Modem> {
    Modem::from_dcs_bits([
        f.get(bit::MODEM_1),
        f.get(bit::MODEM_2),
        f.get(bit::MODEM_3),
        f.get(bit::MODEM_4),
    ])
}

/// A page at another vertical resolution: lines repeated going finer, OR-merged going coarser.
fn convert_resolution(p: &Page, to: Resolution) -> Page {
    let stride = t4::stride(p.width);
    let lpi = |r: Resolution| match r {
        Resolution::Standard => 1u32,
        Resolution::Fine => 2,
        Resolution::Superfine => 4,
    };
    let (from, into) = (lpi(p.resolution), lpi(to));
    let mut data = Vec::new();
    let height = if into > from {
        let k = (into / from) as usize;
        for row in p.data.chunks(stride).take(p.height as usize) {
            for _ in 0..k {
                data.extend_from_slice(row);
            }
        }
        p.height * (into / from)
    } else {
        let k = (from / into) as usize;
        let rows: Vec<&[u8]> = p.data.chunks(stride).take(p.height as usize).collect();
        for group in rows.chunks(k) {
            let mut merged = vec![0u8; stride];
            for r in group {
                for (m, b) in merged.iter_mut().zip(r.iter()) {
                    *m |= b;
                }
            }
            data.extend_from_slice(&merged);
        }
        p.height.div_ceil(from / into)
    };
    Page {
        width: p.width,
        height,
        resolution: to,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, Modem, Resolution};

    fn page() -> t4::Decoded {
        t4::Decoded {
            width: 1728,
            data: vec![0; 216],
            stats: t4::DecodeStats {
                height: 1,
                bad_lines: 0,
                max_consecutive_bad: 0,
                first_bad: None,
                end: t4::PageEnd::Terminator,
            },
        }
    }

    /// The deadline reported is the earliest of the timers and the paced IFPs; with nothing to send and
    /// no timer running the session says so (`Timeout(None)`) instead of asking to be woken every second.
    /// In a call some timer always runs, so the test stops them by hand.
    #[test]
    fn a_session_with_nothing_due_reports_no_deadline() {
        let mut s = Session::new(Config::new(Role::Receive, false), Duration::ZERO);
        // CED, then CSI + DIS; the clock jumps to each deadline.
        let mut now = Duration::ZERO;
        for _ in 0..1000 {
            match s.poll_output(now) {
                Output::Timeout(Some(t)) if s.tx.idle() => {
                    now = t;
                    break;
                }
                Output::Timeout(Some(t)) => now = t,
                o => assert!(matches!(o, Output::Transmit(_)), "{o:?}"),
            }
        }
        assert_eq!(s.state, State::WaitCommand);
        // Waiting for DCS: T2 and T1 run, and the earliest is the deadline.
        let t2 = s.timers.get(Timer::T2).expect("T2 runs");
        assert_eq!(s.timers.get(Timer::T1), Some(s.cfg.timers.t1));
        assert_eq!(now, t2);
        let now = t2 - Duration::from_millis(1);
        assert_eq!(s.poll_output(now), Output::Timeout(Some(t2)));
        s.timers.stop(Timer::T2);
        assert_eq!(s.poll_output(now), Output::Timeout(Some(s.cfg.timers.t1)));
        s.timers.stop(Timer::T1);
        assert_eq!(s.poll_output(now), Output::Timeout(None));
        // And it stays so, however late it is asked.
        assert_eq!(
            s.poll_output(now + Duration::from_secs(3600)),
            Output::Timeout(None)
        );
    }

    /// Pages kept but not confirmed (a block that never decoded, pages after EOR) count against
    /// `max_pages` like confirmed ones: a sender cannot make a receiver keep pages without end.
    #[test]
    fn every_kept_page_counts_against_max_pages() {
        let mut cfg = Config::new(Role::Receive, false);
        cfg.max_pages = 2;
        let mut s = Session::new(cfg, Duration::ZERO);
        let d = Dcs {
            modem: Modem::V17_14400,
            resolution: Resolution::Fine,
            compression: Compression::Mmr,
            ecm: true,
            ecm_frame: 256,
            width: 1728,
            min_scan_ms: 0,
            unlimited_length: false,
            b4_length: false,
            sub: false,
            sid: false,
        };
        let now = Duration::ZERO;
        assert!(s.accept_page(now, page(), d, 0, false));
        assert!(s.accept_page(now, page(), d, 0, true));
        assert!(!s.accept_page(now, page(), d, 0, false), "a third page");
        assert!(
            matches!(
                s.finishing
                    .as_ref()
                    .or(s.finished.as_ref().map(|o| &o.result)),
                Some(Err(Failure::LimitExceeded { .. }))
            ),
            "{:?} {:?}",
            s.finishing,
            s.finished
        );
    }
}
