//! The SIP engine against a hostile network: the fuzz input drives a peer that answers the engine's
//! requests with any status (challenges, provisional, success, failure, with or without tags), sends it
//! requests of its own (INVITE, BYE, re-INVITE, CANCEL, OPTIONS), raw bytes, and lets time jump. Nothing
//! may panic, once the due timers are handled the next deadline lies ahead, and every datagram the
//! engine sends parses as SIP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::engine::{Account, Command, Config, Event, Output};
use sip::{Engine, Message};
use std::net::SocketAddr;
use std::time::Duration;

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const T38: &[u8] = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n";
const CODES: [u16; 15] = [100, 180, 183, 200, 202, 401, 407, 403, 404, 408, 481, 486, 488, 491, 503];

/// Bytes taken from the front of the input, zero once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        *b
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// A request from the peer into the dialog of `to` (a request the engine sent or received), or out of
/// the blue.
fn peer_request(method: &str, seen: Option<&Message>, cseq: u32, body: bool) -> Message {
    let mut m = Message::request(method, "sip:fax@127.0.0.1:5060");
    m.add_header("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpeer".to_owned() + &cseq.to_string());
    let call_id = seen.and_then(Message::call_id).unwrap_or("peer-call").to_owned();
    let (from, to) = match seen {
        Some(s) => (
            s.header("To").unwrap_or("<sip:peer@127.0.0.1>").to_owned(),
            s.header("From").unwrap_or("<sip:fax@127.0.0.1>").to_owned(),
        ),
        None => ("<sip:peer@127.0.0.1>;tag=p1".to_owned(), "<sip:fax@127.0.0.1>".to_owned()),
    };
    m.add_header("From", from);
    m.add_header("To", to);
    m.add_header("Call-ID", call_id);
    m.add_header("CSeq", format!("{cseq} {method}"));
    m.add_header("Contact", "<sip:peer@127.0.0.1:5070>");
    m.add_header("Max-Forwards", "70");
    if body {
        m.add_header("Content-Type", "application/sdp");
        m.body = SDP.to_vec();
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let proxy: SocketAddr = "127.0.0.1:5070".parse().expect("address");
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("address");
    let account = Account {
        proxy,
        domain: "example.test".into(),
        user: "fax".into(),
        auth_user: "fax".into(),
        password: "secret".into(),
        expires: 300,
    };
    let mut config = Config::new(local, account, "fuzz");
    if input.byte() & 1 == 1 {
        config.keepalive = Some(Duration::from_secs(30));
    }
    let seed = u64::from(input.byte());
    let mut engine = Engine::new(config, local, seed);
    let mut now = Duration::ZERO;
    engine.handle_command(now, Command::Register);
    engine.handle_command(
        now,
        Command::Invite { to: "+15550100".into(), sdp: SDP.to_vec(), t38: Some(T38.to_vec()) },
    );
    // What the engine sent, and the calls it was offered.
    let mut sent: Vec<Message> = Vec::new();
    let mut incoming: Vec<String> = Vec::new();
    let mut cseq = 1u32;
    for _ in 0..64 {
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let m = Message::parse(&t.bytes).expect("the engine sends SIP that parses");
                    sent.push(m);
                    if sent.len() > 32 {
                        sent.remove(0);
                    }
                }
                Output::Event(Event::Incoming(call)) => incoming.push(call.call_id),
                Output::Event(_) => {}
            }
        }
        if input.0.is_empty() {
            break;
        }
        let action = input.byte();
        let pick = usize::from(input.byte());
        match action % 8 {
            // Answer one of the engine's requests.
            0 | 1 | 2 => {
                let Some(req) = sent.iter().filter(|m| m.method().is_some()).nth(pick % 8).cloned() else {
                    continue;
                };
                let code = CODES[usize::from(input.byte()) % CODES.len()];
                let tag = (input.byte() & 1 == 1).then_some("peer-tag");
                let mut resp = Message::response_to(&req, code, "Fuzz", tag);
                match code {
                    401 => resp.add_header("WWW-Authenticate", "Digest realm=\"example.test\", nonce=\"n1\", qop=\"auth\""),
                    407 => resp.add_header("Proxy-Authenticate", "Digest realm=\"example.test\", nonce=\"n2\""),
                    200 if req.method() == Some("REGISTER") => resp.add_header("Expires", "60"),
                    200 | 183 if req.method() == Some("INVITE") => {
                        resp.add_header("Contact", "<sip:peer@127.0.0.1:5070>");
                        resp.add_header("Content-Type", "application/sdp");
                        resp.body = if input.byte() & 1 == 1 { T38.to_vec() } else { SDP.to_vec() };
                    }
                    _ => {}
                }
                engine.handle_datagram(now, proxy, &resp.to_bytes());
            }
            // A request from the peer, in a dialog it has seen or out of the blue.
            3 | 4 => {
                let method = ["INVITE", "BYE", "CANCEL", "OPTIONS", "UPDATE", "ACK", "INFO"][pick % 7];
                let seen = sent.iter().rev().nth(usize::from(input.byte()) % 4);
                cseq = cseq.wrapping_add(u32::from(input.byte() % 3));
                let req = peer_request(method, seen.filter(|_| pick & 8 == 8), cseq, method == "INVITE");
                engine.handle_datagram(now, proxy, &req.to_bytes());
            }
            // Accept or refuse a call offered.
            5 => {
                if let Some(call_id) = incoming.pop() {
                    let command = if pick & 1 == 0 {
                        Command::Accept { call_id, sdp: SDP.to_vec() }
                    } else {
                        Command::Reject { call_id, code: 486, reason: "Busy Here".into() }
                    };
                    engine.handle_command(now, command);
                }
            }
            // Raw bytes from anywhere.
            6 => {
                let len = usize::from(input.byte());
                let bytes = input.take(len).to_vec();
                let from = if pick & 1 == 0 { proxy } else { "127.0.0.1:9".parse().expect("address") };
                engine.handle_datagram(now, from, &bytes);
            }
            // Time jumps: to the next deadline, or by up to 64 s.
            _ => {
                now = match engine.poll_timeout() {
                    Some(d) if pick & 1 == 0 && d > now => d,
                    _ => now + Duration::from_millis(u64::from(input.byte()) * 250),
                };
                engine.handle_timeout(now);
                // Every timer due has been handled: the next deadline lies ahead.
                if let Some(deadline) = engine.poll_timeout() {
                    assert!(deadline > now, "deadline {deadline:?} not after {now:?}");
                }
            }
        }
    }
});
