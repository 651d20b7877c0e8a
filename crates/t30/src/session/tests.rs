use std::time::Duration;

use super::receiver::State;
use super::*;
use crate::{Compression, Dcs, Modem, Resolution};

fn page() -> t4::Decoded {
    t4::Decoded {
        width: 1728,
        data: vec![0; 216],
        stats: t4::DecodeStats {
            height: 1,
            bad_lines: 0,
            max_consecutive_bad: 0,
            first_bad: None,
            end: t4::PageEnd::Terminator,
        },
    }
}

fn receiver(s: &mut Session) -> (&mut Shared, &mut Receiver) {
    match &mut s.role {
        RoleState::Receiver(r) => (&mut s.shared, r),
        RoleState::Sender(_) => panic!("a receiving session holds a receiver"),
    }
}

/// The deadline reported is the earliest of the timers and the paced IFPs; with nothing to send and
/// no timer running the session says so (`Timeout(None)`) instead of asking to be woken every second.
/// In a call some timer always runs, so the test stops them by hand.
#[test]
fn a_session_with_nothing_due_reports_no_deadline() {
    let mut s = Session::new(Config::new(Role::Receive, false), Duration::ZERO);
    // CED, then CSI + DIS; the clock jumps to each deadline.
    let mut now = Duration::ZERO;
    for _ in 0..1000 {
        match s.poll_output(now) {
            Output::Timeout(Some(t)) if s.shared.tx.idle() => {
                now = t;
                break;
            }
            Output::Timeout(Some(t)) => now = t,
            o => assert!(matches!(o, Output::Transmit(_)), "{o:?}"),
        }
    }
    let (sh, r) = receiver(&mut s);
    assert_eq!(r.turn.state, State::WaitCommand);
    // Waiting for DCS: T2 and T1 run, and the earliest is the deadline.
    let t2 = sh.timers.get(Timer::T2).expect("T2 runs");
    assert_eq!(sh.timers.get(Timer::T1), Some(sh.cfg.timers.t1));
    assert_eq!(now, t2);
    let now = t2 - Duration::from_millis(1);
    assert_eq!(s.poll_output(now), Output::Timeout(Some(t2)));
    s.shared.timers.stop(Timer::T2);
    let t1 = s.shared.cfg.timers.t1;
    assert_eq!(s.poll_output(now), Output::Timeout(Some(t1)));
    s.shared.timers.stop(Timer::T1);
    assert_eq!(s.poll_output(now), Output::Timeout(None));
    // And it stays so, however late it is asked.
    assert_eq!(
        s.poll_output(now + Duration::from_secs(3600)),
        Output::Timeout(None)
    );
}

/// Pages kept but not confirmed (a block that never decoded, pages after EOR) count against
/// `max_pages` like confirmed ones: a sender cannot make a receiver keep pages without end.
#[test]
fn every_kept_page_counts_against_max_pages() {
    let mut cfg = Config::new(Role::Receive, false);
    cfg.max_pages = 2;
    let mut s = Session::new(cfg, Duration::ZERO);
    let d = Dcs {
        modem: Modem::V17_14400,
        resolution: Resolution::Fine,
        compression: Compression::Mmr,
        ecm: true,
        ecm_frame: 256,
        width: 1728,
        min_scan_ms: 0,
        unlimited_length: false,
        b4_length: false,
        sub: false,
        sid: false,
    };
    let now = Duration::ZERO;
    let (sh, r) = receiver(&mut s);
    assert!(r.accept_page(sh, now, page(), d, 0, false));
    assert!(r.accept_page(sh, now, page(), d, 0, true));
    assert!(!r.accept_page(sh, now, page(), d, 0, false), "a third page");
    assert!(
        matches!(
            sh.finishing
                .as_ref()
                .or(sh.finished.as_ref().map(|o| &o.result)),
            Some(Err(Failure::LimitExceeded { .. }))
        ),
        "{:?} {:?}",
        sh.finishing,
        sh.finished
    );
}
