//! The receiver's side of the procedure (T.30 §5.2, flow charts of Annex A for the called terminal):
//! CED, CSI + DIS until a DCS it takes, the TCF check, CFR / FTT, pages (non-ECM with the copy-quality
//! check answered by MCF, RTP or RTN; ECM blocks answered by MCF or PPR, CTC by CTR, EOR by ERR), CRP
//! for a damaged command, and the DCN that ends the call.

use std::time::Duration;

use tracing::debug;

use crate::dis_dcs::{Compression, Dcs, Fif, Modem, Resolution};
use crate::ecm::{self, BlockRx};
use crate::fcf::{self, Fcf, Frame};
use crate::t38_terminal::Signal;
use crate::timer::Timer;
use crate::{Event, Failure, Page, ReceivedPage};

use super::{Shared, Turn};

/// Largest non-ECM page data accepted (a page of noise at 2432 pels is far smaller).
const MAX_PAGE_OCTETS: usize = 32 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum State {
    /// Sending something; see [`Turn::after`].
    #[default]
    Busy,
    /// Waiting for a command (DCS, post-message, DCN).
    WaitCommand,
    /// DCS received, the TCF comes.
    WaitTcf,
    /// Waiting for or receiving image data.
    Image,
    /// All pages in, waiting for DCN.
    WaitDcn,
}

/// What to do when the burst being sent has left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum After {
    #[default]
    Nothing,
    /// CED sent: DIS follows.
    SendDis,
    /// A response sent: wait in this state, with T2, for the next command, the image data (after CFR,
    /// MCF, CTR) or DCN (after the MCF to EOP).
    Await(State),
}

/// A receiver's state.
#[derive(Debug)]
pub(super) struct Receiver {
    pub(super) turn: Turn<State, After>,
    dcs: Option<Dcs>,
    /// The TCF: the zeros of the run going on, the longest run, and the bits seen.
    tcf_zeros: u32,
    tcf_best: u32,
    tcf_bits: u64,
    page_data: Vec<u8>,
    /// Non-ECM: image data came since the last post-message command.
    new_data: bool,
    /// Non-ECM: how the page's IFPs came.
    page_ifps: IfpCount,
    ecm_rx: BlockRx,
    eop_seen: bool,
    /// Pages handed up, confirmed or not: every one counts against `max_pages`.
    pages_kept: u32,
}

impl Receiver {
    pub(super) fn new() -> Self {
        Self {
            turn: Turn::default(),
            dcs: None,
            tcf_zeros: 0,
            tcf_best: 0,
            tcf_bits: 0,
            page_data: Vec::new(),
            new_data: false,
            page_ifps: IfpCount::default(),
            ecm_rx: BlockRx::default(),
            eop_seen: false,
            pages_kept: 0,
        }
    }

    /// Says CED; DIS follows.
    pub(super) fn begin(&mut self, sh: &mut Shared, now: Duration) {
        sh.tx.send(now, Signal::Ced);
        self.turn.sending(After::SendDis);
    }

    fn respond(
        &mut self,
        sh: &mut Shared,
        now: Duration,
        fcf: Fcf,
        fif: &[u8],
        name: &'static str,
        after: After,
    ) {
        self.turn
            .send(sh, now, vec![Frame::new(fcf, fif, true)], name, after);
    }

    /// The last response again (the sender did not hear it).
    fn repeat_response(&mut self, sh: &mut Shared, now: Duration) {
        if sh.last_sent.is_empty() {
            return;
        }
        sh.stats.repeats += 1;
        self.turn.send_again(sh, now);
    }

    /// The burst being sent has left.
    pub(super) fn on_sent(&mut self, sh: &mut Shared, now: Duration) {
        match self.turn.take_after() {
            After::Nothing => {}
            After::SendDis => self.send_dis(sh, now),
            After::Await(state) => {
                self.turn.state = state;
                sh.set_timer(now, Timer::T2);
            }
        }
    }

    pub(super) fn on_timer(&mut self, sh: &mut Shared, now: Duration, t: Timer) {
        match (t, self.turn.state) {
            // An answering receiver that never got a DCS gives up, whatever it is doing (even in the
            // middle of saying DIS again). T1 stops once a DCS is taken.
            (Timer::T1, _) => {
                if self.dcs.is_none() {
                    sh.end(now, Err(Failure::NoFaxTone));
                }
            }
            (Timer::T2, State::WaitCommand) if self.dcs.is_none() => {
                // No DCS yet: say DIS again until T1.
                self.send_dis(sh, now);
            }
            (Timer::T2, State::WaitTcf) => {
                // No TCF: the sender will repeat DCS.
                self.turn.state = State::WaitCommand;
                sh.set_timer(now, Timer::T2);
            }
            (Timer::T2, State::WaitDcn) => {
                // The sender left without DCN; every page is in.
                sh.finishing = Some(Ok(()));
            }
            (Timer::T2, State::WaitCommand | State::Image) => {
                let during = if self.turn.state == State::Image {
                    "image data"
                } else {
                    "a command"
                };
                sh.end(now, Err(Failure::ReceiveTimeout { during }));
            }
            // A receiver sends no command (T4) and is never waiting for a ready receiver (T5).
            (Timer::T2, State::Busy) | (Timer::T4 | Timer::T5, _) => {}
        }
    }

    /// How the call ends when the sender sends DCN.
    pub(super) fn on_dcn(&self) -> Result<(), Failure> {
        if self.eop_seen || self.turn.state == State::WaitDcn {
            return Ok(());
        }
        let during = match self.turn.state {
            State::WaitTcf => "phase B (negotiation)",
            State::Image => "phase C (image)",
            State::Busy | State::WaitCommand | State::WaitDcn => "the call",
        };
        Err(Failure::RemoteHungUp { during })
    }

    /// A control frame arrived damaged: a command we wait for is asked again (CRP) once the burst is
    /// over.
    pub(super) fn on_damaged_frame(&mut self, sh: &mut Shared, now: Duration, frame: &Frame) {
        if !frame.is_final()
            || !matches!(
                self.turn.state,
                State::WaitCommand | State::Image | State::WaitDcn
            )
        {
            return;
        }
        sh.stats.repeats += 1;
        let after = if self.turn.state == State::WaitDcn {
            After::Await(State::WaitDcn)
        } else {
            After::Await(State::WaitCommand)
        };
        sh.send_hdlc(now, vec![Frame::new(Fcf::CRP, &[], true)]);
        self.turn.sending(after);
    }

    /// The final frame of a burst from the sender; `sid` is the password that came in the burst.
    pub(super) fn on_frame(
        &mut self,
        sh: &mut Shared,
        now: Duration,
        f: Fcf,
        frame: &Frame,
        sid: Option<&str>,
    ) {
        if f == Fcf::DCS {
            // A receive password (T.30 §5.3.6.2.x, SID): no fax without it.
            if !sh.cfg.password.is_empty() && sid != Some(sh.cfg.password.as_str()) {
                sh.end(now, Err(Failure::PasswordRejected));
                return;
            }
            self.on_dcs(sh, now, frame);
            return;
        }
        let Some(d) = self.dcs else {
            return;
        };
        match f {
            Fcf::CRP | Fcf::RR => self.repeat_response(sh, now),
            Fcf::MPS | Fcf::EOP | Fcf::EOM | Fcf::PRI_MPS | Fcf::PRI_EOP | Fcf::PRI_EOM
                if !d.ecm =>
            {
                self.non_ecm_post_message(sh, now, f);
            }
            Fcf::PPS if d.ecm => self.pps(sh, now, frame),
            Fcf::CTC if d.ecm => {
                if let Some(m) = Modem::from_dcs_fif(&Fif(frame.fif().to_vec()))
                    && let Some(d) = &mut self.dcs
                {
                    d.modem = m;
                }
                self.respond(sh, now, Fcf::CTR, &[], "CTR", After::Await(State::Image));
            }
            Fcf::EOR if d.ecm => {
                // The sender gives up on the missing frames: keep what came.
                let fcf2 = frame.fif().first().copied().unwrap_or(0);
                self.ecm_rx.take_partial(&mut self.page_data);
                if fcf2 != fcf::PPS_NULL {
                    self.page_after_eor(sh, now, fcf2);
                    return;
                }
                self.respond(sh, now, Fcf::ERR, &[], "ERR", After::Await(State::Image));
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

    /// CSI + DIS, unless T1 has run out.
    fn send_dis(&mut self, sh: &mut Shared, now: Duration) {
        if sh.timers.get(Timer::T1).is_some_and(|t1| now >= t1) {
            sh.end(now, Err(Failure::NoFaxTone));
            return;
        }
        let csi = Frame::new(Fcf::CSI, &fcf::encode_ident(&sh.cfg.ident), false);
        let dis = Frame::new(Fcf::DIS, &sh.local.to_dis().0, true);
        let wait = After::Await(State::WaitCommand);
        self.turn.send(sh, now, vec![csi, dis], "DIS", wait);
    }

    /// DCS: the parameters for the call, if we can honour them; otherwise DIS again.
    fn on_dcs(&mut self, sh: &mut Shared, now: Duration, frame: &Frame) {
        match Dcs::from_fif(&Fif(frame.fif().to_vec())) {
            Some(d)
                if (d.compression != Compression::Mmr || d.ecm)
                    && (!d.ecm || sh.cfg.ecm)
                    && match d.resolution {
                        Resolution::Standard => true,
                        Resolution::Fine => sh.local.fine,
                        Resolution::Superfine => sh.local.superfine,
                    } =>
            {
                self.dcs = Some(d);
                sh.stats.dcs = Some(d);
                sh.timers.stop(Timer::T1);
                self.turn.state = State::WaitTcf;
                self.restart_tcf();
                sh.set_timer(now, Timer::T2);
            }
            // DCS we cannot honour: say what we can again.
            _ => self.send_dis(sh, now),
        }
    }

    /// An image modem starts: in the TCF, the count of zeros starts again.
    pub(super) fn image_signal_starts(&mut self) {
        if self.turn.state == State::WaitTcf {
            self.restart_tcf();
        }
    }

    fn restart_tcf(&mut self) {
        self.tcf_zeros = 0;
        self.tcf_best = 0;
        self.tcf_bits = 0;
    }

    /// A post-message command (MPS, EOP, ..., or the first FCF of a PPS or EOR FIF): whether it ends the
    /// procedure, and the MCF to answer it with.
    fn post_kind(post: Option<Fcf>) -> (bool, &'static str, After) {
        if matches!(post, Some(Fcf::EOP | Fcf::PRI_EOP)) {
            (true, "MCF-EOP", After::Await(State::WaitDcn))
        } else {
            (false, "MCF", After::Await(State::Image))
        }
    }

    fn non_ecm_post_message(&mut self, sh: &mut Shared, now: Duration, f: Fcf) {
        if !self.new_data {
            // The sender did not hear our response: say it again.
            self.repeat_response(sh, now);
            return;
        }
        self.new_data = false;
        let Some(d) = self.dcs else { return };
        let data = std::mem::take(&mut self.page_data);
        let ifps = std::mem::take(&mut self.page_ifps);
        let decoded = decode(&data, &d, sh.cfg.max_page_lines);
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
        let wait_command = After::Await(State::WaitCommand);
        match (quality, decoded) {
            (Quality::Bad, _) | (_, None) => {
                // Rejected: the sender retrains and sends the page again (or gives up).
                self.respond(sh, now, Fcf::RTN, &[], "RTN", wait_command);
            }
            (q, Some(p)) => {
                if !self.accept_page(sh, now, p, d, transit, true) {
                    return;
                }
                if eop {
                    self.eop_seen = true;
                }
                match q {
                    Quality::Good => self.respond(sh, now, Fcf::MCF, &[], mcf_name, mcf_after),
                    _ => {
                        let after = if eop {
                            After::Await(State::WaitDcn)
                        } else {
                            wait_command
                        };
                        self.respond(sh, now, Fcf::RTP, &[], "RTP", after);
                    }
                }
            }
        }
    }

    /// Hands a page up, with `transit` lines lost on the way; `confirmed` when we answer it with MCF /
    /// RTP. False when a limit stops the call.
    pub(super) fn accept_page(
        &mut self,
        sh: &mut Shared,
        now: Duration,
        p: t4::Decoded,
        d: Dcs,
        transit: u32,
        confirmed: bool,
    ) -> bool {
        if self.pages_kept >= sh.cfg.max_pages {
            let what = format!("more than {} pages", sh.cfg.max_pages);
            sh.end(now, Err(Failure::LimitExceeded { what }));
            return false;
        }
        let s = p.stats;
        self.pages_kept += 1;
        if confirmed {
            sh.stats.pages += 1;
        }
        sh.stats.bad_lines = sh.stats.bad_lines.saturating_add(s.bad_lines);
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
        sh.events.push_back(Event::PageReceived(Box::new(page)));
        true
    }

    /// Non-ECM data: the TCF, or a page.
    pub(super) fn on_data(&mut self, sh: &mut Shared, now: Duration, data: &[u8]) {
        match self.turn.state {
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
                    let what = format!("page data over {MAX_PAGE_OCTETS} octets");
                    sh.end(now, Err(Failure::LimitExceeded { what }));
                    return;
                }
                self.turn.state = State::Image;
                self.page_data.extend_from_slice(data);
                self.page_ifps.received += 1;
                self.new_data = true;
                sh.set_timer(now, Timer::T2);
            }
            State::Image | State::WaitCommand | State::Busy | State::WaitDcn => {}
        }
    }

    /// IFPs of non-ECM image data were lost in transit.
    pub(super) fn on_data_lost(&mut self, ifps: u64) {
        if self.dcs.is_some_and(|d| !d.ecm) {
            self.page_ifps.lost += ifps;
            self.page_ifps.longest_gap = self.page_ifps.longest_gap.max(ifps);
        }
    }

    /// A signal ended: after the TCF, the verdict on it.
    pub(super) fn on_signal_end(&mut self, sh: &mut Shared, now: Duration) {
        if self.turn.state == State::WaitTcf && self.tcf_bits > 0 {
            self.tcf_decide(sh, now);
        }
    }

    /// CFR when the TCF held a second of zeros at the DCS's rate, FTT otherwise.
    fn tcf_decide(&mut self, sh: &mut Shared, now: Duration) {
        let Some(d) = self.dcs else { return };
        let good = self.tcf_best >= d.modem.bit_rate();
        self.tcf_bits = 0;
        if good {
            self.page_data.clear();
            self.page_ifps = IfpCount::default();
            self.ecm_rx.next_block();
            self.respond(sh, now, Fcf::CFR, &[], "CFR", After::Await(State::Image));
        } else {
            let wait = After::Await(State::WaitCommand);
            self.respond(sh, now, Fcf::FTT, &[], "FTT", wait);
        }
    }

    /// An HDLC frame at an image modem: an ECM frame of the block.
    pub(super) fn on_ecm_frame(&mut self, sh: &mut Shared, now: Duration, frame: &Frame, ok: bool) {
        if !ok || !self.dcs.is_some_and(|d| d.ecm) {
            return;
        }
        if frame.fcf() == Some(Fcf::FCD) {
            if let Some((&n, data)) = frame.fif().split_first() {
                self.ecm_rx.store(n, data);
            }
            self.turn.state = State::Image;
            sh.set_timer(now, Timer::T2);
        }
    }

    /// PPS: the block is complete and decodes (MCF), or frames are asked for again (PPR).
    fn pps(&mut self, sh: &mut Shared, now: Duration, frame: &Frame) {
        let fif = frame.fif();
        if fif.len() < 4 {
            let wait = After::Await(State::WaitCommand);
            self.respond(sh, now, Fcf::CRP, &[], "CRP", wait);
            return;
        }
        let (fcf2, page, block, count) = (fif[0], fif[1], fif[2], usize::from(fif[3]) + 1);
        if self.ecm_rx.confirmed == Some((page, block)) && !self.ecm_rx.new_frames {
            // Our MCF was lost: the sender asks again.
            self.repeat_response(sh, now);
            return;
        }
        self.ecm_rx.announce(count);
        let missing = self.ecm_rx.missing();
        if !missing.is_empty() {
            self.request_frames(sh, now, &missing);
            return;
        }
        let Some(d) = self.dcs else { return };
        let last = fcf2 != fcf::PPS_NULL;
        // The page so far with this block: confirmed only if it decodes without a fault.
        let before = self.page_data.len();
        self.ecm_rx.append_to(&mut self.page_data);
        let max_lines = sh.cfg.max_page_lines;
        let decoded = decode(&self.page_data, &d, max_lines);
        let fault = ecm::fault(decoded.as_ref().map(|p| &p.stats), last, max_lines);
        if let Some(why) = fault {
            self.block_fault(sh, now, decoded, d, why, before);
            return;
        }
        self.ecm_rx.next_block();
        self.ecm_rx.confirmed = Some((page, block));
        match decoded {
            Some(p) if last => {
                if !self.accept_page(sh, now, p, d, 0, true) {
                    return;
                }
                self.page_data.clear();
                let (eop, name, after) = Self::post_kind(Fcf::parse(fcf2));
                if eop {
                    self.eop_seen = true;
                }
                self.respond(sh, now, Fcf::MCF, &[], name, after);
            }
            _ => self.respond(sh, now, Fcf::MCF, &[], "MCF", After::Await(State::Image)),
        }
    }

    /// PPR for these frames of the block.
    fn request_frames(&mut self, sh: &mut Shared, now: Duration, frames: &[usize]) {
        sh.stats.pprs += 1;
        sh.stats.retransmitted_frames += frames.len() as u32;
        let mut map = [0u8; 32];
        for &i in frames {
            map[i / 8] |= 1 << (i % 8);
        }
        self.respond(sh, now, Fcf::PPR, &map, "PPR", After::Await(State::Image));
    }

    /// Every frame of the block is in, yet the page does not decode: ask for the whole block again, unless
    /// that was done and the same data came back (it is what the sender sends) or the limit is reached;
    /// then the page is kept unconfirmed and the call ends.
    /// `page_data` holds the page with the block from `before` on.
    fn block_fault(
        &mut self,
        sh: &mut Shared,
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
            self.request_frames(sh, now, &all);
            return;
        }
        let page = sh.stats.pages + 1;
        if let Some(p) = decoded {
            // What came of the page, kept for the record but not confirmed.
            self.accept_page(sh, now, p, d, 0, false);
        }
        self.page_data.clear();
        self.ecm_rx.next_block();
        sh.end(now, Err(Failure::PageIncomplete { page, reason: why }));
    }

    /// The sender gave up on frames (EOR) at the end of a page: what came is kept, never confirmed, and
    /// acknowledged with ERR.
    fn page_after_eor(&mut self, sh: &mut Shared, now: Duration, fcf2: u8) {
        let Some(d) = self.dcs else { return };
        let data = std::mem::take(&mut self.page_data);
        let (eop, _, _) = Self::post_kind(Fcf::parse(fcf2));
        let kept = match decode(&data, &d, sh.cfg.max_page_lines) {
            Some(p) if p.stats.height > 0 => self.accept_page(sh, now, p, d, 0, false),
            _ => true,
        };
        if !kept {
            return;
        }
        if eop {
            self.eop_seen = true;
        }
        let after = if eop {
            After::Await(State::WaitDcn)
        } else {
            After::Await(State::Image)
        };
        self.respond(sh, now, Fcf::ERR, &[], "ERR", after);
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
