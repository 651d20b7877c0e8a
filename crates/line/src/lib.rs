//! One fax line for faxhub: a [`t30::Session`] carried as T.38 IFPs in UDPTL datagrams over a real UDP
//! socket, with the clock and the pacing of real time.
//!
//! This is the only crate of the fax engine that touches sockets and the clock. It owns:
//! * the UDPTL framing of the negotiated call ([`Transport`]: T.38 version, redundancy depth, the far
//!   end's maximum datagram), with loss, duplication and reordering undone by [`t38::UdptlReceiver`];
//! * the loop that feeds datagrams and deadlines to the session and sends what it says when it says it.
//!
//! [`run`] returns the session's [`t30::Outcome`] (a failed fax is an outcome, not an error) with the
//! [`CallStats`] a fax server reports; only a broken socket is an [`Error`].

use std::net::SocketAddr;
use std::time::Duration;

use t30::{Event, Output, Session};
use t38::{ErrorRecovery, ReceiverConfig, SenderConfig, T38Version, UdptlReceiver, UdptlSender};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The UDPTL side of a call, from the SDP both ends agreed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transport {
    /// `T38FaxVersion`.
    pub version: T38Version,
    /// `T38FaxUdpEC:t38UDPRedundancy` depth (0: none).
    pub redundancy: usize,
    /// The far end's `T38FaxMaxDatagram`.
    pub max_datagram: usize,
    /// How long the receiver holds IFPs after a gap before giving the gap up.
    pub hold: Duration,
    /// Drop this share of outgoing datagrams on purpose (0.0 to 1.0), with `loss_seed`: a diagnostic for
    /// checking that a path's redundancy setting survives loss. Each loss takes `loss_burst` datagrams
    /// in a row (1: independent losses).
    pub loss: f64,
    pub loss_seed: u64,
    pub loss_burst: u32,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            version: T38Version::V0,
            redundancy: 3,
            max_datagram: 400,
            hold: Duration::from_millis(200),
            loss: 0.0,
            loss_seed: 1,
            loss_burst: 1,
        }
    }
}

impl Transport {
    /// The largest image-data payload that still fits a datagram with all its redundancy (each IFP also
    /// carries about 6 octets of headers).
    pub fn max_chunk(&self) -> usize {
        (self.max_datagram.saturating_sub(8) / (self.redundancy + 1))
            .saturating_sub(8)
            .clamp(16, 1400)
    }
}

/// Socket failures: the fax itself never fails with these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("an IFP does not fit the far end's maximum datagram: {0}")]
    Encode(t38::Error),
    #[error("nothing arrived from any far end within {0:?}")]
    NoPeer(Duration),
    #[error("the call ended before any fax signal arrived")]
    CallEnded,
}

/// What a fax server reports about a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    pub bit_rate: u32,
    pub ecm: bool,
    pub compression: Option<t30::Compression>,
    pub resolution: Option<t30::Resolution>,
    pub pages: u32,
    pub bad_lines: u32,
    pub retransmitted_frames: u32,
    pub pprs: u32,
    pub duration: Duration,
    pub datagrams_sent: u64,
    /// UDP payload octets sent (what the call costs the path).
    pub octets_sent: u64,
    pub datagrams_received: u64,
    pub ifps_recovered: u64,
    pub ifps_lost: u64,
    pub remote_ident: String,
}

impl CallStats {
    fn new(o: &t30::Outcome, rx: &t38::ReceiverStats, sent: u64, octets: u64) -> Self {
        let d = o.stats.dcs;
        Self {
            bit_rate: d.map_or(0, |d| d.modem.bit_rate()),
            ecm: d.is_some_and(|d| d.ecm),
            compression: d.map(|d| d.compression),
            resolution: d.map(|d| d.resolution),
            pages: o.stats.pages,
            bad_lines: o.stats.bad_lines,
            retransmitted_frames: o.stats.retransmitted_frames,
            pprs: o.stats.pprs,
            duration: o.duration,
            datagrams_sent: sent,
            octets_sent: octets,
            datagrams_received: rx.received,
            ifps_recovered: rx.recovered,
            ifps_lost: rx.lost,
            remote_ident: o.stats.remote_ident.clone(),
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct CallResult {
    pub outcome: t30::Outcome,
    pub stats: CallStats,
    /// The pages received, in order (receiving sessions).
    pub pages: Vec<t30::ReceivedPage>,
}

/// Runs a session to its end on `socket`. With `remote` unknown (a receiver waiting for the caller), the
/// first datagram that arrives names the far end, and the session starts then; `wait_for_peer` bounds
/// that wait. `on_event` sees progress as it happens.
pub async fn run(
    socket: &UdpSocket,
    remote: Option<SocketAddr>,
    cfg: t30::Config,
    transport: Transport,
    wait_for_peer: Duration,
    on_event: impl FnMut(&Event),
) -> Result<CallResult, Error> {
    run_until(
        socket,
        remote,
        cfg,
        transport,
        wait_for_peer,
        std::future::pending(),
        on_event,
    )
    .await
}

/// [`run`] on a call that can end under the session: when `call_ended` completes (the far end hung up,
/// a SIP BYE), the session ends at once ([`t30::Session::call_ended`]) and its result, with the pages
/// received so far, is returned.
pub async fn run_until(
    socket: &UdpSocket,
    remote: Option<SocketAddr>,
    cfg: t30::Config,
    transport: Transport,
    wait_for_peer: Duration,
    call_ended: impl std::future::Future<Output = ()>,
    mut on_event: impl FnMut(&Event),
) -> Result<CallResult, Error> {
    tokio::pin!(call_ended);
    let mut ended = false;
    let mut cfg = cfg;
    cfg.pacing.max_chunk = transport.max_chunk();
    let mut tx = UdptlSender::new(SenderConfig {
        version: transport.version,
        recovery: ErrorRecovery::Redundancy {
            depth: transport.redundancy,
        },
        max_datagram: transport.max_datagram,
        first_seq: 0,
    });
    let mut rx = UdptlReceiver::new(ReceiverConfig {
        version: transport.version,
        ..ReceiverConfig::default()
    });
    let mut buf = vec![0u8; 65_536];
    let mut first: Option<(usize, SocketAddr)> = None;
    let remote = match remote {
        Some(r) => r,
        None => {
            // The far end is whoever sends the first datagram that opens a fax call; anything else
            // arriving first (a stray or a probe) is skipped, so it cannot take the call's place.
            let until = Instant::now() + wait_for_peer;
            loop {
                let (n, from) = tokio::select! {
                    r = tokio::time::timeout_at(until, socket.recv_from(&mut buf)) => {
                        r.map_err(|_| Error::NoPeer(wait_for_peer))??
                    }
                    () = &mut call_ended => return Err(Error::CallEnded),
                };
                if opens_a_call(&buf[..n], transport.version) {
                    first = Some((n, from));
                    break from;
                }
                warn!(%from, "a datagram that does not open a fax call was skipped");
            }
        }
    };
    let origin = Instant::now();
    let now = || Instant::now().duration_since(origin);
    let mut session = Session::new(cfg, now());
    let mut pages = Vec::new();
    let mut sent = 0u64;
    let mut octets = 0u64;
    let mut last_datagram: Option<Instant> = None;
    let mut loss_rng = transport.loss_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut burst_left = 0u32;
    if let Some((n, _)) = first {
        feed(&mut rx, &mut session, &buf[..n], now());
        last_datagram = Some(Instant::now());
    }
    loop {
        // Drain the session.
        let deadline = loop {
            match session.poll_output(now()) {
                Output::Transmit(ifp) => {
                    let depth = image_redundancy(&ifp, &session, rx.stats(), transport.redundancy);
                    let d = tx.build_with_depth(&ifp, depth).map_err(Error::Encode)?;
                    sent += 1;
                    octets += d.len() as u64;
                    if burst_left > 0 {
                        burst_left -= 1;
                        continue;
                    }
                    if transport.loss > 0.0 && unit(&mut loss_rng) < transport.loss {
                        burst_left = transport.loss_burst.saturating_sub(1);
                        continue;
                    }
                    socket.send_to(&d, remote).await?;
                }
                Output::Event(e) => {
                    on_event(&e);
                    if let Event::PageReceived(p) = e {
                        pages.push(*p);
                    }
                }
                Output::Timeout(t) => break t.map(|t| origin + t),
                Output::Finished(outcome) => {
                    // Let the far end's last datagrams drain (and the gap hold lapse) before closing.
                    let stats = CallStats::new(&outcome, rx.stats(), sent, octets);
                    debug!(?stats, "call finished");
                    return Ok(CallResult {
                        outcome,
                        stats,
                        pages,
                    });
                }
            }
        };
        let hold_until = last_datagram
            .filter(|_| rx.held() > 0)
            .map(|t| t + transport.hold);
        let wake = [hold_until, deadline].into_iter().flatten().min();
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                if from != remote {
                    warn!(%from, "datagram from an unexpected address ignored");
                    continue;
                }
                last_datagram = Some(Instant::now());
                feed(&mut rx, &mut session, &buf[..n], now());
            }
            // With nothing due, only a datagram moves the session on.
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if hold_until.is_some_and(|h| Instant::now() >= h) {
                    rx.flush();
                    deliver(&mut rx, &mut session, now());
                }
            }
            () = &mut call_ended, if !ended => {
                ended = true;
                // What is still held for reordering arrived before the call ended.
                rx.flush();
                deliver(&mut rx, &mut session, now());
                session.call_ended(now());
            }
        }
    }
}

/// Redundant IFPs to carry with `ifp`. ECM image data has a repair of its own (PPR), so while the path
/// has shown no loss (no PPR, nothing lost or repaired on the way in) it goes with one copy, half of
/// what a full depth costs; once loss shows, and for everything else, the negotiated depth. Control
/// frames and non-ECM data have no such repair and always get the full depth.
fn image_redundancy(
    ifp: &t38::Ifp,
    session: &Session,
    rx: &t38::ReceiverStats,
    negotiated: usize,
) -> usize {
    let ecm_image = matches!(ifp.msg_type, t38::IfpType::Data(dt) if dt != t38::DataType::V21)
        && ifp.fields().iter().all(|f| {
            f.field_type != t38::FieldType::T4NonEcmData
                && f.field_type != t38::FieldType::T4NonEcmSigEnd
        });
    let lossy = session.stats().pprs > 0 || rx.lost > 0 || rx.recovered > 0 || rx.late > 0;
    if ecm_image && !lossy {
        negotiated.min(1)
    } else {
        negotiated
    }
}

/// Whether a datagram can be the first a calling fax terminal sends: UDPTL whose IFP (or an earlier one
/// it repeats) is a tone or silence indicator, a V.21 preamble, or V.21 HDLC data.
fn opens_a_call(datagram: &[u8], version: T38Version) -> bool {
    let Ok(p) = t38::UdptlPacket::decode(datagram) else {
        return false;
    };
    let mut ifps = vec![p.primary];
    if let t38::RecoveryData::Secondary(list) = p.recovery {
        ifps.extend(list);
    }
    ifps.iter().any(|bytes| {
        matches!(
            t38::Ifp::decode(bytes, version).map(|i| i.msg_type),
            Ok(t38::IfpType::Indicator(
                t38::Indicator::NoSignal
                    | t38::Indicator::Cng
                    | t38::Indicator::Ced
                    | t38::Indicator::V21Preamble
            )) | Ok(t38::IfpType::Data(t38::DataType::V21))
        )
    })
}

/// xorshift64*, uniform in [0, 1).
fn unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn feed(rx: &mut UdptlReceiver, session: &mut Session, datagram: &[u8], now: Duration) {
    if let Err(e) = rx.handle_datagram(datagram) {
        debug!(error = %e, "malformed UDPTL datagram ignored");
    }
    deliver(rx, session, now);
}

fn deliver(rx: &mut UdptlReceiver, session: &mut Session, now: Duration) {
    while let Some(r) = rx.poll_ifp() {
        if r.recovered || r.lost_before > 0 {
            debug!(
                seq = r.seq,
                recovered = r.recovered,
                lost_before = r.lost_before,
                "IFP after a loss"
            );
        }
        session.handle_ifp(now, Some(r.seq), &r.ifp);
    }
}

/// Received pages as one TIFF Class F file (MMR), with the copy-quality tags (BadFaxLines,
/// ConsecutiveBadFaxLines, CleanFaxData) each page earned.
pub fn received_tiff(pages: &[t30::ReceivedPage], software: &str) -> Result<Vec<u8>, t4::Error> {
    let wp: Vec<t4::tiff::WritePage<'_>> = pages
        .iter()
        .map(|p| t4::tiff::WritePage {
            page: t4::PageRef {
                width: p.page.width,
                height: p.page.height,
                data: &p.page.data,
            },
            x_dpi: 204.0,
            y_dpi: p.page.resolution.lines_per_inch(),
            // Lines lost count as bad: they are not on the page as sent.
            bad_fax_lines: Some(p.bad_lines + p.lines_lost),
            consecutive_bad_fax_lines: Some(p.max_consecutive_bad.max(p.lines_lost)),
            // TIFF CleanFaxData: 0 clean, 1 bad lines regenerated (the line above again), 2 unclean
            // (lines missing, or a page the call never confirmed).
            clean_fax_data: Some(if p.lines_lost > 0 || !p.confirmed || !p.complete {
                2
            } else if p.bad_lines > 0 {
                1
            } else {
                0
            }),
        })
        .collect();
    let o = t4::tiff::WriteOptions {
        coding: Some(t4::Coding::Mmr),
        software: Some(software.to_string()),
        date_time: None,
    };
    t4::tiff::write(&wp, &o)
}
