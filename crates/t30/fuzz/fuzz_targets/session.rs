//! Arbitrary IFPs, sequence numbers and time steps fed to a receiving and a sending session: whatever
//! arrives, neither panics, both keep answering poll_output, and time always moves them to an end.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use t30::{Config, Output, Page, Resolution, Role, Session};
use t38::{Ifp, T38Version};

/// The session's next deadline; none once it has finished, or when nothing is due (then only input
/// could move it on).
fn drain(s: &mut Session, now: Duration) -> Option<Duration> {
    for _ in 0..100_000 {
        match s.poll_output(now) {
            Output::Timeout(t) => return t,
            Output::Finished(_) => return None,
            _ => {}
        }
    }
    panic!("poll_output never settles");
}

fuzz_target!(|data: &[u8]| {
    let page = Page { width: 1728, height: 8, resolution: Resolution::Fine, data: vec![0x0f; 216 * 8] };
    let mut sessions = [
        Session::new(Config::new(Role::Receive, false), Duration::ZERO),
        Session::new(Config::new(Role::Send(vec![page]), true), Duration::ZERO),
    ];
    let mut now = Duration::ZERO;
    // Each record: 1 octet time step (x 50 ms), 2 octets sequence number, 1 octet length, the IFP.
    let mut rest = data;
    while rest.len() >= 4 {
        let step = Duration::from_millis(u64::from(rest[0]) * 50);
        let seq = u16::from_be_bytes([rest[1], rest[2]]);
        let len = usize::from(rest[3]).min(rest.len() - 4);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now += step;
        for s in &mut sessions {
            if let Ok(ifp) = Ifp::decode(bytes, T38Version::V0) {
                s.handle_ifp(now, Some(seq), &ifp);
            }
            drain(s, now);
        }
    }
    // With no more input, the timers end both calls within a bounded time.
    for s in &mut sessions {
        let mut t = now;
        for _ in 0..1000 {
            match drain(s, t) {
                Some(next) => t = next.max(t + Duration::from_millis(1)),
                None => break,
            }
        }
        assert!(s.is_finished(), "a session did not end on its timers");
    }
});
