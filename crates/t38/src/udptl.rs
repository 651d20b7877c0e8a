//! UDPTL framing of IFP packets (ITU-T T.38 clause 9.1 and the
//! `UDPTLPacket` of Annex A), with redundancy and FEC error recovery.
//!
//! PER layout of a `UDPTLPacket`:
//!
//! | octets | meaning |
//! |--------|---------|
//! | 2 | `seq-number` INTEGER (0..65535) |
//! | 1–2 + n | `primary-ifp-packet`: open type (length determinant, IFP octets) |
//! | 1 | `error-recovery` CHOICE: 0x00 secondary packets, 0x80 FEC |
//! | … | secondary: count, then each IFP as an open type, newest (seq − 1) first |
//! | … | FEC: `fec-npackets` (length + integer octets), count, each parity octet string |
//!
//! FEC parity follows the scheme SpanDSP / FreeSWITCH implement: in the
//! packet with sequence number `s`, carrying `npackets` = span and `entries`
//! parity strings, entry `m` is the XOR (zero-padded to the longest) of the
//! IFPs `s + m − span·entries + j·entries` for `j` in `0..span`. A repaired
//! IFP keeps the zero padding, so it is decoded as a prefix.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;

use crate::Error;
use crate::ifp::{Ifp, T38Version};
use crate::per::{Reader, Writer, read_list, write_list};

/// Error recovery a sender adds to each datagram (T.38 clause 9.1.3, SDP
/// `T38FaxUdpEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorRecovery {
    /// `t38UDPRedundancy`: each datagram repeats up to `depth` previous
    /// IFPs (0 disables recovery).
    Redundancy {
        /// How many previous IFPs to repeat.
        depth: usize,
    },
    /// `t38UDPFEC`: `entries` XOR parity strings, each over `span` earlier
    /// IFPs.
    Fec {
        /// IFPs covered by each parity string (`fec-npackets`).
        span: u8,
        /// Parity strings per datagram.
        entries: u8,
    },
}

impl Default for ErrorRecovery {
    fn default() -> Self {
        Self::Redundancy { depth: 3 }
    }
}

/// The `error-recovery` part of a parsed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryData {
    /// `secondary-ifp-packets`, newest first: `[0]` is the IFP of `seq − 1`.
    Secondary(Vec<Vec<u8>>),
    /// `fec-info`.
    Fec {
        /// `fec-npackets`: IFPs covered by each parity string.
        npackets: u32,
        /// `fec-data`: the parity strings.
        data: Vec<Vec<u8>>,
    },
}

/// A parsed `UDPTLPacket`; IFPs are kept as their PER octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdptlPacket {
    /// `seq-number`.
    pub seq: u16,
    /// `primary-ifp-packet`.
    pub primary: Vec<u8>,
    /// `error-recovery`.
    pub recovery: RecoveryData,
}

/// Largest FEC reach (span × entries) the receiver uses, and how many
/// delivered IFPs it keeps for repairs. FreeSWITCH limits it to 16.
const MAX_FEC_REACH: i64 = 64;

impl UdptlPacket {
    /// Encodes the datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bits(u32::from(self.seq), 16);
        w.length_prefixed(open_type(&self.primary));
        match &self.recovery {
            RecoveryData::Secondary(list) => {
                w.bit(false);
                let Ok(()) = write_list(&mut w, list, |w, item| {
                    w.length_prefixed(open_type(item));
                    Ok::<(), Infallible>(())
                });
            }
            RecoveryData::Fec { npackets, data } => {
                w.bit(true);
                w.align();
                // Unconstrained INTEGER: length then minimal two's
                // complement octets (X.691 12.2.6).
                let be = npackets.to_be_bytes();
                let skip = be.iter().take_while(|&&b| b == 0).count().min(3);
                let mut octets = be[skip..].to_vec();
                if octets.first().is_some_and(|b| b & 0x80 != 0) {
                    octets.insert(0, 0);
                }
                w.length_prefixed(&octets);
                let Ok(()) = write_list(&mut w, data, |w, item| {
                    w.length_prefixed(item);
                    Ok::<(), Infallible>(())
                });
            }
        }
        w.finish()
    }

    /// Parses a datagram; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let seq = r.bits(16)? as u16;
        let primary = read_ifp(&mut r)?;
        let recovery = if r.bit()? {
            let n = r.length_prefixed()?;
            if n.is_empty() || n.len() > 4 || n[0] & 0x80 != 0 {
                return Err(Error::BadFec);
            }
            let npackets = n.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            // Each item is at least one octet of length determinant.
            let data = read_list(&mut r, 1, |r| r.length_prefixed())?;
            RecoveryData::Fec { npackets, data }
        } else {
            RecoveryData::Secondary(read_list(&mut r, 1, read_ifp)?)
        };
        if !r.rest().is_empty() {
            return Err(Error::TrailingOctets(r.rest().len()));
        }
        Ok(Self {
            seq,
            primary,
            recovery,
        })
    }
}

/// Octets an open type of `n` octets takes: length determinant and data
/// (fragmented lengths are larger; the caller checks the real encoding).
fn open_type_size(n: usize) -> usize {
    n + if n < 0x80 { 1 } else { 2 }
}

/// X.691 10.2.1: an empty open-type encoding is sent as one zero octet.
fn open_type(ifp: &[u8]) -> &[u8] {
    if ifp.is_empty() { &[0] } else { ifp }
}

fn read_ifp(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let v = r.length_prefixed()?;
    if v.is_empty() {
        return Err(Error::EmptyIfp);
    }
    Ok(v)
}

/// Sender configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// T.38 version used to encode [`Ifp`]s.
    pub version: T38Version,
    /// Error recovery added to each datagram.
    pub recovery: ErrorRecovery,
    /// The far end's `T38FaxMaxDatagram`: redundancy or FEC that would make
    /// a datagram longer is left out.
    pub max_datagram: usize,
    /// Sequence number of the first datagram (T.38 says 0).
    pub first_seq: u16,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            version: T38Version::V0,
            recovery: ErrorRecovery::default(),
            max_datagram: 400,
            first_seq: 0,
        }
    }
}

/// Builds UDPTL datagrams, one per IFP, adding redundancy or FEC from the
/// IFPs it sent before.
#[derive(Debug, Clone)]
pub struct UdptlSender {
    config: SenderConfig,
    seq: u16,
    /// Datagrams built so far (drives the FEC wind-up at the start).
    count: u64,
    /// Previously sent IFPs, newest first.
    history: VecDeque<Vec<u8>>,
}

impl UdptlSender {
    /// A sender whose first datagram has `config.first_seq`.
    pub fn new(config: SenderConfig) -> Self {
        Self {
            config,
            seq: config.first_seq,
            count: 0,
            history: VecDeque::new(),
        }
    }

    /// The sequence number the next datagram will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Encodes `ifp` and builds its datagram (see [`build_raw`](Self::build_raw)).
    pub fn build(&mut self, ifp: &Ifp) -> Result<Vec<u8>, Error> {
        let bytes = ifp.encode(self.config.version)?;
        self.build_raw(&bytes, usize::MAX)
    }

    /// [`build`](Self::build) with at most `depth` redundant IFPs (with
    /// redundancy error recovery; FEC is unchanged): a sender may carry less
    /// redundancy than negotiated where the path needs less.
    pub fn build_with_depth(&mut self, ifp: &Ifp, depth: usize) -> Result<Vec<u8>, Error> {
        let bytes = ifp.encode(self.config.version)?;
        self.build_raw(&bytes, depth)
    }

    /// Builds the datagram for an already encoded IFP, with at most
    /// `max_depth` redundant IFPs, and advances the sequence number. Fails,
    /// without consuming a sequence number, when the IFP is empty or alone
    /// exceeds `max_datagram`.
    pub fn build_raw(&mut self, ifp: &[u8], max_depth: usize) -> Result<Vec<u8>, Error> {
        if ifp.is_empty() {
            return Err(Error::EmptyIfp);
        }
        let bare = UdptlPacket {
            seq: self.seq,
            primary: ifp.to_vec(),
            recovery: RecoveryData::Secondary(Vec::new()),
        };
        let mut datagram = bare.encode();
        if datagram.len() > self.config.max_datagram {
            return Err(Error::DatagramTooLarge {
                size: datagram.len(),
                max: self.config.max_datagram,
            });
        }
        match self.config.recovery {
            ErrorRecovery::Redundancy { depth } => {
                // Add the newest first and stop at the first that does not
                // fit: a receiver can only use a contiguous run anyway. Sizes
                // are estimated, then checked on the real encoding.
                let mut size = datagram.len();
                let mut count = 0;
                for old in self.history.iter().take(depth.min(max_depth)) {
                    let grown = size + open_type_size(old.len()) + usize::from(count + 1 == 128);
                    if grown > self.config.max_datagram {
                        break;
                    }
                    size = grown;
                    count += 1;
                }
                while count > 0 {
                    let candidate = UdptlPacket {
                        recovery: RecoveryData::Secondary(
                            self.history.iter().take(count).cloned().collect(),
                        ),
                        ..bare.clone()
                    }
                    .encode();
                    if candidate.len() <= self.config.max_datagram {
                        datagram = candidate;
                        break;
                    }
                    count -= 1;
                }
            }
            ErrorRecovery::Fec { span, entries } => {
                let (span, entries) = self.fec_shape(span, entries);
                let data = (0..entries)
                    .map(|m| self.parity(span, entries, m))
                    .collect();
                let candidate = UdptlPacket {
                    recovery: RecoveryData::Fec {
                        npackets: u32::from(span),
                        data,
                    },
                    ..bare.clone()
                }
                .encode();
                // Dropping single entries would change which IFPs the
                // remaining ones cover, so it is all or nothing.
                datagram = if candidate.len() <= self.config.max_datagram {
                    candidate
                } else {
                    UdptlPacket {
                        recovery: RecoveryData::Fec {
                            npackets: u32::from(span),
                            data: Vec::new(),
                        },
                        ..bare
                    }
                    .encode()
                };
            }
        }
        let keep = match self.config.recovery {
            ErrorRecovery::Redundancy { depth } => depth,
            ErrorRecovery::Fec { span, entries } => usize::from(span) * usize::from(entries),
        };
        self.history.push_front(ifp.to_vec());
        self.history.truncate(keep);
        self.seq = self.seq.wrapping_add(1);
        self.count += 1;
        Ok(datagram)
    }

    /// Span and entries for the next datagram: at the start of a call
    /// fewer earlier IFPs exist, so entries wind up as SpanDSP does.
    fn fec_shape(&self, span: u8, entries: u8) -> (u8, u8) {
        let reach = u64::from(span) * u64::from(entries);
        if span == 0 || self.count >= reach {
            return (span, entries);
        }
        let entries = (self.count / u64::from(span)) as u8;
        (if entries == 0 { 0 } else { span }, entries)
    }

    /// Parity entry `m`: XOR of the IFPs `count + m − span·entries + j·entries`.
    fn parity(&self, span: u8, entries: u8, m: u8) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for j in 0..usize::from(span) {
            // Distance back from the IFP being sent (1 = the previous one).
            let back = usize::from(span) * usize::from(entries)
                - usize::from(m)
                - j * usize::from(entries);
            if let Some(old) = self.history.get(back - 1) {
                if out.len() < old.len() {
                    out.resize(old.len(), 0);
                }
                for (o, b) in out.iter_mut().zip(old) {
                    *o ^= b;
                }
            }
        }
        out
    }
}

/// Receiver configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// T.38 version used to decode IFPs.
    pub version: T38Version,
    /// A missing IFP is given up (declared lost, and delivery moves past
    /// it) once a datagram `reorder_window` or more sequence numbers newer
    /// has arrived; until then it may still come late or be repaired by
    /// FEC. 1 means "only what the datagram that reveals the gap can
    /// recover"; 0 counts as 1.
    pub reorder_window: u16,
    /// A datagram numbered further than this ahead of the newest one seen,
    /// or older than the receiver remembers, is suspect: one such datagram
    /// may be a stray or a forgery, and never moves the stream.
    pub plausible_ahead: u16,
    /// Suspect datagrams in sequence (each one or two after the last) that
    /// make the receiver take their numbering as the far end's restart, as
    /// robust RTP receivers do (RFC 3550 A.1, "probation").
    pub probation: u8,
    /// The far end's first sequence number, if known (T.38 clause 9.1 says
    /// 0, but not every implementation obeys). When `None` the stream
    /// starts at the oldest IFP of the first datagram that arrives, so
    /// datagrams reordered ahead of it at the very start count as late.
    pub first_seq: Option<u16>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            version: T38Version::V0,
            reorder_window: 4,
            plausible_ahead: 512,
            probation: 3,
            first_seq: None,
        }
    }
}

/// One IFP delivered by [`UdptlReceiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedIfp {
    /// UDPTL sequence number the IFP was sent with.
    pub seq: u16,
    /// The IFP.
    pub ifp: Ifp,
    /// Whether it came from redundancy or FEC rather than its own datagram.
    pub recovered: bool,
    /// IFPs given up on (lost, or undecodable) since the previously
    /// delivered one: nonzero means the data stream has a hole just before
    /// this IFP (an HDLC frame in progress is then corrupt).
    pub lost_before: u64,
}

/// Receiver counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverStats {
    /// Datagrams that parsed.
    pub received: u64,
    /// Datagrams that did not parse (dropped).
    pub malformed: u64,
    /// IFPs delivered.
    pub delivered: u64,
    /// Of those, IFPs recovered from redundancy or FEC.
    pub recovered: u64,
    /// Sequence numbers given up on (never delivered).
    pub lost: u64,
    /// Datagrams whose IFP had already been delivered or was already held.
    pub duplicates: u64,
    /// Datagrams that arrived after their sequence number was declared lost.
    pub late: u64,
    /// IFPs that did not decode (counted, not delivered).
    pub invalid_ifp: u64,
    /// Times the far end's numbering jumped and later datagrams confirmed
    /// it, so the receiver resynchronised.
    pub restarts: u64,
    /// Datagrams outside the plausible window held on probation (strays,
    /// forgeries, or the first of a restart).
    pub suspect: u64,
    /// Sequence numbers for which two different IFPs arrived (one of them
    /// forged or corrupt): decided by the copies that agree, or lost on a tie.
    pub conflicts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Primary,
    Secondary,
    Fec,
}

#[derive(Debug, Clone)]
struct Held {
    bytes: Vec<u8>,
    source: Source,
    /// The datagrams (by sequence number) that carried these bytes: their
    /// own and later ones' redundancy. A datagram counts once, however often
    /// it is repeated.
    votes: BTreeSet<i64>,
    /// Different bytes claimed for the same sequence number, and their votes.
    rival: Option<(Vec<u8>, BTreeSet<i64>)>,
}

impl Held {
    fn new(bytes: Vec<u8>, source: Source, carrier: i64) -> Self {
        Self {
            bytes,
            source,
            votes: BTreeSet::from([carrier]),
            rival: None,
        }
    }

    /// Another copy for the same sequence number, carried by datagram
    /// `carrier`; answers whether it is the first to disagree with what was
    /// held.
    fn add(&mut self, bytes: Vec<u8>, source: Source, carrier: i64) -> bool {
        if bytes == self.bytes {
            self.votes.insert(carrier);
            if source == Source::Primary {
                self.source = Source::Primary;
            }
            return false;
        }
        // FEC repairs are zero padded: a real copy replaces them.
        if self.source == Source::Fec {
            *self = Held::new(bytes, source, carrier);
            return false;
        }
        if source == Source::Fec {
            return false;
        }
        match &mut self.rival {
            Some((r, v)) if *r == bytes => {
                v.insert(carrier);
            }
            Some(_) => {}
            None => {
                self.rival = Some((bytes, BTreeSet::from([carrier])));
                return true;
            }
        }
        false
    }

    /// The bytes the copies agree on; `None` on a tie between two versions.
    fn decide(self) -> Option<(Vec<u8>, Source)> {
        match self.rival {
            None => Some((self.bytes, self.source)),
            Some((r, v)) if v.len() > self.votes.len() => Some((r, Source::Secondary)),
            Some((_, v)) if v.len() == self.votes.len() => None,
            Some(_) => Some((self.bytes, self.source)),
        }
    }
}

/// Suspect datagrams in sequence, waiting to be confirmed as a restart.
#[derive(Debug, Clone)]
struct Probation {
    last: u16,
    packets: Vec<UdptlPacket>,
}

#[derive(Debug, Clone)]
struct FecRecord {
    seq: i64,
    span: i64,
    data: Vec<Vec<u8>>,
}

/// Turns datagrams, in whatever order the network delivers them, into
/// IFPs in sequence order, each exactly once.
///
/// Sequence numbers are extended to 64 bits internally, so wrap at 65536 is
/// transparent. No clock: a missing IFP is awaited until `reorder_window`
/// newer sequence numbers have been seen, or until [`flush`](Self::flush).
#[derive(Debug, Clone)]
pub struct UdptlReceiver {
    config: ReceiverConfig,
    /// Extended sequence number of the next IFP to deliver.
    next: Option<i64>,
    highest: i64,
    held: BTreeMap<i64, Held>,
    /// Recently delivered IFPs, for FEC repair.
    delivered: BTreeMap<i64, Vec<u8>>,
    /// Recently given-up sequence numbers, to tell late from duplicate.
    lost: BTreeSet<i64>,
    fec: VecDeque<FecRecord>,
    out: VecDeque<ReceivedIfp>,
    stats: ReceiverStats,
    /// Given up since the last delivered IFP.
    hole: u64,
    probation: Option<Probation>,
    /// Held primaries that jumped ahead of the stream (past a gap wider than
    /// their redundancy bridges) and no later datagram of their run has
    /// confirmed yet: a lone forged datagram inside the window looks like
    /// this, and must neither be delivered nor move `highest`.
    tentative: BTreeSet<i64>,
    /// The redundancy depth the stream has shown: the most copies a datagram
    /// that followed in order carried (at most `MAX_DEPTH`). Copies beyond it
    /// are not believed; a number two versions claim waits this many datagrams
    /// for the copies that decide it.
    depth: i64,
    /// A datagram has been taken into the stream.
    started: bool,
    /// Datagrams taken that followed in order: after a few, the depth they
    /// showed is the stream's (before, the sender may still be ramping up).
    in_order: u32,
}

/// How far back the receiver remembers delivered / lost sequence numbers.
const MEMORY: i64 = 1024;

/// The deepest redundancy a stream is believed to carry (senders use 1 to 5).
const MAX_DEPTH: i64 = 8;

/// How far ahead of the stream a tentative datagram may be and still be
/// delivered by a flush (the far end went quiet right after a loss burst).
const FLUSH_REACH: i64 = 16;

impl UdptlReceiver {
    /// A receiver that accepts any first sequence number.
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            config,
            next: config.first_seq.map(i64::from),
            highest: config.first_seq.map_or(0, |s| i64::from(s) - 1),
            held: BTreeMap::new(),
            delivered: BTreeMap::new(),
            lost: BTreeSet::new(),
            fec: VecDeque::new(),
            out: VecDeque::new(),
            stats: ReceiverStats::default(),
            hole: 0,
            probation: None,
            tentative: BTreeSet::new(),
            depth: 0,
            started: false,
            in_order: 0,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// How many IFPs are held behind a gap, waiting for it to be filled or given up.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes one datagram. A datagram that does not parse is counted and
    /// its error returned; the receiver's state is unchanged by it, so the
    /// caller may just log the error and go on.
    pub fn handle_datagram(&mut self, datagram: &[u8]) -> Result<(), Error> {
        let packet = match UdptlPacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        self.stats.received += 1;
        match self.place(packet.seq) {
            Some(seq) => self.take(seq, packet),
            None => self.suspect(packet),
        }
        Ok(())
    }

    /// The extended sequence number of a datagram that fits the stream
    /// being followed; `None` when it is implausibly far ahead or behind.
    fn place(&self, seq: u16) -> Option<i64> {
        let Some(next) = self.next else {
            return Some(i64::from(seq));
        };
        // Nearest to the newest datagram seen (or to the next expected one,
        // when nothing newer has come).
        let anchor = self.highest.max(next - 1);
        let ext = anchor + i64::from(seq.wrapping_sub(anchor as u16) as i16);
        let plausible =
            ext <= anchor + i64::from(self.config.plausible_ahead) && ext >= next - MEMORY;
        plausible.then_some(ext)
    }

    /// A datagram outside the plausible window: held on probation. Only
    /// `probation` of them in sequence make a new numbering (the far end
    /// restarted or wrapped oddly); a lone stray or forgery changes nothing.
    fn suspect(&mut self, packet: UdptlPacket) {
        self.stats.suspect += 1;
        let follows = self.probation.as_ref().is_some_and(|p| {
            let step = packet.seq.wrapping_sub(p.last);
            (1..=2).contains(&step)
        });
        if !follows {
            self.probation = None;
        }
        let p = self.probation.get_or_insert(Probation {
            last: packet.seq,
            packets: Vec::new(),
        });
        p.last = packet.seq;
        p.packets.push(packet);
        if p.packets.len() < usize::from(self.config.probation.max(1)) {
            return;
        }
        let Some(p) = self.probation.take() else {
            return;
        };
        self.stats.restarts += 1;
        // Everything of the old numbering is delivered or given up; the new
        // one starts in a fresh epoch above it, so old numbers never collide.
        self.deliver(true);
        self.delivered.clear();
        self.lost.clear();
        self.fec.clear();
        let after = self.next.unwrap_or(0).max(self.highest + 1);
        let epoch = (after >> 16) + 1;
        let first = p.packets.first().map_or(0, |q| q.seq);
        let base = (epoch << 16) | i64::from(first);
        self.next = Some(base);
        self.highest = base - 1;
        for q in p.packets {
            let ext = base + i64::from(q.seq.wrapping_sub(first));
            self.take(ext, q);
        }
    }

    /// Holds a plausible datagram's IFPs and delivers what is in order.
    fn take(&mut self, seq: i64, packet: UdptlPacket) {
        // The first datagram's secondaries are IFPs never seen here either.
        let first_known = match &packet.recovery {
            RecoveryData::Secondary(list) => seq - list.len() as i64,
            RecoveryData::Fec { .. } => seq,
        };
        let fresh = self.next.is_none();
        if fresh {
            // The first datagram starts the stream.
            self.highest = seq - 1;
        }
        let next = *self.next.get_or_insert(first_known);
        if seq < next {
            if self.lost.contains(&seq) {
                self.stats.late += 1;
            } else {
                self.stats.duplicates += 1;
            }
            return;
        }
        if self
            .held
            .get(&seq)
            .is_some_and(|h| h.bytes == packet.primary && h.source == Source::Primary)
        {
            self.stats.duplicates += 1;
            return;
        }
        // Its redundancy copies must agree with what the stream already carried: a datagram whose copies
        // contradict it is not of the stream (a forgery, or another call's).
        let all_copies: Vec<Vec<u8>> = match packet.recovery {
            RecoveryData::Secondary(ref list) => list.clone(),
            RecoveryData::Fec { .. } => Vec::new(),
        };
        // Only as many copies as the stream has shown it carries are believed (datagrams taken into the
        // stream show its depth, up to `MAX_DEPTH`): a forged datagram cannot fill a long run of numbers
        // with copies of its own. The first datagram taken opens the stream, copies and all, also where
        // the stream's first number is known and it comes later.
        let first = !std::mem::replace(&mut self.started, true);
        let opens = fresh || first && seq - (all_copies.len() as i64) <= self.highest + 1;
        let shown = (all_copies.len() as i64).min(MAX_DEPTH);
        if opens || seq <= self.highest + 1 {
            self.depth = self.depth.max(shown);
            self.in_order = self.in_order.saturating_add(1);
        }
        // Judged on the copies the stream's depth allows (any up to `MAX_DEPTH` while the first datagrams
        // may still be ramping up to it).
        let allowed = if self.in_order < 4 {
            MAX_DEPTH
        } else {
            self.depth
        };
        let allowed = usize::try_from(allowed).unwrap_or(0);
        let copies = &all_copies[..all_copies.len().min(allowed)];
        let (mut agree_tentative, mut disagree) = (0, 0);
        for (back, bytes) in (1..).zip(copies) {
            let s = seq - back;
            let tentative = self.tentative.contains(&s);
            match self.settled(s) {
                Some(k) if k == bytes.as_slice() && tentative => agree_tentative += 1,
                Some(k) if k != bytes.as_slice() && !tentative => disagree += 1,
                _ => {}
            }
        }
        // In the stream when it follows what came before, when its copies (no more than the redundancy the
        // stream has shown, none contradicting it) bridge the gap to it, or when it continues a tentative run
        // (its copy of the run agrees, or, on a stream without redundancy, it comes right after).
        // Otherwise tentative.
        let reach = copies.len() as i64;
        let run = if copies.is_empty() && self.depth == 0 {
            self.tentative.range(seq - 2..seq).next().is_some()
        } else {
            agree_tentative > 0
        };
        let in_stream = opens || disagree == 0 && (seq - reach <= self.highest + 1 || run);
        if in_stream {
            // Taken into the stream, it shows the stream's depth, and its copies up to it are believed.
            self.depth = self.depth.max(shown);
            if run {
                self.tentative = self.tentative.split_off(&seq);
            }
            self.highest = self.highest.max(seq);
        }
        self.hold(seq, packet.primary, Source::Primary, seq, in_stream);
        let believed = if in_stream {
            usize::try_from(self.depth).unwrap_or(0)
        } else {
            copies.len()
        };
        match packet.recovery {
            RecoveryData::Secondary(_) => {
                for (back, bytes) in (1..).zip(all_copies.into_iter().take(believed)) {
                    let s = seq - back;
                    if s < next {
                        break;
                    }
                    // The first datagram's copies are IFPs sent before this receiver listened: the
                    // start of the stream, not a repair.
                    let source = if fresh {
                        Source::Primary
                    } else {
                        Source::Secondary
                    };
                    self.hold(s, bytes, source, seq, in_stream);
                }
            }
            RecoveryData::Fec { npackets, data } => {
                let span = i64::from(npackets);
                if !data.is_empty() && span * data.len() as i64 <= MAX_FEC_REACH {
                    self.fec.push_back(FecRecord { seq, span, data });
                }
            }
        }
        // Parity that arrived before the other IFPs it covers becomes
        // usable as they arrive, so try after every datagram.
        if !self.fec.is_empty() {
            self.repair();
        }
        self.deliver(false);
    }

    /// Holds `bytes` for `seq`, carried by datagram `carrier`. A datagram of the stream votes on what is
    /// held and replaces what only a tentative one claimed; a tentative datagram's copies only fill numbers
    /// nothing else claimed, as tentative as itself, and its own number stands against another claim.
    fn hold(&mut self, seq: i64, bytes: Vec<u8>, source: Source, carrier: i64, in_stream: bool) {
        let tentative = self.tentative.contains(&seq);
        match self.held.get_mut(&seq) {
            Some(h) if in_stream && tentative => {
                if h.bytes != bytes {
                    self.stats.conflicts += 1;
                }
                *h = Held::new(bytes, source, carrier);
                self.tentative.remove(&seq);
            }
            Some(h) if in_stream => {
                if h.add(bytes, source, carrier) {
                    self.stats.conflicts += 1;
                }
            }
            // A tentative datagram's own number: its claim stands against the other, and a tie is a loss.
            Some(h) if carrier == seq => {
                if h.add(bytes, source, carrier) {
                    self.stats.conflicts += 1;
                }
            }
            Some(h) => {
                if h.bytes != bytes && h.rival.is_none() {
                    self.stats.conflicts += 1;
                }
            }
            None => {
                self.held.insert(seq, Held::new(bytes, source, carrier));
                if !in_stream {
                    self.tentative.insert(seq);
                } else {
                    self.tentative.remove(&seq);
                }
            }
        }
    }

    /// What the stream already carried for `seq`: delivered, or held from a datagram of its own (an FEC
    /// repair, zero padded, does not count).
    fn settled(&self, seq: i64) -> Option<&[u8]> {
        match self.held.get(&seq) {
            Some(h) if h.source != Source::Fec => Some(h.bytes.as_slice()),
            Some(_) => None,
            None => self.delivered.get(&seq).map(Vec::as_slice),
        }
    }

    /// The next delivered IFP, in sequence order.
    pub fn poll_ifp(&mut self) -> Option<ReceivedIfp> {
        self.out.pop_front()
    }

    /// Gives up on every missing IFP and delivers everything held. Call it
    /// when the far end has gone quiet for longer than the jitter you accept
    /// (for example 200 ms), and at the end of a call.
    pub fn flush(&mut self) {
        self.deliver(true);
    }

    fn known(&self, seq: i64) -> Option<&[u8]> {
        self.held
            .get(&seq)
            .map(|h| h.bytes.as_slice())
            .or_else(|| self.delivered.get(&seq).map(Vec::as_slice))
    }

    /// Repairs missing IFPs from FEC parity until nothing more can be done.
    fn repair(&mut self) {
        let Some(next) = self.next else { return };
        loop {
            let mut repaired = None;
            'records: for rec in &self.fec {
                let entries = rec.data.len() as i64;
                for (m, parity) in (0..).zip(&rec.data) {
                    let covered =
                        (0..rec.span).map(|j| rec.seq + m - rec.span * entries + j * entries);
                    let mut missing = None;
                    let mut usable = true;
                    for k in covered.clone() {
                        if self.known(k).is_none() {
                            if k < next || missing.is_some() {
                                usable = false;
                                break;
                            }
                            missing = Some(k);
                        }
                    }
                    let Some(k) = missing.filter(|_| usable) else {
                        continue;
                    };
                    let mut bytes = parity.clone();
                    for other in covered.filter(|&o| o != k) {
                        for (b, o) in bytes.iter_mut().zip(self.known(other).unwrap_or(&[])) {
                            *b ^= o;
                        }
                    }
                    repaired = Some((k, bytes));
                    break 'records;
                }
            }
            match repaired {
                Some((k, bytes)) => {
                    self.held.insert(k, Held::new(bytes, Source::Fec, k));
                }
                None => return,
            }
        }
    }

    fn deliver(&mut self, flush: bool) {
        let Some(mut next) = self.next else { return };
        let window = i64::from(self.config.reorder_window.max(1));
        let far = |s: i64, highest: i64| s > highest + FLUSH_REACH;
        loop {
            if self.tentative.contains(&next) {
                if next < self.highest {
                    // The stream went past it and its number never came in the stream: a lone copy
                    // from outside the run is not trusted.
                    self.tentative.remove(&next);
                    self.held.remove(&next);
                    self.stats.lost += 1;
                    self.hole += 1;
                    self.lost.insert(next);
                    next += 1;
                    continue;
                }
                if !flush || far(next, self.highest) {
                    break;
                }
                // The far end went quiet after it: taken as the stream's.
                self.tentative.remove(&next);
                self.highest = self.highest.max(next);
            }
            // Two versions of one number: wait for the later datagrams whose copies decide it.
            if !flush
                && self.held.get(&next).is_some_and(|h| h.rival.is_some())
                && self.highest < next + self.depth
            {
                break;
            }
            if let Some(h) = self.held.remove(&next) {
                self.emit(next, h);
                next += 1;
                continue;
            }
            let highest = self.highest;
            let tentative = &self.tentative;
            let Some(&first_held) = self
                .held
                .keys()
                .find(|&&k| !(tentative.contains(&k) && (!flush || far(k, highest))))
            else {
                break;
            };
            // Give up on the gap [next, first_held) as far as the window
            // allows; all of it when flushing.
            let give_up_to = if flush {
                first_held
            } else {
                first_held.min(self.highest - window + 1)
            };
            if give_up_to <= next {
                break;
            }
            self.stats.lost += (give_up_to - next) as u64;
            self.hole += (give_up_to - next) as u64;
            for s in next.max(give_up_to - MEMORY)..give_up_to {
                self.lost.insert(s);
            }
            next = give_up_to;
        }
        if flush {
            next = next.max(self.highest + 1);
        }
        // Tentative datagrams the stream has left behind are dropped with everything behind it.
        self.tentative = self.tentative.split_off(&next);
        self.held = self.held.split_off(&next);
        self.next = Some(next);
        let horizon = next - MEMORY;
        self.delivered = self.delivered.split_off(&(next - MAX_FEC_REACH));
        self.lost = self.lost.split_off(&horizon);
        self.fec.retain(|r| r.seq >= next - MAX_FEC_REACH);
    }

    fn emit(&mut self, seq: i64, held: Held) {
        let Some((bytes, source)) = held.decide() else {
            // Two versions with equal support: neither can be trusted.
            self.stats.lost += 1;
            self.hole += 1;
            self.lost.insert(seq);
            return;
        };
        let decoded = match source {
            Source::Fec => {
                Ifp::decode_prefix(&bytes, self.config.version).and_then(|(ifp, pad)| {
                    if pad.iter().all(|&b| b == 0) {
                        Ok(ifp)
                    } else {
                        Err(Error::TrailingOctets(pad.len()))
                    }
                })
            }
            _ => Ifp::decode(&bytes, self.config.version),
        };
        match decoded {
            Ok(ifp) => {
                self.stats.delivered += 1;
                let recovered = source != Source::Primary;
                if recovered {
                    self.stats.recovered += 1;
                }
                self.out.push_back(ReceivedIfp {
                    seq: seq as u16,
                    ifp,
                    recovered,
                    lost_before: std::mem::take(&mut self.hole),
                });
            }
            Err(_) => {
                self.stats.invalid_ifp += 1;
                self.hole += 1;
            }
        }
        self.delivered.insert(seq, bytes);
    }
}
