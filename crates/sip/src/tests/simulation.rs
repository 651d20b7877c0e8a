//! Whole calls between two engines over a simulated network, for thousands of seeds: both ends must
//! agree on every step of the call whatever the network loses, duplicates or reorders.

use std::time::Duration;

use crate::engine::{CallEvent, Command, Event, Transport};
use crate::tests::pair::{Link, Pair};
use crate::tests::t38;

const MINUTE: Duration = Duration::from_secs(60);

/// A lossy network: 10 % loss, 5 % duplication, 20 to 220 ms of delay (so reordering).
const LOSSY: Link = Link {
    latency: Duration::from_millis(20),
    jitter: Duration::from_millis(200),
    loss: 0.10,
    duplication: 0.05,
};

fn is_incoming(e: &Event) -> bool {
    matches!(e, Event::Incoming(_))
}

/// A calls B with T.38, B answers, A re-INVITEs with a new T.38 port, A hangs up; then every
/// transaction runs out. Checks that both ends saw each step exactly once and agree on the SDPs.
fn full_call(seed: u64, link: Link, transport: Transport) {
    let mut p = Pair::new(seed, link, transport);
    let invite = p.command_a(Command::Invite {
        to: "15550102".into(),
        sdp: t38(40000, 1),
        t38: None,
    });
    assert!(
        p.drive_until(MINUTE, |p| p.b.find(is_incoming).is_some()),
        "seed {seed}: B hears the INVITE"
    );
    let Some(Event::Incoming(inc)) = p.b.find(is_incoming).cloned() else {
        unreachable!()
    };
    assert_eq!(inc.to_user, "15550102", "seed {seed}");
    assert_eq!(inc.from_user, "15550101", "seed {seed}");
    assert_eq!(
        inc.offer.and_then(|o| o.t38()).map(|t| t.0.port()),
        Some(40000)
    );
    let call_id = inc.call_id;
    let accept = p.command_b(Command::Accept {
        call_id: call_id.clone(),
        sdp: t38(41000, 1),
    });
    let established =
        |op| move |e: &Event| matches!(e, Event::Established { op: o, .. } if *o == op);
    assert!(
        p.drive_until(MINUTE, |p| p.a.find(established(invite)).is_some()),
        "seed {seed}: A hears the answer"
    );
    let Some(Event::Established {
        result,
        call_id: a_call,
        ..
    }) = p.a.find(established(invite))
    else {
        unreachable!()
    };
    assert_eq!(a_call, &call_id);
    let answer = result
        .as_ref()
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(answer.t38().map(|t| t.0.port()), Some(41000), "seed {seed}");
    let Some(Event::Established {
        result: Ok(offer), ..
    }) = p.b.find(established(accept))
    else {
        panic!("seed {seed}: B's call is up")
    };
    assert_eq!(offer.t38().map(|t| t.0.port()), Some(40000));

    let reinvite = p.command_a(Command::ReInvite {
        call_id: call_id.clone(),
        sdp: t38(40002, 2),
    });
    let answered = |e: &Event| matches!(e, Event::Answered { op, .. } if *op == reinvite);
    assert!(
        p.drive_until(MINUTE, |p| p.a.find(answered).is_some()),
        "seed {seed}: the re-INVITE is answered"
    );
    let Some(Event::Answered {
        result: Ok(again), ..
    }) = p.a.find(answered)
    else {
        panic!("seed {seed}: {:?}", p.a.find(answered))
    };
    assert_eq!(again.t38().map(|t| t.0.port()), Some(41000), "seed {seed}");

    let bye = p.command_a(Command::Bye {
        call_id: call_id.clone(),
    });
    let b_bye = |e: &Event| {
        matches!(
            e,
            Event::Call {
                event: CallEvent::Bye,
                ..
            }
        )
    };
    let hung_up = |e: &Event| *e == Event::HungUp { op: bye };
    assert!(
        p.drive_until(MINUTE, |p| p.a.find(hung_up).is_some()
            && p.b.find(b_bye).is_some()),
        "seed {seed}: both ends hang up"
    );
    p.drive(5 * MINUTE);
    assert!(p.a.engine.is_idle(), "seed {seed}: {:?}", p.a.engine);
    assert!(p.b.engine.is_idle(), "seed {seed}: {:?}", p.b.engine);
    assert_eq!(p.a.engine.poll_timeout(), None, "seed {seed}");
    assert_eq!(p.b.engine.poll_timeout(), None, "seed {seed}");

    // Each end saw each step once, whatever was retransmitted or duplicated.
    assert_eq!(p.b.count(is_incoming), 1, "seed {seed}: {:?}", p.b.events);
    let reinvites: Vec<_> =
        p.b.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Call {
                    event: CallEvent::ReInvite { sdp, refresh },
                    ..
                } => Some((sdp, refresh)),
                _ => None,
            })
            .collect();
    assert_eq!(reinvites.len(), 1, "seed {seed}: {:?}", p.b.events);
    let (sdp, refresh) = reinvites[0];
    assert_eq!(
        sdp.as_ref().and_then(|s| s.t38()).map(|t| t.0.port()),
        Some(40002)
    );
    assert!(*refresh, "T.38 to T.38 is a refresh");
    assert_eq!(p.b.count(b_bye), 1, "seed {seed}");
    assert_eq!(p.a.events.len(), 3, "seed {seed}: {:?}", p.a.events);
    assert_eq!(p.b.events.len(), 4, "seed {seed}: {:?}", p.b.events);
    // A's requests in the dialog (ACKs aside, which repeat the CSeq of the 2xx they answer) have
    // rising CSeq numbers, retransmissions repeating theirs.
    let cseqs: Vec<_> =
        p.a.sent
            .iter()
            .filter(|(_, m)| m.method().is_some_and(|m| m != "ACK"))
            .filter_map(|(_, m)| m.cseq())
            .collect();
    assert!(
        cseqs.windows(2).all(|w| w[0].0 <= w[1].0),
        "seed {seed}: {cseqs:?}"
    );
}

#[test]
fn a_full_call_on_a_perfect_network_sends_each_message_once() {
    let mut p = Pair::new(1, Link::PERFECT, Transport::Udp);
    full_call(1, Link::PERFECT, Transport::Udp);
    // And its traffic, message by message.
    let invite = p.command_a(Command::Invite {
        to: "15550102".into(),
        sdp: t38(40000, 1),
        t38: None,
    });
    p.drive_until(MINUTE, |p| p.b.find(is_incoming).is_some());
    let Some(Event::Incoming(inc)) = p.b.find(is_incoming).cloned() else {
        unreachable!()
    };
    p.command_b(Command::Accept {
        call_id: inc.call_id.clone(),
        sdp: t38(41000, 1),
    });
    p.drive_until(MINUTE, |p| {
        p.a.find(|e| matches!(e, Event::Established { op, .. } if *op == invite))
            .is_some()
    });
    p.drive(MINUTE);
    assert_eq!(
        [p.a.sent_requests("INVITE"), p.a.sent_requests("ACK")],
        [1, 1]
    );
    let b_codes: Vec<_> = p.b.sent.iter().filter_map(|(_, m)| m.code()).collect();
    assert_eq!(b_codes, [100, 200]);
}

#[test]
fn two_thousand_full_calls_over_a_lossy_network() {
    for seed in 0..2000 {
        full_call(seed, LOSSY, Transport::Udp);
    }
}

#[test]
fn full_calls_over_tcp_are_never_retransmitted() {
    for seed in 0..50 {
        full_call(seed, LOSSY, Transport::Tcp);
        let mut p = Pair::new(seed, LOSSY, Transport::Tcp);
        p.command_a(Command::Invite {
            to: "15550102".into(),
            sdp: t38(40000, 1),
            t38: None,
        });
        p.drive(MINUTE);
        assert_eq!(p.a.sent_requests("INVITE"), 1, "seed {seed}");
    }
}
