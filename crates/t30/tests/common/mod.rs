//! A simulated pair: our sender and our receiver over UDPTL datagrams on a link that drops, duplicates,
//! delays and reorders by seed, with a clock that jumps to the next deadline.

#![allow(dead_code)]

use std::time::Duration;

use t30::{Config, Event, Output, Page, ReceivedPage, Resolution, Role, Session};
use t38::{ErrorRecovery, ReceiverConfig, SenderConfig, UdptlReceiver, UdptlSender};

/// xorshift64*: small, seeded, good enough for a network model.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Bursty loss (Gilbert-Elliott): in the good state datagrams are lost with `LinkModel::loss`; the link
/// turns bad with probability `enter` per datagram and then loses every datagram until it turns good
/// again, with probability `1 / mean_len` per datagram.
#[derive(Debug, Clone, Copy)]
pub struct Bursts {
    pub enter: f64,
    pub mean_len: f64,
}

/// A third party on the path that injects datagrams towards the receiving end: with probability
/// `inject` per datagram sent, one forged datagram (a copy of a real one with a random or extreme
/// sequence number, or a "bridge": a number a little ahead carrying a long run of made-up redundancy
/// copies), and with probability `replay` one datagram from earlier in the call, verbatim.
#[derive(Debug, Clone, Copy)]
pub struct Adversary {
    pub inject: f64,
    pub replay: f64,
}

/// One direction of the network.
#[derive(Debug, Clone)]
pub struct LinkModel {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub latency: Duration,
    pub jitter: Duration,
    pub bursts: Option<Bursts>,
    pub adversary: Option<Adversary>,
    /// Drop, once, the datagram carrying the n-th IFP (from 1) of ECM image data (HDLC data at an image
    /// modem): with no redundancy, that piece of a frame is gone for good.
    pub drop_image_ifp: Option<usize>,
}

impl LinkModel {
    pub fn clean() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            bursts: None,
            adversary: None,
            drop_image_ifp: None,
        }
    }
}

struct Link {
    model: LinkModel,
    rng: Rng,
    in_flight: Vec<(Duration, u64, Vec<u8>)>,
    order: u64,
    /// In a loss burst.
    bad: bool,
    /// Datagrams sent so far, for replays.
    history: Vec<Vec<u8>>,
    image_ifps: usize,
}

impl Link {
    fn new(model: LinkModel, seed: u64) -> Self {
        Self {
            model,
            rng: Rng::new(seed),
            in_flight: Vec::new(),
            order: 0,
            bad: false,
            history: Vec::new(),
            image_ifps: 0,
        }
    }

    fn send(&mut self, now: Duration, datagram: Vec<u8>) {
        if let Some(n) = self.model.drop_image_ifp
            && carries_image_data(&datagram)
        {
            self.image_ifps += 1;
            if self.image_ifps == n {
                return;
            }
        }
        if let Some(a) = self.model.adversary {
            self.adversary(now, a, &datagram);
        }
        if let Some(b) = self.model.bursts {
            if self.bad {
                self.bad = self.rng.unit() >= 1.0 / b.mean_len.max(1.0);
            } else {
                self.bad = self.rng.unit() < b.enter;
            }
            if self.bad {
                return;
            }
        }
        if self.rng.unit() < self.model.loss {
            return;
        }
        let copies = if self.rng.unit() < self.model.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.model.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.rng.below(self.model.jitter.as_micros() as u64))
            };
            let extra = if self.rng.unit() < self.model.reorder {
                Duration::from_millis(40)
            } else {
                Duration::ZERO
            };
            self.order += 1;
            self.in_flight.push((
                now + self.model.latency + jitter + extra,
                self.order,
                datagram.clone(),
            ));
        }
    }

    /// The third party's datagrams, arriving with the real one.
    fn adversary(&mut self, now: Duration, a: Adversary, real: &[u8]) {
        if self.history.len() < 4096 {
            self.history.push(real.to_vec());
        }
        let at = now + self.model.latency;
        if real.len() >= 2 && self.rng.unit() < a.inject {
            let seq = u16::from_be_bytes([real[0], real[1]]);
            // Random or far from the stream: a forger on the path does not see the sequence numbers.
            let forged = match self.rng.below(4) {
                0 => self.rng.next() as u16,
                1 => seq.wrapping_add(30_000),
                2 => seq.wrapping_sub(1_000 + self.rng.below(30_000) as u16),
                _ => seq.wrapping_add(2_001 + self.rng.below(8_000) as u16),
            };
            let mut d = real.to_vec();
            d[..2].copy_from_slice(&forged.to_be_bytes());
            if self.rng.below(3) == 0
                && let Ok(p) = t38::UdptlPacket::decode(real)
            {
                // A forged "bridge": a number a little ahead with a long run of made-up copies behind it.
                let copies = 4 + self.rng.below(60) as usize;
                d = t38::UdptlPacket {
                    seq: seq.wrapping_add(2 + self.rng.below(200) as u16),
                    primary: p.primary.clone(),
                    recovery: t38::RecoveryData::Secondary(vec![p.primary; copies]),
                }
                .encode();
            }
            self.order += 1;
            self.in_flight.push((at, self.order, d));
        }
        if !self.history.is_empty() && self.rng.unit() < a.replay {
            let old = self.history[self.rng.below(self.history.len() as u64) as usize].clone();
            self.order += 1;
            self.in_flight.push((at, self.order, old));
        }
    }

    fn due(&mut self, now: Duration) -> Vec<Vec<u8>> {
        self.in_flight.sort_by_key(|(t, o, _)| (*t, *o));
        let n = self
            .in_flight
            .iter()
            .take_while(|(t, _, _)| *t <= now)
            .count();
        self.in_flight.drain(..n).map(|(_, _, d)| d).collect()
    }

    fn next(&self) -> Option<Duration> {
        self.in_flight.iter().map(|(t, _, _)| *t).min()
    }
}

struct End {
    session: Session,
    tx: UdptlSender,
    rx: UdptlReceiver,
    outcome: Option<t30::Outcome>,
    pages: Vec<ReceivedPage>,
    sent: Vec<u32>,
    wake: Duration,
    last_rx: Option<Duration>,
    session_is_sender: bool,
}

impl End {
    fn new(cfg: Config, redundancy: u8) -> Self {
        let session_is_sender = cfg.calling;
        Self {
            session_is_sender,
            session: Session::new(cfg, Duration::ZERO),
            tx: UdptlSender::new(SenderConfig {
                recovery: ErrorRecovery::Redundancy {
                    depth: redundancy.into(),
                },
                max_datagram: 1400,
                ..SenderConfig::default()
            }),
            rx: UdptlReceiver::new(ReceiverConfig::default()),
            outcome: None,
            pages: Vec::new(),
            sent: Vec::new(),
            wake: Duration::ZERO,
            last_rx: None,
        }
    }

    fn drive(&mut self, now: Duration, link: &mut Link) {
        loop {
            match self.session.poll_output(now) {
                Output::Transmit(ifp) => {
                    if std::env::var_os("T30_TRACE").is_some() {
                        let what = match (&ifp.msg_type, ifp.fields().first()) {
                            (t38::IfpType::Data(dt), Some(f))
                                if f.field_type == t38::FieldType::HdlcData
                                    && *dt != t38::DataType::V21 =>
                            {
                                continue_trace_image(f.data.len())
                            }
                            (t38::IfpType::Data(_), Some(f))
                                if f.field_type == t38::FieldType::HdlcData =>
                            {
                                format!(
                                    "frame {}",
                                    t30::fcf::name(f.data.get(2).map_or(0, |b| b.reverse_bits()))
                                )
                            }
                            (t, f) => format!("{t:?} {:?}", f.map(|f| f.field_type)),
                        };
                        eprintln!(
                            "{:>10.3} {} {what}",
                            now.as_secs_f64(),
                            if self.session_is_sender {
                                "S>"
                            } else {
                                "   <R"
                            }
                        );
                    }
                    let d = self.tx.build(&ifp).expect("IFP fits");
                    link.send(now, d);
                }
                Output::Event(Event::PageReceived(p)) => self.pages.push(*p),
                Output::Event(Event::PageSent { index }) => self.sent.push(index),
                Output::Event(_) => {}
                Output::Timeout(t) => {
                    self.wake = t.unwrap_or(Duration::MAX);
                    return;
                }
                Output::Finished(o) => {
                    self.outcome = Some(o);
                    self.wake = Duration::MAX;
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, now: Duration, datagrams: Vec<Vec<u8>>, flush: bool) {
        if !datagrams.is_empty() {
            self.last_rx = Some(now);
        }
        for d in datagrams {
            let _ = self.rx.handle_datagram(&d);
        }
        if flush {
            self.rx.flush();
            self.last_rx = None;
        }
        while let Some(r) = self.rx.poll_ifp() {
            self.session.handle_ifp(now, Some(r.seq), &r.ifp);
        }
    }
}

/// What a simulated call gave.
pub struct Run {
    pub sender: t30::Outcome,
    pub receiver: t30::Outcome,
    /// Every page the receiver handed up, confirmed or not.
    pub received: Vec<ReceivedPage>,
    /// Pages the sender counts as delivered (it got MCF / RTP for them).
    pub confirmed: Vec<u32>,
    pub steps: u64,
}

impl Run {
    /// The pages the receiver confirmed, in order.
    pub fn confirmed_pages(&self) -> Vec<&ReceivedPage> {
        self.received.iter().filter(|p| p.confirmed).collect()
    }
}

/// Runs a call to its end, or panics after `max_sim` of simulated time (a hang).
pub fn run(
    sender: Config,
    receiver: Config,
    forward: LinkModel,
    backward: LinkModel,
    redundancy: u8,
    seed: u64,
) -> Run {
    run_cut(sender, receiver, forward, backward, redundancy, seed, None)
}

/// [`run`], except that with `cut_after` the call itself ends (both sides told `call_ended`, as a SIP
/// BYE tells them) once the receiver has confirmed that many pages.
#[allow(clippy::too_many_arguments)]
pub fn run_cut(
    sender: Config,
    receiver: Config,
    forward: LinkModel,
    backward: LinkModel,
    redundancy: u8,
    seed: u64,
    cut_after: Option<usize>,
) -> Run {
    let mut a = End::new(sender, redundancy);
    let mut b = End::new(receiver, redundancy);
    let mut ab = Link::new(forward, seed * 2 + 1);
    let mut ba = Link::new(backward, seed * 2 + 2);
    let max_sim = Duration::from_secs(900);
    let hold = Duration::from_millis(200);
    let mut now = Duration::ZERO;
    let mut steps = 0u64;
    loop {
        steps += 1;
        let to_b = ab.due(now);
        let flush_b = b.last_rx.is_some_and(|t| now >= t + hold);
        b.deliver(now, to_b, flush_b);
        let to_a = ba.due(now);
        let flush_a = a.last_rx.is_some_and(|t| now >= t + hold);
        a.deliver(now, to_a, flush_a);
        a.drive(now, &mut ab);
        b.drive(now, &mut ba);
        let confirmed = b.pages.iter().filter(|p| p.confirmed).count();
        if cut_after.is_some_and(|n| confirmed >= n) && b.outcome.is_none() {
            a.session.call_ended(now);
            b.session.call_ended(now);
            a.drive(now, &mut ab);
            b.drive(now, &mut ba);
        }
        if a.outcome.is_some() && b.outcome.is_some() {
            break;
        }
        let mut next = a.wake.min(b.wake);
        for t in [
            ab.next(),
            ba.next(),
            a.last_rx.map(|t| t + hold),
            b.last_rx.map(|t| t + hold),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        assert!(
            next > now || next == now && steps < 10_000_000,
            "no progress at {now:?}"
        );
        now = next.max(now);
        assert!(
            now < max_sim,
            "seed {seed}: the call hung (simulated time {now:?}, steps {steps})"
        );
        assert!(steps < 5_000_000, "seed {seed}: too many steps");
    }
    Run {
        sender: a.outcome.expect("sender outcome"),
        receiver: b.outcome.expect("receiver outcome"),
        received: b.pages,
        confirmed: a.sent,
        steps,
    }
}

fn continue_trace_image(len: usize) -> String {
    format!("image data {len}")
}

fn carries_image_data(datagram: &[u8]) -> bool {
    let Ok(p) = t38::UdptlPacket::decode(datagram) else {
        return false;
    };
    let Ok(ifp) = t38::Ifp::decode(&p.primary, t38::T38Version::V0) else {
        return false;
    };
    matches!(ifp.msg_type, t38::IfpType::Data(dt) if dt != t38::DataType::V21)
        && ifp
            .fields()
            .iter()
            .any(|f| f.field_type == t38::FieldType::HdlcData)
}

/// A page that looks like a business letter: text-like runs on a white page, from a seed.
pub fn letter(seed: u64, lines: u32, resolution: Resolution) -> Page {
    let width = 1728u32;
    let stride = t4::stride(width);
    let mut data = vec![0u8; stride * lines as usize];
    let mut rng = Rng::new(seed + 7);
    let mut y = 10usize;
    while y + 16 < lines as usize {
        // A line of "words": blocks of noise 8-16 pixels tall.
        let h = 8 + rng.below(8) as usize;
        let mut x = 80 + rng.below(40) as usize;
        while x + 64 < width as usize - 80 {
            let w = 16 + rng.below(64) as usize;
            for yy in y..y + h {
                for xx in x..x + w {
                    if (xx / 3 + yy / 4) % 3 == 0 || yy == y + h - 1 {
                        data[yy * stride + xx / 8] |= 0x80 >> (xx % 8);
                    }
                }
            }
            x += w + 8 + rng.below(16) as usize;
        }
        y += h + 6 + rng.below(10) as usize;
    }
    Page {
        width,
        height: lines,
        resolution,
        data,
    }
}

pub fn sender_config(pages: Vec<Page>) -> Config {
    let mut c = Config::new(Role::Send(pages), true);
    c.ident = "+1 555 0100".into();
    c
}

pub fn receiver_config() -> Config {
    let mut c = Config::new(Role::Receive, false);
    c.ident = "+1 555 0199".into();
    c
}
