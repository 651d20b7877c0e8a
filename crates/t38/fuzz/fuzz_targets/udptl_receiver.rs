//! The receiver fed a stream of arbitrary datagrams: the input is split on
//! the first byte's value as a length prefix per datagram. Its window logic
//! (probation of far numbers, tentative datagrams past a gap, conflicting
//! copies) must hold its promises: IFPs come out in sequence order, each
//! number at most once, except across a confirmed restart; nothing held
//! grows without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t38::{ReceiverConfig, T38Version, UdptlReceiver};

fuzz_target!(|data: &[u8]| {
    let Some((&window, mut rest)) = data.split_first() else {
        return;
    };
    let mut r = UdptlReceiver::new(ReceiverConfig {
        version: T38Version::V2,
        reorder_window: u16::from(window % 16),
        probation: 1 + window / 64,
        ..ReceiverConfig::default()
    });
    // The last sequence number delivered, extended over 16-bit wraps.
    let mut last: Option<i64> = None;
    let mut check = |r: &mut UdptlReceiver, restarted: bool| {
        if restarted {
            // A restart delivers what the old numbering held, then the new numbering begins: the order
            // holds again from the next datagram on.
            while r.poll_ifp().is_some() {}
            last = None;
        }
        while let Some(got) = r.poll_ifp() {
            let ext = match last {
                Some(prev) => {
                    let step = i64::from(got.seq.wrapping_sub(prev as u16));
                    assert!(
                        (1..32768).contains(&step),
                        "out of order: {} after {}",
                        got.seq,
                        prev as u16
                    );
                    prev + step
                }
                _ => i64::from(got.seq),
            };
            last = Some(ext);
        }
        assert!(r.held() <= 2048, "{} IFPs held", r.held());
    };
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (gram, after) = tail.split_at(n);
        let before = r.stats().restarts;
        let _ = r.handle_datagram(gram);
        let restarted = r.stats().restarts != before;
        check(&mut r, restarted);
        rest = after;
    }
    r.flush();
    check(&mut r, false);
    let s = r.stats();
    assert!(s.recovered <= s.delivered);
    assert!(s.conflicts <= s.received);
});
