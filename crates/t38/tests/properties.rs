//! Property tests: codec identity, never panicking on arbitrary bytes, and
//! exact in-order delivery over a lossy, duplicating, reordering link.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use t38::{
    DataType, Error, ErrorRecovery, Field, FieldType, Ifp, IfpType, Indicator, ReceiverConfig,
    SenderConfig, T38Version, UdptlPacket, UdptlReceiver, UdptlSender,
};

fn version() -> impl Strategy<Value = T38Version> {
    prop::sample::select(T38Version::ALL.to_vec())
}

fn field() -> impl Strategy<Value = Field> {
    (
        prop::sample::select(FieldType::ALL),
        prop_oneof![
            Just(Vec::new()),
            prop::collection::vec(any::<u8>(), 1..40),
            prop::collection::vec(any::<u8>(), 120..300),
        ],
    )
        .prop_map(|(t, d)| Field::new(t, d))
}

fn ifp() -> impl Strategy<Value = Ifp> {
    let msg = prop_oneof![
        prop::sample::select(Indicator::ALL).prop_map(IfpType::Indicator),
        prop::sample::select(DataType::ALL).prop_map(IfpType::Data),
    ];
    (msg, prop::option::of(prop::collection::vec(field(), 0..6))).prop_map(
        |(msg_type, data_field)| Ifp {
            msg_type,
            data_field,
        },
    )
}

/// Sends `sent` through a sender, returns the datagrams.
fn send_all(sent: &[Ifp], depth: usize, first_seq: u16) -> Vec<Vec<u8>> {
    let mut s = UdptlSender::new(SenderConfig {
        version: T38Version::V3,
        recovery: ErrorRecovery::Redundancy { depth },
        max_datagram: 65535,
        first_seq,
    });
    sent.iter().map(|i| s.build(i).unwrap()).collect()
}

/// Arrival order: each datagram (and each duplicate) delayed by up to
/// `reorder` positions; dropped ones removed.
fn arrivals(n: usize, lost: &[bool], dups: &[bool], delays: &[u8], reorder: u8) -> Vec<usize> {
    let mut keyed: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        if lost[i] {
            continue;
        }
        let d = usize::from(delays[i] % (reorder + 1));
        keyed.push((i + d, i));
        if dups[i] {
            let d2 = usize::from(delays[(i + 1) % n] % (reorder + 1));
            keyed.push((i + d2, i));
        }
    }
    keyed.sort();
    keyed.into_iter().map(|(_, i)| i).collect()
}

proptest! {
    #[test]
    fn ifp_encode_decode_identity(v in version(), ifp in ifp()) {
        match ifp.encode(v) {
            Ok(bytes) => prop_assert_eq!(Ifp::decode(&bytes, v)?, ifp),
            Err(Error::NotInVersion { .. }) => prop_assert_eq!(v, T38Version::V0),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn ifp_sequences_through_udptl_are_identical(v in version(), ifps in prop::collection::vec(ifp(), 1..20), depth in 0usize..4) {
        let mut s = UdptlSender::new(SenderConfig { version: v, recovery: ErrorRecovery::Redundancy { depth }, max_datagram: 65535, first_seq: 0 });
        let mut r = UdptlReceiver::new(ReceiverConfig { version: v, ..ReceiverConfig::default() });
        let ifps: Vec<Ifp> = ifps.into_iter().filter(|i| i.encode(v).is_ok()).collect();
        for i in &ifps {
            r.handle_datagram(&s.build(i)?)?;
        }
        let got: Vec<Ifp> = std::iter::from_fn(|| r.poll_ifp()).map(|x| x.ifp).collect();
        prop_assert_eq!(got, ifps);
    }

    /// Datagrams never exceed `max_datagram`, and carry the longest run of
    /// previous IFPs, newest first, that fits.
    #[test]
    fn sender_fills_datagrams_up_to_the_maximum(
        sizes in prop::collection::vec(1usize..150, 1..30),
        depth in 0usize..6,
        max in 200usize..900,
    ) {
        let mut s = UdptlSender::new(SenderConfig {
            version: T38Version::V1,
            recovery: ErrorRecovery::Redundancy { depth },
            max_datagram: max,
            first_seq: 0,
        });
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for n in sizes {
            let ifp = Ifp::data(DataType::V29_7200, vec![Field::new(FieldType::HdlcData, vec![7; n])])
                .encode(T38Version::V1)?;
            let gram = s.build_raw(&ifp, usize::MAX)?;
            prop_assert!(gram.len() <= max);
            let t38::RecoveryData::Secondary(list) = UdptlPacket::decode(&gram)?.recovery else {
                return Err(TestCaseError::fail("not redundancy"));
            };
            let expect: Vec<Vec<u8>> = sent.iter().rev().take(list.len()).cloned().collect();
            prop_assert_eq!(&list, &expect);
            if list.len() < depth.min(sent.len()) {
                // The next older one would not have fitted.
                let next = &sent[sent.len() - 1 - list.len()];
                let length_octets = if next.len() < 128 { 1 } else { 2 };
                prop_assert!(gram.len() + next.len() + length_octets > max);
            }
            sent.push(ifp);
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), v in version()) {
        let _ = Ifp::decode(&bytes, v);
        let _ = UdptlPacket::decode(&bytes);
        let mut r = UdptlReceiver::new(ReceiverConfig { version: v, ..ReceiverConfig::default() });
        let _ = r.handle_datagram(&bytes);
        r.flush();
        while r.poll_ifp().is_some() {}
    }

    /// Losses no longer than the redundancy depth, each followed by a
    /// received datagram, plus duplicates and bounded reordering: the
    /// receiver delivers exactly what was sent, in order, once.
    #[test]
    fn lossy_link_within_reach_delivers_everything(
        n in 2usize..120,
        depth in 1usize..4,
        reorder in 0u8..4,
        first_seq in any::<u16>(),
        lost_bits in prop::collection::vec(any::<bool>(), 120),
        dups in prop::collection::vec(prop::bool::weighted(0.2), 120),
        delays in prop::collection::vec(any::<u8>(), 120),
    ) {
        let sent: Vec<Ifp> = (0..n)
            .map(|i| Ifp::data(DataType::V17_9600, vec![Field::new(FieldType::HdlcData, vec![i as u8, (i >> 8) as u8])]))
            .collect();
        // Keep losses in runs of at most `depth` and never lose the last one.
        let mut lost = vec![false; n];
        let mut run = 0;
        for i in 0..n - 1 {
            if lost_bits[i] && run < depth {
                lost[i] = true;
                run += 1;
            } else {
                run = 0;
            }
        }
        let grams = send_all(&sent, depth, first_seq);
        let mut r = UdptlReceiver::new(ReceiverConfig {
            version: T38Version::V3,
            reorder_window: (depth + 2 * usize::from(reorder) + 1) as u16,
            first_seq: Some(first_seq),
            ..ReceiverConfig::default()
        });
        let mut got = Vec::new();
        for i in arrivals(n, &lost, &dups, &delays, reorder) {
            r.handle_datagram(&grams[i])?;
            got.extend(std::iter::from_fn(|| r.poll_ifp()));
        }
        r.flush();
        got.extend(std::iter::from_fn(|| r.poll_ifp()));
        let seqs: Vec<u16> = got.iter().map(|x| x.seq).collect();
        let expect: Vec<u16> = (0..n).map(|i| first_seq.wrapping_add(i as u16)).collect();
        prop_assert_eq!(seqs, expect);
        prop_assert!(got.iter().all(|x| x.lost_before == 0));
        prop_assert_eq!(got.into_iter().map(|x| x.ifp).collect::<Vec<_>>(), sent);
        prop_assert_eq!(r.stats().lost, 0);
    }

    /// Isolated losses (at least `span` apart, none among the last `span`
    /// datagrams) with FEC over `span` packets: all repaired, in order.
    #[test]
    fn fec_repairs_isolated_losses(
        n in 4usize..100,
        span in 2u8..5,
        reorder in 0u8..3,
        lost_bits in prop::collection::vec(prop::bool::weighted(0.3), 100),
        delays in prop::collection::vec(any::<u8>(), 100),
    ) {
        let sent: Vec<Ifp> = (0..n)
            .map(|i| Ifp::data(DataType::V17_12000, vec![Field::new(FieldType::T4NonEcmData, vec![i as u8 ^ 0x55; 1 + i % 9])]))
            .collect();
        let s_span = usize::from(span);
        let mut lost = vec![false; n];
        let mut since = s_span;
        for i in 0..n.saturating_sub(s_span) {
            since += 1;
            if lost_bits[i] && since > s_span {
                lost[i] = true;
                since = 0;
            }
        }
        let mut s = UdptlSender::new(SenderConfig {
            version: T38Version::V0,
            recovery: ErrorRecovery::Fec { span, entries: 1 },
            max_datagram: 65535,
            first_seq: 0,
        });
        let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
        let mut r = UdptlReceiver::new(ReceiverConfig {
            version: T38Version::V0,
            reorder_window: u16::from(span) + 1 + 2 * u16::from(reorder),
            first_seq: Some(0),
            ..ReceiverConfig::default()
        });
        for i in arrivals(n, &lost, &vec![false; n], &delays, reorder) {
            r.handle_datagram(&grams[i])?;
        }
        r.flush();
        let got: Vec<_> = std::iter::from_fn(|| r.poll_ifp()).collect();
        prop_assert_eq!(got.iter().map(|x| x.ifp.clone()).collect::<Vec<_>>(), sent);
        // A datagram merely delayed may be repaired before it arrives, so
        // repairs are at least the losses.
        prop_assert!(r.stats().recovered as usize >= lost.iter().filter(|&&l| l).count());
        prop_assert_eq!(r.stats().lost, 0);
    }

    /// Any loss, duplication and reordering: no panic, and what is delivered
    /// is a subsequence of what was sent, in order, each IFP intact.
    #[test]
    fn lossy_link_beyond_reach_delivers_an_ordered_subsequence(
        n in 1usize..150,
        depth in 0usize..3,
        window in 0u16..6,
        reorder in 0u8..8,
        fec in any::<bool>(),
        lost in prop::collection::vec(prop::bool::weighted(0.4), 150),
        dups in prop::collection::vec(prop::bool::weighted(0.3), 150),
        delays in prop::collection::vec(any::<u8>(), 150),
    ) {
        let sent: Vec<Ifp> = (0..n)
            .map(|i| Ifp::data(DataType::V29_9600, vec![Field::new(FieldType::T4NonEcmData, vec![i as u8; 1 + i % 5])]))
            .collect();
        let recovery = if fec {
            ErrorRecovery::Fec { span: 3, entries: 2 }
        } else {
            ErrorRecovery::Redundancy { depth }
        };
        let mut s = UdptlSender::new(SenderConfig { version: T38Version::V1, recovery, max_datagram: 65535, first_seq: 65500 });
        let grams: Vec<_> = sent.iter().map(|i| s.build(i).unwrap()).collect();
        let mut r = UdptlReceiver::new(ReceiverConfig { version: T38Version::V1, reorder_window: window, ..ReceiverConfig::default() });
        let order = arrivals(n, &lost, &dups, &delays, reorder);
        for &i in &order {
            r.handle_datagram(&grams[i])?;
        }
        r.flush();
        let got: Vec<_> = std::iter::from_fn(|| r.poll_ifp()).collect();
        let mut last: Option<usize> = None;
        for g in &got {
            let index = usize::from(g.seq.wrapping_sub(65500));
            prop_assert!(index < n);
            prop_assert!(last.is_none_or(|l| index > l), "out of order");
            prop_assert_eq!(&g.ifp, &sent[index]);
            last = Some(index);
        }
        let st = r.stats();
        prop_assert_eq!(st.delivered as usize, got.len());
        let holes: u64 = got.iter().map(|g| g.lost_before).sum();
        prop_assert!(holes <= st.lost + st.invalid_ifp);
        // The receiver accounts for every sequence number from the oldest
        // IFP of the first datagram it got to the newest datagram, but for
        // a datagram that came alone far past a gap, with nothing after it
        // to show it belongs to the stream: that one is still held.
        if let (Some(&first), Some(&newest)) = (order.first(), order.iter().max()) {
            let oldest = if fec { first } else { first - first.min(depth) };
            let accounted = st.delivered + st.lost + st.invalid_ifp;
            let total = (newest - oldest + 1) as u64;
            if r.held() == 0 {
                prop_assert_eq!(accounted, total);
            } else {
                prop_assert!(accounted + 16 < total, "held, yet not far: {accounted} of {total}");
            }
        }
    }
}
