//! Two engines on a simulated network, each the other's proxy (as `faxhub dev` runs two fax servers): a
//! clock that jumps to the next deadline or delivery, and a link with seeded latency, jitter (so
//! reordering), loss and duplication, as quinn-proto's `Pair` and str0m's netem. A failing seed is a
//! reproducible test.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::{Account, Command, Config, Engine, Event, Op, Output, SplitMix64, Transport};
use crate::message::Message;

/// The link's seeded randomness.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64(seed))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.next_u64() % n }
    }
}

/// How the network treats a message.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub latency: Duration,
    /// Extra delay drawn uniformly up to this: messages overtake each other.
    pub jitter: Duration,
    pub loss: f64,
    pub duplication: f64,
}

impl Link {
    pub const PERFECT: Link = Link {
        latency: Duration::from_millis(20),
        jitter: Duration::ZERO,
        loss: 0.0,
        duplication: 0.0,
    };
}

pub const A: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    5060,
);
pub const B: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    5060,
);

/// One side: its engine and every event it reported, with the time.
pub struct Node {
    pub engine: Engine,
    pub events: Vec<(Duration, Event)>,
    /// Messages it sent (parsed), with the time.
    pub sent: Vec<(Duration, Message)>,
}

impl Node {
    /// The result of the op's command, once reported.
    pub fn find(&self, f: impl Fn(&Event) -> bool) -> Option<&Event> {
        self.events.iter().map(|(_, e)| e).find(|e| f(e))
    }

    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    /// Requests of `method` it sent.
    pub fn sent_requests(&self, method: &str) -> usize {
        self.sent
            .iter()
            .filter(|(_, m)| m.method() == Some(method))
            .count()
    }
}

/// A message in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Duration,
    seq: u64,
    to_b: bool,
    bytes: Vec<u8>,
}

pub fn config(user: &str, peer: SocketAddr, transport: Transport) -> Config {
    let account = Account {
        proxy: peer,
        domain: peer.to_string(),
        user: user.into(),
        auth_user: user.into(),
        password: "secret".into(),
        expires: 300,
    };
    let mut c = Config::new(SocketAddr::from(([0, 0, 0, 0], 0)), account, "faxhub-test");
    c.transport = transport;
    c
}

pub struct Pair {
    pub now: Duration,
    pub a: Node,
    pub b: Node,
    pub link: Link,
    pub transport: Transport,
    rng: Rng,
    flights: BinaryHeap<Reverse<Flight>>,
    seq: u64,
}

impl Pair {
    /// A (user 15550101) and B (user 15550102); `seed` drives both engines and the link.
    pub fn new(seed: u64, link: Link, transport: Transport) -> Self {
        let node = |user, local, peer, seed| Node {
            engine: Engine::new(config(user, peer, transport), local, seed),
            events: Vec::new(),
            sent: Vec::new(),
        };
        Self {
            now: Duration::ZERO,
            a: node("15550101", A, B, seed.wrapping_mul(2)),
            b: node("15550102", B, A, seed.wrapping_mul(2) + 1),
            link,
            transport,
            rng: Rng::new(seed ^ 0x5EED),
            flights: BinaryHeap::new(),
            seq: 0,
        }
    }

    pub fn command_a(&mut self, c: Command) -> Op {
        self.a.engine.handle_command(self.now, c)
    }

    pub fn command_b(&mut self, c: Command) -> Op {
        self.b.engine.handle_command(self.now, c)
    }

    fn send(&mut self, from_a: bool, bytes: Vec<u8>) {
        let link = self.link;
        // A stream (TCP) neither loses, duplicates nor reorders.
        let lossy = self.transport == Transport::Udp;
        if lossy && self.rng.chance(link.loss) {
            return;
        }
        let copies = if lossy && self.rng.chance(link.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if lossy {
                Duration::from_micros(self.rng.below(link.jitter.as_micros() as u64))
            } else {
                Duration::ZERO
            };
            self.seq += 1;
            self.flights.push(Reverse(Flight {
                at: self.now + link.latency + jitter,
                seq: self.seq,
                to_b: from_a,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Drains both engines' outputs into the network and the event lists, then delivers what is due
    /// and runs timers that are due. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut busy = false;
        for from_a in [true, false] {
            loop {
                let node = if from_a { &mut self.a } else { &mut self.b };
                let Some(out) = node.engine.poll_output() else {
                    break;
                };
                busy = true;
                match out {
                    Output::Transmit(t) => {
                        assert_eq!(t.to, if from_a { B } else { A }, "sent to the peer");
                        assert_eq!(t.transport, self.transport);
                        let m = Message::parse(&t.bytes).expect("our own messages parse");
                        node.sent.push((self.now, m));
                        self.send(from_a, t.bytes);
                    }
                    Output::Event(e) => node.events.push((self.now, e)),
                }
            }
        }
        while let Some(Reverse(f)) = self.flights.peek()
            && f.at <= self.now
        {
            let Some(Reverse(f)) = self.flights.pop() else {
                break;
            };
            busy = true;
            let (node, from) = if f.to_b {
                (&mut self.b, A)
            } else {
                (&mut self.a, B)
            };
            match self.transport {
                Transport::Udp => node.engine.handle_datagram(self.now, from, &f.bytes),
                Transport::Tcp => {
                    let m = Message::parse(&f.bytes).expect("framed");
                    node.engine.handle_stream_message(self.now, from, m);
                }
            }
        }
        for node in [&mut self.a, &mut self.b] {
            if node.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                node.engine.handle_timeout(self.now);
                busy = true;
            }
        }
        busy
    }

    /// The next time something happens: a delivery or a timer.
    fn next_time(&self) -> Option<Duration> {
        let flight = self.flights.peek().map(|Reverse(f)| f.at);
        [
            flight,
            self.a.engine.poll_timeout(),
            self.b.engine.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps, jumping the clock, until `done` holds or nothing is left to happen before `limit` from
    /// now. Returns whether `done` held.
    pub fn drive_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            while self.step() {}
            if done(self) {
                return true;
            }
            match self.next_time() {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => return false,
            }
        }
    }

    /// Runs until nothing is left to do (or `limit` passes).
    pub fn drive(&mut self, limit: Duration) {
        self.drive_until(limit, |_| false);
    }
}
