//! The receiver fed a stream of arbitrary datagrams: the input is split on
//! the first byte's value as a length prefix per datagram.
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
        ..ReceiverConfig::default()
    });
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (gram, after) = tail.split_at(n);
        let _ = r.handle_datagram(gram);
        while r.poll_ifp().is_some() {}
        rest = after;
    }
    r.flush();
    while r.poll_ifp().is_some() {}
    let s = r.stats();
    assert!(s.recovered <= s.delivered);
});
