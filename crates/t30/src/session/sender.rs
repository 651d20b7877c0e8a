//! The sender's side of the procedure (T.30 §5.2, flow charts of Annex A for the calling terminal): CNG,
//! DIS answered by DCS + TCF, CFR / FTT with rate fall-back, pages (non-ECM, or ECM blocks with PPS and
//! PPR, CTC after four PPRs), the post-message command of each page and its response, RR while the
//! receiver is not ready, DCN.

use std::time::Duration;

use crate::dis_dcs::{
    Capabilities, Compression, Dcs, Fif, Modem, Resolution, min_scan_for, page_lines,
};
use crate::fcf::{self, Fcf, Frame};
use crate::t38_terminal::Signal;
use crate::timer::Timer;
use crate::{Event, Failure, Page};

use super::{Shared, Turn};

/// TCF lasts 1.5 s (T.30 §5.3.6.1.3); the receiver wants at least 1 s of unbroken zeros.
const TCF_SECONDS_X2: u32 = 3;
/// ECM: partial page requests before CTC (T.30 §A.4.3).
const PPR_BEFORE_CTC: u32 = 4;
/// ECM: CTC rounds before giving up on a block.
const MAX_CTC: u32 = 2;
/// Non-ECM pages sent again after RTN.
const MAX_PAGE_RETRIES: u32 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Sending something; see [`Turn::after`].
    #[default]
    Busy,
    /// CNG sent, waiting for DIS (T1).
    WaitDis,
    /// Waiting for CFR / FTT.
    WaitCfr,
    /// Waiting for the response to a post-message command (or PPS, RR).
    WaitPostResponse,
    /// Waiting for CTR.
    WaitCtr,
}

/// What to do when the burst being sent has left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum After {
    #[default]
    Nothing,
    /// DCS sent: the TCF follows.
    SendTcf,
    /// A command sent: wait in this state, with T4, for the response.
    Await(State),
    /// Image (non-ECM page or ECM block) sent: the post-message command follows.
    PostMessage,
}

/// The current page in ECM frames.
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

/// A sender's state.
#[derive(Debug)]
pub(super) struct Sender {
    turn: Turn<State, After>,
    /// Repeats of the current command.
    retries: u32,
    pages: Vec<Page>,
    page: usize,
    page_retries: u32,
    /// The modems both sides have, fastest first, and the one in use.
    modems: Vec<Modem>,
    fallback: usize,
    dcs: Option<Dcs>,
    /// Train again (DCS + TCF) before the next page.
    retrain: bool,
    /// The post-message command of the current page: MPS, or EOP for the last.
    post_fcf: Fcf,
    ecm_tx: EcmTx,
}

impl Sender {
    pub(super) fn new(pages: Vec<Page>) -> Self {
        Self {
            turn: Turn::default(),
            retries: 0,
            pages,
            page: 0,
            page_retries: 0,
            modems: Vec::new(),
            fallback: 0,
            dcs: None,
            retrain: false,
            post_fcf: Fcf::EOP,
            ecm_tx: EcmTx::default(),
        }
    }

    /// Checks the pages and says CNG.
    pub(super) fn begin(&mut self, sh: &mut Shared, now: Duration) {
        if self.pages.is_empty() {
            sh.fail_now(Failure::BadPage {
                reason: "no pages to send".into(),
            });
            return;
        }
        if let Some(p) = self
            .pages
            .iter()
            .find(|p| ![1728, 2048, 2432].contains(&p.width))
        {
            let reason = format!(
                "page width {} is not a fax width (1728, 2048 or 2432)",
                p.width
            );
            sh.fail_now(Failure::BadPage { reason });
            return;
        }
        sh.tx.send(now, Signal::Cng);
        self.turn.state = State::WaitDis;
    }

    /// The burst being sent has left.
    pub(super) fn on_sent(&mut self, sh: &mut Shared, now: Duration) {
        match self.turn.take_after() {
            After::Nothing => {}
            After::SendTcf => self.send_tcf(sh, now),
            After::Await(state) => {
                self.turn.state = state;
                sh.set_timer(now, Timer::T4);
            }
            After::PostMessage => self.send_post_message(sh, now),
        }
    }

    pub(super) fn on_timer(&mut self, sh: &mut Shared, now: Duration, t: Timer) {
        match t {
            Timer::T1 => {
                if self.turn.state == State::WaitDis {
                    sh.fail_now(Failure::NoFaxTone);
                }
            }
            Timer::T4 => {
                if matches!(
                    self.turn.state,
                    State::WaitCfr | State::WaitPostResponse | State::WaitCtr
                ) {
                    self.repeat(sh, now);
                }
            }
            Timer::T5 => sh.end(now, Err(Failure::RetriesExhausted { command: "RR" })),
            // A sender waits for no command.
            Timer::T2 => {}
        }
    }

    /// How the call ends when the receiver sends DCN.
    pub(super) fn on_dcn(&self) -> Result<(), Failure> {
        let during = match self.turn.state {
            State::WaitDis | State::WaitCfr => "phase B (negotiation)",
            State::WaitPostResponse | State::WaitCtr => "phase D (post-message)",
            State::Busy => "the call",
        };
        Err(Failure::RemoteHungUp { during })
    }

    /// Sends the last command again, or gives up after `max_retries`.
    fn repeat(&mut self, sh: &mut Shared, now: Duration) {
        self.retries += 1;
        if self.retries > sh.cfg.max_retries {
            let command = sh.last_sent_name;
            sh.end(now, Err(Failure::RetriesExhausted { command }));
            return;
        }
        sh.stats.repeats += 1;
        // DCS is followed by its TCF again.
        self.turn.send_again(sh, now);
    }

    /// The final frame of a burst from the receiver; `None` is an FCF not in Table 5.
    pub(super) fn on_frame(
        &mut self,
        sh: &mut Shared,
        now: Duration,
        f: Option<Fcf>,
        frame: &Frame,
    ) {
        let state = self.turn.state;
        if state == State::WaitPostResponse && !matches!(f, Some(Fcf::CRP | Fcf::RNR)) {
            // Any answer but RNR (or a request to repeat) says the receiver is ready: T5 stops.
            sh.timers.stop(Timer::T5);
        }
        let Some(f) = f else { return };
        match f {
            Fcf::DIS => match state {
                State::WaitDis => self.on_dis(sh, now, frame),
                State::WaitCfr => {
                    // Our DCS was not heard: the receiver says DIS again.
                    self.retries += 1;
                    if self.retries > sh.cfg.max_retries {
                        sh.end(now, Err(Failure::RetriesExhausted { command: "DCS" }));
                        return;
                    }
                    self.on_dis(sh, now, frame);
                }
                State::Busy | State::WaitPostResponse | State::WaitCtr => {}
            },
            Fcf::CFR if state == State::WaitCfr => {
                self.retries = 0;
                if let Some(d) = self.dcs {
                    sh.events.push_back(Event::Trained(d));
                }
                self.retrain = false;
                self.start_page(sh, now);
            }
            Fcf::FTT if state == State::WaitCfr => {
                sh.stats.ftts += 1;
                self.retries = 0;
                self.fallback += 1;
                if self.fallback >= self.modems.len() {
                    sh.end(now, Err(Failure::TrainingFailed));
                } else {
                    self.send_dcs(sh, now);
                }
            }
            Fcf::CTR if state == State::WaitCtr => {
                self.retries = 0;
                self.ecm_tx.pprs = 0;
                self.send_ecm_block(sh, now, true);
            }
            Fcf::CRP
                if matches!(
                    state,
                    State::WaitCfr | State::WaitCtr | State::WaitPostResponse
                ) =>
            {
                self.repeat(sh, now);
            }
            Fcf::RNR if state == State::WaitPostResponse => self.not_ready(sh, now),
            Fcf::MCF | Fcf::PIP | Fcf::PPR | Fcf::RTP | Fcf::RTN | Fcf::PIN
                if state == State::WaitPostResponse =>
            {
                self.post_response(sh, now, f, frame);
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

    /// DIS: what the receiver takes decides the DCS.
    fn on_dis(&mut self, sh: &mut Shared, now: Duration, frame: &Frame) {
        let far = Capabilities::from_dis(&Fif(frame.fif().to_vec()));
        if !far.receive {
            sh.end(
                now,
                Err(Failure::Incompatible {
                    reason: "the far end cannot receive (DIS bit 10 clear)".into(),
                }),
            );
            return;
        }
        let modems = sh.local.common_modems(&far, sh.cfg.max_rate);
        if modems.is_empty() {
            let reason = format!("no modem at or below {} bit/s", sh.cfg.max_rate);
            sh.end(now, Err(Failure::Incompatible { reason }));
            return;
        }
        let width = self.pages.first().map_or(1728, |p| p.width);
        if width > far.max_width {
            let reason = format!(
                "page width {width} pels but the far end takes at most {}",
                far.max_width
            );
            sh.end(now, Err(Failure::Incompatible { reason }));
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
        let cfg = &sh.cfg;
        let ecm = cfg.ecm && far.ecm;
        let compression = if ecm && cfg.mmr && far.mmr {
            Compression::Mmr
        } else if cfg.mr && far.mr {
            Compression::Mr
        } else {
            Compression::Mh
        };
        let max_h = self.pages.iter().map(|p| p.height).max().unwrap_or(0);
        let a4 = page_lines(res, false);
        self.modems = modems;
        self.fallback = 0;
        self.dcs = Some(Dcs {
            modem: self.modems[0],
            resolution: res,
            compression,
            ecm,
            ecm_frame: if cfg.ecm_frame == 64 { 64 } else { 256 },
            width,
            min_scan_ms: if ecm { 0 } else { min_scan_for(&far, res) },
            unlimited_length: far.unlimited_length && max_h > a4,
            b4_length: far.b4_length && !far.unlimited_length && max_h > a4,
            sub: !cfg.sub_address.is_empty() && far.subaddressing,
            sid: !cfg.password.is_empty() && far.password,
        });
        sh.timers.stop(Timer::T1);
        self.send_dcs(sh, now);
    }

    /// TSI (SUB, SID) and DCS at the modem in use; the TCF follows.
    fn send_dcs(&mut self, sh: &mut Shared, now: Duration) {
        let Some(mut d) = self.dcs else { return };
        d.modem = self.modems[self.fallback.min(self.modems.len() - 1)];
        self.dcs = Some(d);
        sh.stats.dcs = Some(d);
        let cfg = &sh.cfg;
        let mut frames = vec![sh.command(Fcf::TSI, &fcf::encode_ident(&cfg.ident), false)];
        if d.sub {
            frames.push(sh.command(Fcf::SUB, &fcf::encode_ident(&cfg.sub_address), false));
        }
        if d.sid {
            frames.push(sh.command(Fcf::SID, &fcf::encode_ident(&cfg.password), false));
        }
        frames.push(sh.command(Fcf::DCS, &d.to_fif().0, true));
        self.turn.send(sh, now, frames, "DCS", After::SendTcf);
    }

    fn send_tcf(&mut self, sh: &mut Shared, now: Duration) {
        let Some(d) = self.dcs else { return };
        let octets = (d.modem.bit_rate() * TCF_SECONDS_X2 / 16) as usize;
        sh.tx.send(
            now,
            Signal::NonEcm {
                modem: d.modem,
                data: vec![0; octets],
                long_training: true,
            },
        );
        self.turn.sending(After::Await(State::WaitCfr));
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

    /// The current page: trained again first if the receiver asked so.
    fn start_page(&mut self, sh: &mut Shared, now: Duration) {
        if self.retrain {
            self.retrain = false;
            self.send_dcs(sh, now);
            return;
        }
        let Some(d) = self.dcs else { return };
        let data = match self.encode_page(self.page) {
            Ok(v) => v,
            Err(f) => {
                sh.end(now, Err(f));
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
            self.send_ecm_block(sh, now, false);
        } else {
            sh.tx.send(
                now,
                Signal::NonEcm {
                    modem: d.modem,
                    data,
                    long_training: false,
                },
            );
            self.turn.sending(After::PostMessage);
        }
    }

    /// Sends the current ECM block, or its frames flagged for retransmission.
    fn send_ecm_block(&mut self, sh: &mut Shared, now: Duration, resend_only: bool) {
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
                    sh.stats.retransmitted_frames += 1;
                }
            }
        }
        for _ in 0..3 {
            frames.push(Frame::new(Fcf::RCP, &[], false));
        }
        sh.tx.send(
            now,
            Signal::Hdlc {
                modem: Some(d.modem),
                frames,
                long_training: false,
            },
        );
        self.turn.sending(After::PostMessage);
    }

    /// The page's post-message command: PPS with ECM, MPS or EOP without.
    fn send_post_message(&mut self, sh: &mut Shared, now: Duration) {
        let Some(d) = self.dcs else { return };
        self.retries = 0;
        let wait = After::Await(State::WaitPostResponse);
        if d.ecm {
            let last = self.ecm_tx.last_block();
            let fcf2 = if last {
                self.post_fcf.with_x(true)
            } else {
                fcf::PPS_NULL
            };
            let n = if sh.cfg.pps_counts_burst {
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
            let pps = sh.command(Fcf::PPS, &fif, true);
            self.turn.send(sh, now, vec![pps], "PPS", wait);
        } else {
            let cmd = sh.command(self.post_fcf, &[], true);
            self.turn
                .send(sh, now, vec![cmd], self.post_fcf.name(), wait);
        }
    }

    fn page_confirmed(&mut self, sh: &mut Shared, now: Duration) {
        sh.events.push_back(Event::PageSent {
            index: self.page as u32,
        });
        sh.stats.pages += 1;
        self.page += 1;
        self.page_retries = 0;
        if self.page >= self.pages.len() {
            sh.end(now, Ok(()));
        } else {
            self.start_page(sh, now);
        }
    }

    /// The receiver rejected the current page.
    fn page_rejected(&self, sh: &mut Shared, now: Duration) {
        let page = self.page as u32 + 1;
        sh.end(now, Err(Failure::PageRejected { page }));
    }

    /// One modem lower for what follows, if there is one.
    fn fall_back(&mut self) {
        if self.fallback + 1 < self.modems.len() {
            self.fallback += 1;
        }
    }

    /// Not ready (RNR): ask again (RR) until T5.
    fn not_ready(&mut self, sh: &mut Shared, now: Duration) {
        if sh.timers.get(Timer::T5).is_none() {
            sh.set_timer(now, Timer::T5);
        }
        let rr = sh.command(Fcf::RR, &[], true);
        self.retries = 0;
        self.turn.send(
            sh,
            now,
            vec![rr],
            "RR",
            After::Await(State::WaitPostResponse),
        );
    }

    /// The receiver's answer to a post-message command (or PPS): MCF, PIP, PPR, RTP, RTN or PIN.
    fn post_response(&mut self, sh: &mut Shared, now: Duration, f: Fcf, frame: &Frame) {
        let ecm = self.dcs.is_some_and(|d| d.ecm);
        match f {
            Fcf::MCF | Fcf::PIP if ecm => {
                self.retries = 0;
                if self.ecm_tx.last_block() {
                    self.page_confirmed(sh, now);
                } else {
                    self.ecm_tx.block_start += self.ecm_tx.block_len();
                    self.ecm_tx.block = self.ecm_tx.block.wrapping_add(1);
                    self.ecm_tx.pprs = 0;
                    self.ecm_tx.ctcs = 0;
                    self.send_ecm_block(sh, now, false);
                }
            }
            Fcf::PPR if ecm => self.partial_page_request(sh, now, frame),
            Fcf::PIN | Fcf::RTN if ecm => self.page_rejected(sh, now),
            Fcf::MCF | Fcf::PIP if !ecm => {
                self.retries = 0;
                self.page_confirmed(sh, now);
            }
            Fcf::RTP if !ecm => {
                self.retries = 0;
                self.retrain = true;
                self.page_confirmed(sh, now);
            }
            Fcf::RTN | Fcf::PIN if !ecm => {
                self.retries = 0;
                self.page_retries += 1;
                if self.page_retries > MAX_PAGE_RETRIES {
                    self.page_rejected(sh, now);
                    return;
                }
                // Retrain at a lower rate if there is one, then send the page again.
                self.fall_back();
                self.retrain = true;
                self.start_page(sh, now);
            }
            // RTP with ECM, PPR without.
            _ => {}
        }
    }

    /// ECM: PPR names the frames of the block to send again; after four, CTC (T.30 §A.4.3).
    fn partial_page_request(&mut self, sh: &mut Shared, now: Duration, frame: &Frame) {
        self.retries = 0;
        sh.stats.pprs += 1;
        let map = frame.fif();
        let n = self.ecm_tx.block_len();
        self.ecm_tx.resend = (0..n)
            .map(|i| map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
            .collect();
        if !self.ecm_tx.resend.iter().any(|r| *r) {
            // A PPR that asks for nothing: treat as confirmation of the block.
            self.post_response(sh, now, Fcf::MCF, frame);
            return;
        }
        self.ecm_tx.pprs += 1;
        if self.ecm_tx.pprs < PPR_BEFORE_CTC {
            self.send_ecm_block(sh, now, true);
            return;
        }
        self.ecm_tx.ctcs += 1;
        if self.ecm_tx.ctcs > MAX_CTC {
            sh.end(now, Err(Failure::RetriesExhausted { command: "PPS" }));
            return;
        }
        // Continue to correct, one rate lower if there is one.
        self.fall_back();
        let modem = self.modems[self.fallback];
        if let Some(d) = &mut self.dcs {
            d.modem = modem;
            sh.stats.dcs = Some(*d);
        }
        let ctc = sh.command(Fcf::CTC, &modem.ctc_fif().0, true);
        self.turn
            .send(sh, now, vec![ctc], "CTC", After::Await(State::WaitCtr));
    }
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
