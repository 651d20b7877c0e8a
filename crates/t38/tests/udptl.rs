//! UDPTL framing, the sender's redundancy / FEC / size rules and the
//! receiver's loss, duplication, reordering and wrap handling.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::{hex, rows, to_hex};
use t38::{
    DataType, Error, ErrorRecovery, Field, FieldType, Ifp, Indicator, ReceiverConfig,
    ReceiverStats, RecoveryData, SenderConfig, T38Version, UdptlPacket, UdptlReceiver, UdptlSender,
};

/// Builds the packet a golden row describes, checks its octets, and
/// decodes the octets back to the same packet.
fn check(packet: &UdptlPacket, octets: &[u8]) {
    assert_eq!(to_hex(&packet.encode()), to_hex(octets), "{packet:?}");
    assert_eq!(&UdptlPacket::decode(octets).unwrap(), packet);
}

#[test]
fn golden_datagrams() {
    let table = rows(include_str!("data/udptl_golden.txt"));
    assert_eq!(table.len(), 7);
    for row in table {
        let seq = u16::from_str_radix(&row[0], 16).unwrap();
        let mut rec = row[2].split_whitespace();
        let recovery = match rec.next().unwrap() {
            "red" => RecoveryData::Secondary(rec.map(hex).collect()),
            "fec" => RecoveryData::Fec {
                npackets: rec.next().unwrap().parse().unwrap(),
                data: rec.map(hex).collect(),
            },
            other => panic!("bad recovery {other}"),
        };
        let packet = UdptlPacket {
            seq,
            primary: hex(&row[1]),
            recovery,
        };
        check(&packet, &hex(&row[3]));
    }
}

#[test]
fn malformed_datagrams() {
    let cases: &[(&str, Error)] = &[
        ("", Error::Truncated),
        ("00", Error::Truncated),
        ("0001", Error::Truncated),
        ("0001 02 02", Error::Truncated),
        ("0001 01 02", Error::Truncated),
        ("0001 00 00 00", Error::EmptyIfp),
        ("0001 01 02 00 00 ff", Error::TrailingOctets(1)),
        ("0001 01 02 00 05 01 02", Error::Truncated),
        ("0001 01 02 80 01 ff 00", Error::BadFec),
        ("0001 01 02 80 00 00", Error::BadFec),
        ("0001 01 02 80 05 0000000001 00", Error::BadFec),
        ("0001 01 02 00 c0", Error::BadLength),
    ];
    for (input, expect) in cases {
        assert_eq!(
            UdptlPacket::decode(&hex(input)).as_ref(),
            Err(expect),
            "{input}"
        );
    }
}

fn ifps(n: usize) -> Vec<Ifp> {
    (0..n)
        .map(|i| {
            Ifp::data(
                DataType::V17_14400,
                vec![Field::new(
                    FieldType::T4NonEcmData,
                    vec![i as u8; 1 + i % 7],
                )],
            )
        })
        .collect()
}

fn sender(recovery: ErrorRecovery, max_datagram: usize, first_seq: u16) -> UdptlSender {
    UdptlSender::new(SenderConfig {
        version: T38Version::V2,
        recovery,
        max_datagram,
        first_seq,
    })
}

fn receiver(reorder_window: u16) -> UdptlReceiver {
    UdptlReceiver::new(ReceiverConfig {
        version: T38Version::V2,
        reorder_window,
        ..ReceiverConfig::default()
    })
}

fn drain(r: &mut UdptlReceiver) -> Vec<(u16, Ifp, bool, u64)> {
    std::iter::from_fn(|| r.poll_ifp())
        .map(|x| (x.seq, x.ifp, x.recovered, x.lost_before))
        .collect()
}

#[test]
fn delivered_ifps_report_the_hole_before_them() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 1 }, 400, 0);
    let mut r = receiver(1);
    let grams: Vec<_> = ifps(8).iter().map(|i| s.build(i).unwrap()).collect();
    // 1 is recovered from 2; 4 and 5 are beyond depth 1 (only 5 is in 6).
    for n in [0, 2, 3, 6, 7] {
        r.handle_datagram(&grams[n]).unwrap();
    }
    let holes: Vec<(u16, u64)> = std::iter::from_fn(|| r.poll_ifp())
        .map(|x| (x.seq, x.lost_before))
        .collect();
    assert_eq!(
        holes,
        [(0, 0), (1, 0), (2, 0), (3, 0), (5, 1), (6, 0), (7, 0)]
    );
}

#[test]
fn sender_repeats_previous_ifps_newest_first_up_to_depth() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 2 }, 1000, 10);
    let sent = ifps(4);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    assert_eq!(s.next_seq(), 14);
    let enc = |i: usize| sent[i].encode(T38Version::V2).unwrap();
    for (n, g) in grams.iter().enumerate() {
        let p = UdptlPacket::decode(g).unwrap();
        assert_eq!(p.seq, 10 + n as u16);
        assert_eq!(p.primary, enc(n));
        let expect: Vec<_> = (0..n).rev().take(2).map(enc).collect();
        assert_eq!(p.recovery, RecoveryData::Secondary(expect));
    }
}

#[test]
fn sender_drops_redundancy_that_does_not_fit() {
    let big = |b: u8| {
        Ifp::data(
            DataType::V21,
            vec![Field::new(FieldType::HdlcData, vec![b; 40])],
        )
    };
    // Primary datagram: 2 + 1 + 45 + 1 + 1 = 50 octets; each secondary adds 46.
    let mut s = sender(ErrorRecovery::Redundancy { depth: 3 }, 50 + 46 + 45, 0);
    for b in 0..3 {
        s.build(&big(b)).unwrap();
    }
    let g = s.build(&big(3)).unwrap();
    assert_eq!(g.len(), 96);
    match UdptlPacket::decode(&g).unwrap().recovery {
        RecoveryData::Secondary(list) => {
            assert_eq!(list, vec![big(2).encode(T38Version::V2).unwrap()])
        }
        other => panic!("{other:?}"),
    }
    let mut tiny = sender(ErrorRecovery::Redundancy { depth: 3 }, 49, 0);
    assert_eq!(
        tiny.build(&big(0)),
        Err(Error::DatagramTooLarge { size: 50, max: 49 })
    );
    assert_eq!(
        tiny.next_seq(),
        0,
        "a refused IFP consumes no sequence number"
    );
}

#[test]
fn depth_zero_sends_an_empty_secondary_list() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 0 }, 400, 0);
    s.build(&Ifp::indicator(Indicator::Cng)).unwrap();
    let g = s.build(&Ifp::indicator(Indicator::Ced)).unwrap();
    assert_eq!(g, hex("0001 01 04 00 00"));
}

#[test]
fn fec_winds_up_then_covers_span_times_entries() {
    // span 2, entries 2: full shape from the 5th datagram (index 4).
    let mut s = sender(
        ErrorRecovery::Fec {
            span: 2,
            entries: 2,
        },
        1000,
        0,
    );
    let sent = ifps(6);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    let shapes: Vec<(u32, usize)> = grams
        .iter()
        .map(|g| match UdptlPacket::decode(g).unwrap().recovery {
            RecoveryData::Fec { npackets, data } => (npackets, data.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    // Index n < 4: entries = n / 2, span 0 while n < 2 (SpanDSP's wind-up).
    assert_eq!(shapes, [(0, 0), (0, 0), (2, 1), (2, 1), (2, 2), (2, 2)]);
    // Datagram 5, entry 1 covers IFPs 5 + 1 - 4 + {0, 2} = 2 and 4.
    let enc = |i: usize| sent[i].encode(T38Version::V2).unwrap();
    let RecoveryData::Fec { data, .. } = UdptlPacket::decode(&grams[5]).unwrap().recovery else {
        unreachable!()
    };
    let (a, b) = (enc(2), enc(4));
    let mut x = vec![0u8; a.len().max(b.len())];
    for (i, v) in a.iter().enumerate() {
        x[i] ^= v;
    }
    for (i, v) in b.iter().enumerate() {
        x[i] ^= v;
    }
    assert_eq!(data[1], x);
}

#[test]
fn receiver_in_order_delivers_everything_once() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 3 }, 400, 0);
    let mut r = receiver(4);
    let sent = ifps(20);
    for i in &sent {
        r.handle_datagram(&s.build(i).unwrap()).unwrap();
    }
    let got = drain(&mut r);
    assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), sent);
    assert!(got.iter().all(|g| !g.2));
    assert_eq!(
        *r.stats(),
        ReceiverStats {
            received: 20,
            delivered: 20,
            ..Default::default()
        }
    );
}

#[test]
fn receiver_recovers_losses_from_redundancy() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 2 }, 400, 0);
    let mut r = receiver(1);
    let sent = ifps(10);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    for (n, g) in grams.iter().enumerate() {
        // Lose 2, 3 (recoverable from 4), then 6, 7, 8 (8 and 7 from 9; 6 out of reach).
        if ![2, 3, 6, 7, 8].contains(&n) {
            r.handle_datagram(g).unwrap();
        }
    }
    // 9 jumped past a gap its redundancy does not bridge: it waits for a datagram after it, or for
    // the far end to go quiet (flush), before it and its copies are believed.
    assert_eq!(drain(&mut r).len(), 6);
    r.flush();
    let mut got = (0..6u16)
        .map(|i| (i, sent[usize::from(i)].clone(), [2, 3].contains(&i), 0))
        .collect::<Vec<_>>();
    got.extend(drain(&mut r));
    let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
    let recovered: Vec<u16> = got.iter().filter(|g| g.2).map(|g| g.0).collect();
    assert_eq!(recovered, [2, 3, 7, 8]);
    for g in &got {
        assert_eq!(g.1, sent[g.0 as usize]);
    }
    let st = r.stats();
    assert_eq!((st.delivered, st.recovered, st.lost), (9, 4, 1));
    // 6 arriving now is late; 4 again is a duplicate.
    r.handle_datagram(&grams[6]).unwrap();
    r.handle_datagram(&grams[4]).unwrap();
    assert_eq!((r.stats().late, r.stats().duplicates), (1, 1));
    assert!(r.poll_ifp().is_none());
}

#[test]
fn receiver_reorders_within_the_window() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 0 }, 400, 0);
    let mut r = receiver(3);
    let sent = ifps(8);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    for n in [0, 2, 3, 1, 5, 6, 4, 7, 7] {
        r.handle_datagram(&grams[n]).unwrap();
    }
    let got = drain(&mut r);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(r.stats().duplicates, 1);
    assert_eq!(r.stats().lost, 0);
}

#[test]
fn receiver_holds_after_a_gap_until_window_or_flush() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 0 }, 400, 0);
    let mut r = receiver(3);
    let grams: Vec<_> = ifps(5).iter().map(|i| s.build(i).unwrap()).collect();
    r.handle_datagram(&grams[0]).unwrap();
    r.handle_datagram(&grams[2]).unwrap();
    r.handle_datagram(&grams[3]).unwrap();
    assert_eq!(drain(&mut r).len(), 1, "2 and 3 wait for 1");
    r.handle_datagram(&grams[4]).unwrap();
    assert_eq!(
        drain(&mut r).iter().map(|g| g.0).collect::<Vec<_>>(),
        [2, 3, 4],
        "4 is 3 past the gap"
    );
    assert_eq!(r.stats().lost, 1);

    let mut r = receiver(10);
    r.handle_datagram(&grams[0]).unwrap();
    r.handle_datagram(&grams[3]).unwrap();
    drain(&mut r);
    r.flush();
    assert_eq!(drain(&mut r).iter().map(|g| g.0).collect::<Vec<_>>(), [3]);
    assert_eq!(r.stats().lost, 2);
}

#[test]
fn receiver_follows_sequence_wrap() {
    let mut s = sender(ErrorRecovery::Redundancy { depth: 1 }, 400, 65533);
    let mut r = receiver(2);
    let sent = ifps(6);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    for (n, g) in grams.iter().enumerate() {
        if n != 3 {
            r.handle_datagram(g).unwrap();
        }
    }
    let got = drain(&mut r);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        [65533, 65534, 65535, 0, 1, 2]
    );
    assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), sent);
    assert_eq!(r.stats().recovered, 1);
}

fn bare(seq: u16, ifp: u8) -> Vec<u8> {
    UdptlPacket {
        seq,
        primary: vec![ifp],
        recovery: RecoveryData::Secondary(vec![]),
    }
    .encode()
}

#[test]
fn receiver_resynchronises_when_later_datagrams_confirm_a_jump() {
    let mut r = receiver(2);
    // 0x02 .. 0x08: indicator IFPs (no-signal, cng, ced, v21-preamble).
    r.handle_datagram(&bare(100, 0x02)).unwrap();
    for (seq, ifp) in [(40000, 0x04), (40001, 0x06), (40002, 0x08)] {
        r.handle_datagram(&bare(seq, ifp)).unwrap();
    }
    let got = drain(&mut r);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        [100, 40000, 40001, 40002]
    );
    let st = r.stats();
    assert_eq!((st.restarts, st.lost, st.suspect), (1, 0, 3));
    // The new numbering goes on as a stream.
    r.handle_datagram(&bare(40003, 0x02)).unwrap();
    assert_eq!(drain(&mut r).len(), 1);
}

/// One datagram far ahead (a spoofed one, or a stray) used to become the stream: the receiver declared
/// thousands of IFPs lost and took the real datagrams that followed for old ones.
#[test]
fn one_datagram_far_ahead_or_behind_does_not_move_the_stream() {
    for jump in [4217u16, 30_000, 65_000, 2_001] {
        let mut r = receiver(2);
        let mut s = sender(ErrorRecovery::Redundancy { depth: 2 }, 400, 0);
        let sent = ifps(20);
        for (i, ifp) in sent.iter().enumerate() {
            r.handle_datagram(&s.build(ifp).unwrap()).unwrap();
            if i == 7 {
                // The forger copies the datagram just seen, with another number.
                r.handle_datagram(&bare((i as u16).wrapping_add(jump), 0x04))
                    .unwrap();
            }
        }
        r.flush();
        let got = drain(&mut r);
        assert_eq!(
            got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
            sent,
            "jump {jump}"
        );
        let st = r.stats();
        // Far ahead it is suspect; behind, within what the receiver remembers, it is a duplicate.
        assert_eq!((st.restarts, st.lost), (0, 0), "jump {jump}");
        assert_eq!(st.suspect + st.duplicates, 1, "jump {jump}");
        assert!(got.iter().all(|g| g.3 == 0), "no hole reported");
    }
}

/// A forged datagram inside the window, for a number not yet received, claims other bytes than the real
/// one. It jumped ahead of the stream, so it is only tentative: the real datagram for that number, in the
/// stream, replaces it, with or without redundancy.
#[test]
fn a_forged_number_ahead_is_replaced_by_the_real_one() {
    let sent = ifps(10);
    let forged = Ifp::decode(&[0x08], T38Version::V2).unwrap();
    for depth in [2, 0] {
        let mut r = receiver(4);
        let mut s = sender(ErrorRecovery::Redundancy { depth }, 400, 0);
        let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
        for g in &grams[..3] {
            r.handle_datagram(g).unwrap();
        }
        // The forger claims seq 5 before the real one comes.
        r.handle_datagram(&bare(5, 0x08)).unwrap();
        for g in &grams[3..] {
            r.handle_datagram(g).unwrap();
        }
        r.flush();
        let got = drain(&mut r);
        assert!(
            got.iter().all(|g| g.1 != forged),
            "depth {depth}: the forged IFP was delivered"
        );
        assert_eq!(
            got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
            sent,
            "depth {depth}"
        );
        assert_eq!(r.stats().conflicts, 1, "depth {depth}");
    }
}

/// Two versions of a number held behind a gap (a forger that guessed a number just ahead and sent it ten
/// times before the real one): the copies that agree decide, each datagram counting once however often it
/// is repeated, and a tie is a loss, never the forger's bytes.
#[test]
fn conflicting_copies_are_decided_by_datagrams_not_repeats() {
    let sent = ifps(10);
    let forged = Ifp::decode(&[0x08], T38Version::V2).unwrap();
    for depth in [2, 0] {
        let mut r = receiver(4);
        let mut s = sender(ErrorRecovery::Redundancy { depth }, 400, 0);
        let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
        r.handle_datagram(&grams[0]).unwrap();
        for _ in 0..10 {
            r.handle_datagram(&bare(2, 0x08)).unwrap();
        }
        r.handle_datagram(&grams[2]).unwrap();
        r.handle_datagram(&grams[1]).unwrap();
        for g in &grams[3..] {
            r.handle_datagram(g).unwrap();
        }
        r.flush();
        let got = drain(&mut r);
        assert!(
            got.iter().all(|g| g.1 != forged),
            "depth {depth}: the forged IFP was delivered"
        );
        assert_eq!(r.stats().conflicts, 1, "depth {depth}");
        if depth > 0 {
            // The real seq 2 came with copies reaching back into the stream: it replaced the forgery.
            assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), sent);
        } else {
            // One datagram numbered 2 against another: the number is lost, and the T.30 layer sees it.
            assert_eq!(
                got.iter().map(|g| g.0).collect::<Vec<_>>(),
                [0, 1, 3, 4, 5, 6, 7, 8, 9]
            );
            assert_eq!(got[2].3, 1, "the hole before seq 3 is reported");
        }
    }
}

/// A forged datagram far into the window, claiming a long run of redundancy copies to "bridge" the gap to
/// the stream, neither enters it nor puts its copies in place of the real IFPs.
#[test]
fn a_forged_bridge_of_copies_does_not_enter_the_stream() {
    let sent = ifps(40);
    let mut r = receiver(4);
    let mut s = sender(ErrorRecovery::Redundancy { depth: 2 }, 1400, 0);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    for g in &grams[..5] {
        r.handle_datagram(g).unwrap();
    }
    // Numbered 30, with 29 copies of an indicator for 29 down to 1.
    let forged = UdptlPacket {
        seq: 30,
        primary: vec![0x08],
        recovery: RecoveryData::Secondary(vec![vec![0x08]; 29]),
    };
    r.handle_datagram(&forged.encode()).unwrap();
    for g in &grams[5..] {
        r.handle_datagram(g).unwrap();
    }
    r.flush();
    let got = drain(&mut r);
    assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), sent);
    assert!(got.iter().all(|g| g.3 == 0), "no hole");
}

#[test]
fn receiver_repairs_from_fec() {
    let mut s = sender(
        ErrorRecovery::Fec {
            span: 3,
            entries: 1,
        },
        1000,
        0,
    );
    let mut r = receiver(4);
    let sent = ifps(12);
    let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
    // Datagram n carries the XOR of n-3, n-2, n-1: losing 5 is repaired by 6
    // (covers 3, 4, 5).
    for (n, g) in grams.iter().enumerate() {
        if n != 5 {
            r.handle_datagram(g).unwrap();
        }
    }
    r.flush();
    let got = drain(&mut r);
    assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), sent);
    assert_eq!(
        got.iter().filter(|g| g.2).map(|g| g.0).collect::<Vec<_>>(),
        [5]
    );
    assert_eq!(r.stats().recovered, 1);
}

#[test]
fn malformed_datagram_is_counted_and_harmless() {
    let mut r = receiver(2);
    assert_eq!(r.handle_datagram(&[0, 1, 5]), Err(Error::Truncated));
    // A datagram whose IFP is not valid PER is received but not delivered.
    let bad = UdptlPacket {
        seq: 0,
        primary: vec![0x52],
        recovery: RecoveryData::Secondary(vec![]),
    };
    r.handle_datagram(&bad.encode()).unwrap();
    assert!(r.poll_ifp().is_none());
    let st = r.stats();
    assert_eq!(
        (st.malformed, st.received, st.invalid_ifp, st.delivered),
        (1, 1, 1, 0)
    );
}
