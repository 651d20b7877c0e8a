//! ITU-T T.30 fax sessions for faxhub, sans I/O: a sender and a receiver, phases A to E, non-ECM and ECM
//! (T.4 Annex A), over a T.38 terminal front end.
//!
//! * [`fcf`]: frames and their facsimile control fields (T.30 §5.3, Table 5).
//! * [`dis_dcs`]: DIS / DTC capabilities and the DCS a sender chooses (Table 2).
//! * [`t38_terminal`]: signals to timed IFPs and received IFPs to T.30 events (T.38 §5 to §7).
//! * [`Session`]: the T.30 procedure itself (T.30 §5.2 to §5.4, flow charts of Annex A).
//!
//! # Calling contract
//!
//! No sockets, clocks or threads: time is a [`Duration`] since any fixed origin, supplied by the caller.
//! Build a [`Session`] with a [`Config`] and the current time. Then:
//!
//! * every IFP that arrives goes to [`Session::handle_ifp`] (with its UDPTL sequence number, so that
//!   lost packets mark HDLC frames bad);
//! * after any input, and whenever the deadline passes, drain [`Session::poll_output`] until it returns
//!   [`Output::Timeout`] (the next time to call it again, even with nothing received; none when nothing
//!   is due, so there is no periodic wake-up) or [`Output::Finished`]. [`Output::Transmit`] IFPs are sent in order, each at the time it is returned
//!   (the session paces them); [`Output::Event`]s report progress and pages.
//!
//! A failed fax is not a Rust error: it ends with [`Outcome`] carrying a [`Failure`] and the T.30 detail.
//! Nothing reached by received packets panics.

pub mod dis_dcs;
mod ecm;
pub mod fcf;
mod session;
pub mod t38_terminal;
mod timer;

use std::fmt;
use std::time::Duration;

pub use dis_dcs::{Compression, Dcs, Modem, Resolution};
pub use session::Session;
pub use t38_terminal::Pacing;

/// A page to send: a bilevel bitmap in the t4 convention (1 bit per pixel, rows padded to whole bytes,
/// most significant bit leftmost, 1 = black).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Pels per line: 1728, 2048 or 2432 (R8).
    pub width: u32,
    pub height: u32,
    pub resolution: Resolution,
    pub data: Vec<u8>,
}

/// A page received, decoded, with what a receiver's copy-quality check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPage {
    pub page: Page,
    /// How it came: compression, modem, ECM.
    pub dcs: Dcs,
    /// Lines the decoder could not read (each printed as the line above) and the longest run of them.
    pub bad_lines: u32,
    pub max_consecutive_bad: u32,
    /// Lines missing: at the end when the page's data stopped early or broke (a T.6 error loses the rest
    /// of the page), counted up to the length the DCS announced (A4 when unlimited); and, without ECM,
    /// lines that went with IFPs lost in transit (estimated from the lines an IFP carried).
    pub lines_lost: u32,
    /// The page's data ended as a page ends (RTC, EOFB).
    pub complete: bool,
    /// We confirmed it (MCF or RTP): the sender counts it as delivered. An unconfirmed page is what
    /// arrived of a page the call did not complete, kept for the record.
    pub confirmed: bool,
}

/// Which side of the fax this session is.
#[derive(Debug, Clone)]
pub enum Role {
    /// Send these pages.
    Send(Vec<Page>),
    /// Receive.
    Receive,
}

/// How long the T.30 timers run (T.30 §5.4.3): defaults are the standard's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1: time to establish the fax (35 s).
    pub t1: Duration,
    /// T2: waiting for a command or for image data (6 s).
    pub t2: Duration,
    /// T4: waiting for a response (3 s).
    pub t4: Duration,
    /// T5: waiting for a receiver that is not ready (60 s).
    pub t5: Duration,
}

impl Timers {
    /// How long `timer` runs.
    pub(crate) fn get(&self, timer: timer::Timer) -> Duration {
        match timer {
            timer::Timer::T1 => self.t1,
            timer::Timer::T2 => self.t2,
            timer::Timer::T4 => self.t4,
            timer::Timer::T5 => self.t5,
        }
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_secs(35),
            t2: Duration::from_secs(6),
            t4: Duration::from_secs(3),
            t5: Duration::from_secs(60),
        }
    }
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    /// We placed the call (we send CNG and wait for DIS); otherwise we answered (CED, then DIS).
    pub calling: bool,
    /// Our station identity (TSI when sending, CSI when receiving): up to 20 characters of the T.30 set.
    pub ident: String,
    /// Highest image bit rate: 14400, 12000, 9600, 7200, 4800 or 2400.
    pub max_rate: u32,
    /// Offer and use error correction mode.
    pub ecm: bool,
    /// ECM frame size: 256 or 64 octets.
    pub ecm_frame: usize,
    /// Codings we offer or use, besides MH which every terminal has.
    pub mr: bool,
    pub mmr: bool,
    pub pacing: Pacing,
    pub timers: Timers,
    /// Receiving: the longest page accepted, in lines.
    pub max_page_lines: u32,
    /// Receiving: the most pages accepted.
    pub max_pages: u32,
    /// Command repeats before giving up (T.30: 3).
    pub max_retries: u32,
    /// Sending: a subaddress for the receiver's routing (SUB, T.30 §5.3.6.2.11), sent when the far end
    /// takes one.
    pub sub_address: String,
    /// Sending: a password for the receiver (SID, §5.3.6.2.x); receiving: the password a sender must give
    /// (a call without it, or with another, is refused with DCN).
    pub password: String,
    /// Sending with ECM: what the frame count of a PPS counts after a PPR. T.30 leaves room for two
    /// readings: the whole block (our default) or only the frames of the burst just sent (SpanDSP). A
    /// receiver must cope with both; the other is here to test that.
    pub pps_counts_burst: bool,
    /// Receiving: the vertical resolutions announced in DIS besides standard (3.85 lines/mm), which every
    /// terminal takes: fine (7.7) and superfine (15.4).
    pub receive_fine: bool,
    pub receive_superfine: bool,
}

impl Config {
    /// Defaults for a role: 14400 bit/s, ECM with 256-octet frames, MR and MMR, paced.
    pub fn new(role: Role, calling: bool) -> Self {
        Self {
            role,
            calling,
            ident: String::new(),
            max_rate: 14400,
            ecm: true,
            ecm_frame: 256,
            mr: true,
            mmr: true,
            pacing: Pacing::default(),
            timers: Timers::default(),
            max_page_lines: 16_384,
            max_pages: 1000,
            max_retries: 3,
            sub_address: String::new(),
            password: String::new(),
            pps_counts_burst: false,
            receive_fine: true,
            receive_superfine: true,
        }
    }
}

/// Why a fax failed, with the T.30 detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No DIS (or no command) before T1 expired: no fax machine answered.
    NoFaxTone,
    /// Training (TCF) failed at every rate both sides share.
    TrainingFailed,
    /// The far end sent DCN, or went silent, before the fax was complete.
    RemoteHungUp { during: &'static str },
    /// A command went unanswered or was refused `retries` times.
    RetriesExhausted { command: &'static str },
    /// The two terminals have no common way to carry these pages.
    Incompatible { reason: String },
    /// The receiver rejected a page (RTN) too many times.
    PageRejected { page: u32 },
    /// Nothing came from the far end for T2 while receiving.
    ReceiveTimeout { during: &'static str },
    /// A received page broke our limits (lines, pages).
    LimitExceeded { what: String },
    /// The page could not be coded (a bitmap of the wrong size).
    BadPage { reason: String },
    /// The sender gave no password, or the wrong one (SID).
    PasswordRejected,
    /// Receiving with ECM: the page's data did not decode to a whole page even after the block was sent
    /// again, so it was not confirmed.
    PageIncomplete { page: u32, reason: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoFaxTone => write!(f, "no fax answered (T1 expired waiting for DIS)"),
            Failure::TrainingFailed => write!(f, "training failed at every rate (FTT)"),
            Failure::RemoteHungUp { during } => write!(f, "remote hung up during {during}"),
            Failure::RetriesExhausted { command } => {
                write!(f, "{command} repeated without an answer; retries exhausted")
            }
            Failure::Incompatible { reason } => write!(f, "incompatible capabilities: {reason}"),
            Failure::PageRejected { page } => {
                write!(f, "page {page} rejected by the receiver (RTN)")
            }
            Failure::ReceiveTimeout { during } => {
                write!(f, "nothing received during {during} (T2 expired)")
            }
            Failure::LimitExceeded { what } => write!(f, "limit exceeded: {what}"),
            Failure::BadPage { reason } => write!(f, "page could not be coded: {reason}"),
            Failure::PasswordRejected => {
                write!(f, "the sender's password (SID) was missing or wrong")
            }
            Failure::PageIncomplete { page, reason } => {
                write!(
                    f,
                    "page {page} arrived incomplete and was not confirmed: {reason}"
                )
            }
        }
    }
}

/// Per-call statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The far end's identity (CSI or TSI).
    pub remote_ident: String,
    /// The subaddress the sender gave (SUB), for inbound routing.
    pub sub_address: String,
    /// Last negotiated parameters.
    pub dcs: Option<Dcs>,
    /// Pages sent and confirmed, or received and confirmed.
    pub pages: u32,
    /// Bad lines over all received pages.
    pub bad_lines: u32,
    /// ECM frames sent again after PPR, or PPRs sent when receiving.
    pub retransmitted_frames: u32,
    pub pprs: u32,
    /// Training attempts that failed (FTT).
    pub ftts: u32,
    /// Commands repeated after a timeout or CRP.
    pub repeats: u32,
    /// Image octets sent.
    pub image_octets: u64,
    /// IFPs lost (gaps in the sequence numbers seen).
    pub lost_packets: u64,
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: Result<(), Failure>,
    /// What T.30 was doing, and the last frames, in words (for operators).
    pub detail: String,
    pub stats: Stats,
    pub duration: Duration,
}

/// Progress the caller may want to show or store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Parameters agreed (after CFR).
    Trained(Dcs),
    /// A page was confirmed by the receiver (index from 0).
    PageSent { index: u32 },
    /// A page arrived and was kept (see [`ReceivedPage::confirmed`]).
    PageReceived(Box<ReceivedPage>),
}

/// What [`Session::poll_output`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this IFP now.
    Transmit(t38::Ifp),
    /// Something happened.
    Event(Event),
    /// Nothing more to do now: call again at this time, the earliest deadline (a timer or the next paced
    /// IFP), or when an IFP arrives. `None` when nothing is due: only an IFP moves the session on.
    Timeout(Option<Duration>),
    /// The session is over; nothing more will be sent.
    Finished(Outcome),
}
