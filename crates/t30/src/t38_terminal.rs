//! The T.38 terminal front end (T.38 §5, §7 and Annex B): turns T.30's signals (HDLC bursts, TCF, image
//! data, tones) into timed IFP packets and received IFPs back into T.30 events.
//!
//! Transmission is paced as a gateway needs it (each IFP leaves when its modulation would have carried
//! it, with the start-up times of the modems) or, between two terminals, unpaced.

use std::collections::VecDeque;
use std::time::Duration;

use t38::{DataType, Field, FieldType, Ifp, IfpType, Indicator};

use crate::dis_dcs::Modem;
use crate::fcf::{self, Frame};

/// How the front end paces what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Send each IFP when its signal would have been on the line (needed by gateways). When false every
    /// burst leaves at once.
    pub paced: bool,
    /// Largest image-data IFP payload (octets); the datagram limit of the far end, divided by the
    /// redundancy copies it carries, bounds it.
    pub max_chunk: usize,
    /// Duration of one image-data IFP when paced.
    pub chunk_ms: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            paced: true,
            max_chunk: 72,
            chunk_ms: 30,
        }
    }
}

/// What T.30 asks the front end to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The calling tone (T.30 §5.2), as an indicator.
    Cng,
    /// The called terminal's answer tone.
    Ced,
    /// HDLC frames at V.21 300 bit/s (control) or at an image modem (ECM).
    Hdlc {
        modem: Option<Modem>,
        frames: Vec<Frame>,
        long_training: bool,
    },
    /// Non-ECM data at an image modem: the TCF training check or a page.
    NonEcm {
        modem: Modem,
        data: Vec<u8>,
        long_training: bool,
    },
}

/// The data type of an image modem.
fn data_type(m: Modem) -> DataType {
    match m {
        Modem::V27ter2400 => DataType::V27ter2400,
        Modem::V27ter4800 => DataType::V27ter4800,
        Modem::V29_7200 => DataType::V29_7200,
        Modem::V29_9600 => DataType::V29_9600,
        Modem::V17_7200 => DataType::V17_7200,
        Modem::V17_9600 => DataType::V17_9600,
        Modem::V17_12000 => DataType::V17_12000,
        Modem::V17_14400 => DataType::V17_14400,
    }
}

/// The training indicator of an image modem.
fn training(m: Modem, long: bool) -> Indicator {
    match (m, long) {
        (Modem::V27ter2400, _) => Indicator::V27ter2400Training,
        (Modem::V27ter4800, _) => Indicator::V27ter4800Training,
        (Modem::V29_7200, _) => Indicator::V29_7200Training,
        (Modem::V29_9600, _) => Indicator::V29_9600Training,
        (Modem::V17_7200, false) => Indicator::V17_7200ShortTraining,
        (Modem::V17_7200, true) => Indicator::V17_7200LongTraining,
        (Modem::V17_9600, false) => Indicator::V17_9600ShortTraining,
        (Modem::V17_9600, true) => Indicator::V17_9600LongTraining,
        (Modem::V17_12000, false) => Indicator::V17_12000ShortTraining,
        (Modem::V17_12000, true) => Indicator::V17_12000LongTraining,
        (Modem::V17_14400, false) => Indicator::V17_14400ShortTraining,
        (Modem::V17_14400, true) => Indicator::V17_14400LongTraining,
    }
}

/// Time a modem takes to train before data (the signal a gateway must play; V.27 ter, V.29 and V.17
/// training sequences).
fn training_time(m: Modem, long: bool) -> Duration {
    let ms = match (m.family(), m, long) {
        (_, Modem::V27ter2400, _) => 943,
        (_, Modem::V27ter4800, _) => 708,
        (crate::dis_dcs::Family::V29, _, _) => 234,
        (_, _, true) => 1393,
        _ => 142,
    };
    Duration::from_millis(ms)
}

fn bits_time(bits: usize, rate: u32) -> Duration {
    Duration::from_micros((bits as u64 * 1_000_000).div_ceil(u64::from(rate)))
}

/// What the transmitter has due for the T.30 layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send this IFP now.
    Ifp(Ifp),
    /// The signal queued by one [`Transmitter::send`] has left the line (the T.30 layer's "send step
    /// complete").
    SignalDone,
}

/// One scheduled IFP or signal end.
#[derive(Debug)]
struct Step {
    at: Duration,
    due: Due,
}

/// The sending half: a queue of IFPs with the times they are due.
#[derive(Debug)]
pub struct Transmitter {
    pacing: Pacing,
    queue: VecDeque<Step>,
    /// When the line is free again after everything queued.
    free_at: Duration,
    /// Whether the last signal ended with no-signal (silence) already.
    silent: bool,
    /// Image octets sent (statistics).
    pub image_octets: u64,
}

impl Transmitter {
    pub fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            queue: VecDeque::new(),
            free_at: Duration::ZERO,
            silent: true,
            image_octets: 0,
        }
    }

    fn delay(&self, d: Duration) -> Duration {
        if self.pacing.paced { d } else { Duration::ZERO }
    }

    /// Image data octets in one IFP at `rate`: one pacing interval's worth, within the datagram limit.
    fn chunk(&self, rate: u32) -> usize {
        if self.pacing.paced {
            ((rate * self.pacing.chunk_ms / 8000) as usize).clamp(1, self.pacing.max_chunk)
        } else {
            self.pacing.max_chunk.max(1)
        }
    }

    fn push(&mut self, at: Duration, ifp: Ifp) {
        self.queue.push_back(Step {
            at,
            due: Due::Ifp(ifp),
        });
    }

    /// Queues a signal to start no earlier than `now`; returns when it will have finished.
    pub fn send(&mut self, now: Duration, signal: Signal) -> Duration {
        let mut t = self.free_at.max(now);
        // Silence between signals (T.30 §5.3.2.4: 75 ms between a command and the image modem, and
        // the same gap between HDLC bursts).
        if !self.silent {
            self.push(t, Ifp::indicator(Indicator::NoSignal));
        }
        t += self.delay(Duration::from_millis(75));
        match signal {
            Signal::Cng => {
                self.push(t, Ifp::indicator(Indicator::Cng));
                t += self.delay(Duration::from_millis(500));
                self.silent = false;
            }
            Signal::Ced => {
                self.push(t, Ifp::indicator(Indicator::Ced));
                t += self.delay(Duration::from_millis(2600));
                self.push(t, Ifp::indicator(Indicator::NoSignal));
                self.silent = true;
                t += self.delay(Duration::from_millis(75));
            }
            Signal::Hdlc {
                modem,
                frames,
                long_training,
            } => {
                let (dt, rate) = match modem {
                    None => {
                        self.push(t, Ifp::indicator(Indicator::V21Preamble));
                        // One second of flags before the first frame (T.30 §5.3.1).
                        t += self.delay(Duration::from_millis(1000));
                        (DataType::V21, 300)
                    }
                    Some(m) => {
                        self.push(t, Ifp::indicator(training(m, long_training)));
                        t += self
                            .delay(training_time(m, long_training) + Duration::from_millis(200));
                        (data_type(m), m.bit_rate())
                    }
                };
                // Control frames go whole, one an IFP. ECM frames at an image modem go in pieces the size
                // of one pacing interval (T.38 §7.4, as terminals such as SpanDSP send them), so each datagram
                // stays small enough to carry the redundancy the call negotiated.
                let chunk = match modem {
                    None => usize::MAX,
                    Some(_) => self.chunk(rate),
                };
                let n = frames.len();
                for (i, f) in frames.into_iter().enumerate() {
                    let wire = fcf::reverse_octets(&f.0);
                    if modem.is_some() {
                        self.image_octets += wire.len() as u64;
                    }
                    let end = if i + 1 == n {
                        FieldType::HdlcFcsOkSigEnd
                    } else {
                        FieldType::HdlcFcsOk
                    };
                    let pieces: Vec<&[u8]> = wire.chunks(chunk).collect();
                    let last = pieces.len().saturating_sub(1);
                    for (k, piece) in pieces.into_iter().enumerate() {
                        let mut fields = vec![Field::new(FieldType::HdlcData, piece.to_vec())];
                        // The last piece carries the FCS-OK that ends the frame.
                        let mut bits = piece.len() * 8;
                        if k == last {
                            fields.push(Field::bare(end));
                            bits += 32;
                        }
                        self.push(t, Ifp::data(dt, fields));
                        t += self.delay(bits_time(bits, rate));
                    }
                }
                t += self.delay(Duration::from_millis(60));
                self.push(t, Ifp::indicator(Indicator::NoSignal));
                self.silent = true;
            }
            Signal::NonEcm {
                modem,
                data,
                long_training,
            } => {
                self.push(t, Ifp::indicator(training(modem, long_training)));
                t += self.delay(training_time(modem, long_training));
                let dt = data_type(modem);
                let rate = modem.bit_rate();
                let per_chunk = self.chunk(rate);
                self.image_octets += data.len() as u64;
                let chunks: Vec<&[u8]> = data.chunks(per_chunk).collect();
                let n = chunks.len();
                for (i, c) in chunks.into_iter().enumerate() {
                    let ft = if i + 1 == n {
                        FieldType::T4NonEcmSigEnd
                    } else {
                        FieldType::T4NonEcmData
                    };
                    self.push(t, Ifp::data(dt, vec![Field::new(ft, c.to_vec())]));
                    t += self.delay(bits_time(c.len() * 8, rate));
                }
                if n == 0 {
                    self.push(
                        t,
                        Ifp::data(dt, vec![Field::bare(FieldType::T4NonEcmSigEnd)]),
                    );
                }
                t += self.delay(Duration::from_millis(60));
                self.push(t, Ifp::indicator(Indicator::NoSignal));
                self.silent = true;
            }
        }
        self.queue.push_back(Step {
            at: t,
            due: Due::SignalDone,
        });
        self.free_at = t;
        t
    }

    /// What is due at or before `now`: the next IFP, or the end of the signal just sent.
    pub fn poll(&mut self, now: Duration) -> Option<Due> {
        if self.queue.front()?.at > now {
            return None;
        }
        self.queue.pop_front().map(|s| s.due)
    }

    /// When the next step is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.queue.front().map(|s| s.at)
    }

    /// Whether nothing is queued.
    pub fn idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops what is queued (the call is ending).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// What the receiving half makes of IFPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxEvent {
    /// A V.21 preamble or an image modem started: a signal is coming.
    SignalStart { hdlc_v21: bool },
    /// A complete HDLC frame; `ok` is false when its FCS was bad or octets were lost.
    Frame { frame: Frame, ok: bool, v21: bool },
    /// Non-ECM image data.
    Data(Vec<u8>),
    /// IFPs were lost just before the non-ECM image data that follows: that much of the page is missing.
    DataLost { ifps: u64 },
    /// The current signal ended (sig-end or no-signal).
    SignalEnd,
}

/// The receiving half: assembles HDLC frames from IFPs and notices lost packets.
#[derive(Debug, Default)]
pub struct Receiver {
    hdlc: Vec<u8>,
    missing: bool,
    expected_seq: Option<u16>,
    in_signal: bool,
    v21: bool,
    /// Largest HDLC frame accepted (T.4 Annex A frames are 256 + 4 octets).
    pub max_frame: usize,
    pub lost_packets: u64,
}

impl Receiver {
    pub fn new() -> Self {
        Self {
            max_frame: 300,
            ..Self::default()
        }
    }

    /// Handles one IFP; `seq` is its UDPTL sequence number when known (a gap marks data as missing).
    pub fn handle(&mut self, seq: Option<u16>, ifp: &Ifp, out: &mut Vec<RxEvent>) {
        let mut gap = 0;
        if let Some(s) = seq {
            if let Some(e) = self.expected_seq
                && s != e
            {
                gap = u64::from(s.wrapping_sub(e).min(1000));
                self.lost_packets += gap;
                self.missing = true;
            }
            self.expected_seq = Some(s.wrapping_add(1));
        }
        match ifp.msg_type {
            IfpType::Indicator(ind) => self.indicator(ind, out),
            IfpType::Data(dt) => {
                let v21 = dt == DataType::V21;
                let non_ecm = ifp.fields().iter().any(|f| {
                    matches!(
                        f.field_type,
                        FieldType::T4NonEcmData | FieldType::T4NonEcmSigEnd
                    )
                });
                if gap > 0 && non_ecm {
                    out.push(RxEvent::DataLost { ifps: gap });
                }
                for f in ifp.fields() {
                    self.field(v21, f, out);
                }
            }
        }
    }

    fn indicator(&mut self, ind: Indicator, out: &mut Vec<RxEvent>) {
        match ind {
            Indicator::NoSignal => {
                if self.in_signal {
                    self.in_signal = false;
                    out.push(RxEvent::SignalEnd);
                }
            }
            Indicator::Cng | Indicator::Ced => {}
            Indicator::V21Preamble => {
                self.start(true, out);
            }
            _ => self.start(false, out),
        }
        self.hdlc.clear();
        self.missing = false;
    }

    fn start(&mut self, v21: bool, out: &mut Vec<RxEvent>) {
        self.in_signal = true;
        self.v21 = v21;
        out.push(RxEvent::SignalStart { hdlc_v21: v21 });
    }

    fn frame_end(&mut self, ok: bool, v21: bool, out: &mut Vec<RxEvent>) {
        if !self.hdlc.is_empty() {
            let frame = Frame(fcf::reverse_octets(&self.hdlc));
            let ok = ok && !self.missing && frame.is_valid();
            out.push(RxEvent::Frame { frame, ok, v21 });
        }
        self.hdlc.clear();
        self.missing = false;
    }

    fn field(&mut self, v21: bool, f: &Field, out: &mut Vec<RxEvent>) {
        let ft = f.field_type;
        if !self.in_signal
            && matches!(
                ft,
                FieldType::HdlcData | FieldType::T4NonEcmData | FieldType::T4NonEcmSigEnd
            )
        {
            // Some gateways start data without an indicator; the indicator may also have been lost.
            self.start(v21, out);
            if ft == FieldType::HdlcData && f.data.first() != Some(&0xFF) {
                self.missing = true;
            }
        }
        match ft {
            FieldType::HdlcData => {
                if self.hdlc.len() + f.data.len() <= self.max_frame {
                    self.hdlc.extend_from_slice(&f.data);
                } else {
                    self.missing = true;
                }
            }
            FieldType::HdlcFcsOk
            | FieldType::HdlcFcsBad
            | FieldType::HdlcFcsOkSigEnd
            | FieldType::HdlcFcsBadSigEnd => {
                // Data in an FCS field is non-standard but sent by some (Cisco); keep it.
                if !f.data.is_empty() && self.hdlc.len() + f.data.len() <= self.max_frame {
                    self.hdlc.extend_from_slice(&f.data);
                }
                let ok = matches!(ft, FieldType::HdlcFcsOk | FieldType::HdlcFcsOkSigEnd);
                self.frame_end(ok, v21, out);
                if matches!(ft, FieldType::HdlcFcsOkSigEnd | FieldType::HdlcFcsBadSigEnd) {
                    self.in_signal = false;
                    out.push(RxEvent::SignalEnd);
                }
            }
            FieldType::HdlcSigEnd => {
                self.hdlc.clear();
                self.in_signal = false;
                out.push(RxEvent::SignalEnd);
            }
            FieldType::T4NonEcmData if !f.data.is_empty() => {
                out.push(RxEvent::Data(f.data.clone()));
            }
            FieldType::T4NonEcmSigEnd => {
                if !f.data.is_empty() {
                    out.push(RxEvent::Data(f.data.clone()));
                }
                self.in_signal = false;
                out.push(RxEvent::SignalEnd);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdlc_burst_round_trips_through_ifps() {
        let mut tx = Transmitter::new(Pacing::default());
        let frames = vec![
            Frame::new(fcf::Fcf::CSI, &fcf::encode_ident("123"), false),
            Frame::new(fcf::Fcf::DIS, &[0x00, 0x2e, 0x70], true),
        ];
        let end = tx.send(
            Duration::ZERO,
            Signal::Hdlc {
                modem: None,
                frames: frames.clone(),
                long_training: false,
            },
        );
        assert!(
            end > Duration::from_secs(1),
            "paced V.21 takes its preamble time"
        );
        let mut rx = Receiver::new();
        let mut ev = Vec::new();
        let mut seq = 0u16;
        let mut done = false;
        while let Some(s) = tx.poll(end) {
            match s {
                Due::Ifp(ifp) => {
                    let bytes = ifp.encode(t38::T38Version::V0).unwrap_or_default();
                    let back = Ifp::decode(&bytes, t38::T38Version::V0).unwrap_or(ifp);
                    rx.handle(Some(seq), &back, &mut ev);
                    seq += 1;
                }
                Due::SignalDone => done = true,
            }
        }
        assert!(done);
        let got: Vec<Frame> = ev
            .iter()
            .filter_map(|e| match e {
                RxEvent::Frame {
                    frame, ok: true, ..
                } => Some(frame.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(got, frames);
    }

    #[test]
    fn a_lost_packet_marks_the_frame_bad() {
        let mut rx = Receiver::new();
        let mut ev = Vec::new();
        rx.handle(Some(0), &Ifp::indicator(Indicator::V21Preamble), &mut ev);
        rx.handle(
            Some(2),
            &Ifp::data(
                DataType::V21,
                vec![
                    Field::new(FieldType::HdlcData, [0xff, 0xc8, 0x01]),
                    Field::bare(FieldType::HdlcFcsOk),
                ],
            ),
            &mut ev,
        );
        assert!(
            ev.iter()
                .any(|e| matches!(e, RxEvent::Frame { ok: false, .. }))
        );
    }
}
